"""A dataset over images already held in memory (digits, faces): resized once, then served."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from pixloom.data.registry import DatasetInfo, ImageDataset
from pixloom.data.transforms import item_rng, resize_array, to_tensor
from pixloom.errors import require

MIN_RESOLUTION = 8


def check_resolution(resolution: int) -> None:
    """Refuse resolutions below MIN_RESOLUTION."""
    require(
        resolution >= MIN_RESOLUTION, "resolution", resolution, f"an integer >= {MIN_RESOLUTION}"
    )


def fixed_split(count: int, split: str, *, test_fraction: float = 0.2) -> np.ndarray:
    """Indices of a fixed, seed-independent train/test split of `count` items."""
    order = np.random.default_rng(12345).permutation(count)
    boundary = count - int(round(count * test_fraction))
    return np.sort(order[:boundary] if split == "train" else order[boundary:])


def gray_to_rgb(images: np.ndarray, resolution: int, method: str = "bicubic") -> np.ndarray:
    """(N, h, w) gray in [0,1] -> (N, R, R, 3) float32 resized with PIL."""
    resized = [resize_array(image[..., None], (resolution, resolution), method) for image in images]
    return np.repeat(np.stack(resized), 3, axis=3)  # (N, R, R, 3)


class ArrayDataset(ImageDataset):
    """Items from an (N, R, R, 3) array; captions from captioner(label, rng) when given."""

    def __init__(
        self,
        info: DatasetInfo,
        images: np.ndarray,
        labels: np.ndarray | None,
        captioner: Callable[[int, random.Random], str] | None,
        *,
        seed: int = 0,
        vary_captions: bool = True,
    ):
        super().__init__(info, seed=seed)
        self.images = images
        self.labels = labels
        self.captioner = captioner
        self.vary_captions = vary_captions  # rephrase per epoch (train); fixed otherwise

    def __len__(self) -> int:
        return len(self.images)

    def load_item(self, index: int) -> dict[str, Any]:
        label = int(self.labels[index]) if self.labels is not None else -1
        caption = ""
        if self.captioner is not None:
            epoch = self.epoch if self.vary_captions else 0
            caption = self.captioner(label, item_rng(self.seed, epoch, index))
        return {
            "image": to_tensor(self.images[index]),
            "caption": caption,
            "label": label,
            "index": index,
        }
