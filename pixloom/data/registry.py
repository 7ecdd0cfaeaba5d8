"""The dataset registry: a spec string -> an ImageDataset with a uniform item and info.

Every dataset yields items {"image": float32 [3,H,W] in [-1,1], "caption": str,
"label": int (-1 when none), "index": int} and describes itself with DatasetInfo, so the
network builder reads resolution, channels and classes from the data (as in StyleGAN2-ADA).
Per-item randomness (crops, caption phrasing) comes from (seed, epoch, index), never from
the global RNG, so a resumed run sees exactly the same data.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from pixloom.configs import config_from_dict
from pixloom.errors import InvalidValue, require

SPLITS = ("train", "test")
# Modules whose import registers their datasets (imported only when the registry is used).
DATASET_MODULES = (
    "pixloom.data.shapes.dataset",
    "pixloom.data.digits",
    "pixloom.data.photos",
    "pixloom.data.faces",
    "pixloom.data.folder",
)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data."""

    name: str  # the spec it was loaded from, e.g. "shapes" or "folder:/data/cats"
    resolution: int  # images are resolution x resolution
    channels: int = 3
    num_classes: int = 0  # 0: no labels (label is -1)
    class_names: tuple[str, ...] = ()
    has_captions: bool = False


class ImageDataset(Dataset):
    """Base of every pixloom dataset: subclasses implement __len__ and load_item(index)."""

    def __init__(self, info: DatasetInfo, *, seed: int = 0):
        self.info = info
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose per-item randomness (crops, phrasing) items use."""
        require(isinstance(epoch, int) and epoch >= 0, "epoch", epoch, "an integer >= 0")
        self.epoch = epoch

    def __len__(self) -> int:
        raise NotImplementedError

    def load_item(self, index: int) -> dict[str, Any]:
        """The item dict for a valid index in [0, len)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        length = len(self)
        if not -length <= index < length:
            raise IndexError(f"index {index} out of range for {self.info.name} ({length} items)")
        return self.load_item(index % length)


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., ImageDataset]
    options_cls: type
    takes_argument: bool


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(name: str, options_cls: type, *, takes_argument: bool = False):
    """Decorator registering builder(argument, split, resolution, options) under `name`.

    options_cls is a dataclass of the dataset's options (strictly parsed from **options);
    takes_argument: the spec carries a value after a colon, as in "folder:PATH".
    """

    def decorate(builder: Callable[..., ImageDataset]) -> Callable[..., ImageDataset]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"dataset {name!r} is registered twice")
        _REGISTRY[name] = _Entry(builder, options_cls, takes_argument)
        return builder

    return decorate


def _load_modules() -> None:
    for module in DATASET_MODULES:
        importlib.import_module(module)


def dataset_names() -> list[str]:
    """Registered dataset names (a name taking an argument is shown as "name:PATH")."""
    _load_modules()
    return [f"{name}:PATH" if entry.takes_argument else name for name, entry in _REGISTRY.items()]


def load_dataset(
    spec: str, *, split: str = "train", resolution: int = 32, **options: Any
) -> ImageDataset:
    """Build the dataset named by `spec` ("shapes", "digits", "photos", "faces", "folder:PATH")."""
    _load_modules()
    if not isinstance(spec, str) or not spec:
        raise InvalidValue("dataset", spec, f"one of {', '.join(dataset_names())}")
    name, colon, argument = spec.partition(":")
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InvalidValue("dataset", spec, f"one of {', '.join(dataset_names())}")
    if entry.takes_argument and not argument:
        raise InvalidValue("dataset", spec, f"{name}:PATH with a path after the colon")
    if colon and not entry.takes_argument:
        raise InvalidValue("dataset", spec, f"{name!r} takes no argument after a colon")
    require(split in SPLITS, "split", split, f"one of {', '.join(SPLITS)}")
    require(
        isinstance(resolution, int) and not isinstance(resolution, bool),
        "resolution",
        resolution,
        "an integer number of pixels",
    )
    parsed = config_from_dict(entry.options_cls, options, where=f"{name} option")
    if entry.takes_argument:
        return entry.builder(argument, split, resolution, parsed)
    return entry.builder(split, resolution, parsed)


def options_fields(name: str) -> list[str]:
    """The option names a registered dataset accepts (for help texts)."""
    _load_modules()
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InvalidValue("dataset", name, f"one of {', '.join(sorted(_REGISTRY))}")
    return [field.name for field in dataclasses.fields(entry.options_cls)]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: image [B,3,H,W], caption list[str], label [B] int64, index [B] int64.

    Extra keys a dataset adds (e.g. the shapes world's "target") are stacked when they are
    tensors and kept as lists otherwise.
    """
    require(len(items) > 0, "items", items, "a non-empty list of dataset items")
    batch: dict[str, Any] = {
        "image": torch.stack([item["image"] for item in items]),
        "caption": [item["caption"] for item in items],
        "label": torch.tensor([item["label"] for item in items], dtype=torch.int64),
        "index": torch.tensor([item["index"] for item in items], dtype=torch.int64),
    }
    for key in items[0].keys() - batch.keys():
        values = [item[key] for item in items]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
