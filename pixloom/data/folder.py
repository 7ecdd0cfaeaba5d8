"""The "folder:PATH" dataset: the images under a directory, as Hugging Face imagefolder.

- A folder with train/ and test/ subfolders provides those splits; otherwise the whole
  folder is the train split.
- Class subfolders become labels when every image sits inside one.
- Captions come from metadata.jsonl or metadata.csv (columns `file_name`, `text`, paths
  relative to the split folder), or else from a .txt file beside each image.
- Problems are reported, never a crash deep in training (RELIABILITY I3, I6): an empty
  folder or one without images raises DataError; captions naming missing images, caption
  files that are not UTF-8 and corrupt images are skipped with a logged warning naming the
  path and the reason, and listed in `dataset.skipped`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixloom.data.registry import DatasetInfo, ImageDataset, register_dataset
from pixloom.data.transforms import (
    center_crop,
    check_crop_scale,
    item_rng,
    random_crop,
    resize_short_side,
    scaled_random_crop,
    to_tensor,
)
from pixloom.errors import DataError, ImageError, InvalidValue, require
from pixloom.io.images import load_image_array

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MIN_RESOLUTION = 8


@dataclass
class FolderOptions:
    """Options of folder datasets."""

    mode: str = "resize"  # "resize": short side to the resolution, centre crop; "random_crop"
    seed: int = 0  # seeds the random crops
    check_files: bool = False  # decode every image up front and skip the bad ones
    max_pixels: int | None = None  # decode cap; None: the pixloom default (see io/images.py)
    cache_mb: int = 2048  # decoded images kept in memory per process (MiB); 0 disables
    # random_crop: crop side as a multiple of the resolution, [low, high]; larger crops are
    # shrunk to the resolution, so [1, 2] shows the images at scales 1/2 to 1
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # random_crop: "image" draws every image equally often; "area" in proportion to its pixel
    # count (an image k times the smallest one's area is k items of an epoch), so the crops
    # cover large photos as densely as small ones
    sample: str = "image"

    def __post_init__(self):
        require(self.mode in ("resize", "random_crop"), "mode", self.mode, "resize or random_crop")
        check_crop_scale(self.scale)
        require(
            self.mode == "random_crop" or list(self.scale) == [1.0, 1.0],
            "scale",
            self.scale,
            "[1, 1] unless mode is random_crop (resize mode shows each whole image once)",
        )
        require(self.sample in ("image", "area"), "sample", self.sample, "image or area")
        require(
            self.mode == "random_crop" or self.sample == "image",
            "sample",
            self.sample,
            "image unless mode is random_crop (resize mode shows each whole image once)",
        )
        require(self.cache_mb >= 0, "cache_mb", self.cache_mb, "an integer >= 0 (MiB)")


def _split_folder(root: Path, split: str) -> Path:
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if (root / "train").is_dir() or (root / "test").is_dir():
        folder = root / split
        if not folder.is_dir():
            raise InvalidValue("split", split, f"a split with a subfolder under {root}")
        return folder
    if split != "train":
        raise InvalidValue("split", split, f"train ({root} has no train/ or test/ subfolder)")
    return root


def _decode_text(path: Path) -> str:
    """UTF-8 text of a caption file, or DataError naming the file and the bad byte."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None


def _metadata_rows(path: Path) -> list[tuple[str, str, str]]:
    """(where, file_name, text) rows of metadata.jsonl / metadata.csv."""
    text = _decode_text(path)
    rows = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path} line {number}: not JSON ({error.msg})") from None
            rows.append((f"{path.name} line {number}", record, number))
    else:
        reader = csv.DictReader(io.StringIO(text))
        missing = {"file_name", "text"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; needs file_name, text")
        rows = [(f"{path.name} row {n}", record, n) for n, record in enumerate(reader, start=2)]
    checked = []
    for where, record, _ in rows:
        if not isinstance(record, dict):
            raise DataError(f"{path.parent / where}: expected an object with file_name and text")
        name, caption = record.get("file_name"), record.get("text")
        if not isinstance(name, str) or not isinstance(caption, str):
            raise DataError(f"{path.parent / where}: needs string fields file_name and text")
        checked.append((where, name, caption))
    return checked


class FolderDataset(ImageDataset):
    """Images of a folder with labels from subfolders and optional captions."""

    def __init__(self, root: Path, split: str, resolution: int, options: FolderOptions):
        require(resolution >= MIN_RESOLUTION, "resolution", resolution, f">= {MIN_RESOLUTION}")
        folder = _split_folder(root, split)
        self.folder, self.options, self.split = folder, options, split
        self.skipped: list[tuple[str, str]] = []
        self._bad: set[int] = set()
        self._cache: dict[int, np.ndarray] = {}  # index -> decoded float image (see _decoded)
        self._cached_bytes = 0
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{folder}: the folder is empty")
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not images:
            found = sorted({p.suffix or p.name for p in files})[:8]
            raise DataError(
                f"{folder}: no images among {len(files)} files (found {found}; "
                f"supported: {', '.join(IMAGE_EXTENSIONS)})"
            )
        captions = self._read_captions(folder, images)
        images = [p for p in images if p in captions]
        if options.check_files:
            images = [p for p in images if self._decodes(p)]
        if not images:
            raise DataError(f"{folder}: no usable images; {self.skip_summary()}")
        relative = [p.relative_to(folder) for p in images]
        class_names: tuple[str, ...] = ()
        if all(len(r.parts) >= 2 for r in relative):
            class_names = tuple(sorted({r.parts[0] for r in relative}))
        self.files = images
        self.captions = [captions[p] for p in images]
        self.labels = [class_names.index(r.parts[0]) if class_names else -1 for r in relative]
        self.items = list(range(len(images)))  # item index -> file index
        if options.sample == "area" and split == "train":
            self.items = _items_by_area(images)
        info = DatasetInfo(
            name=f"folder:{root}",
            resolution=resolution,
            num_classes=len(class_names),
            class_names=class_names,
            has_captions=any(self.captions),
        )
        super().__init__(info, seed=options.seed)
        if self.skipped:
            logger.warning("%s", self.skip_summary())

    def _skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))
        logger.warning("skipped %s: %s", path, reason)

    def skip_summary(self) -> str:
        """One line: how many files were skipped and why (empty when none)."""
        if not self.skipped:
            return ""
        shown = "; ".join(f"{path}: {reason}" for path, reason in self.skipped[:5])
        more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
        return f"{self.folder}: skipped {len(self.skipped)} file(s): {shown}{more}"

    def _decodes(self, path: Path) -> bool:
        try:
            load_image_array(path, max_pixels=self.options.max_pixels)
        except ImageError as error:
            self._skip(path, str(error))
            return False
        return True

    def _read_captions(self, folder: Path, images: list[Path]) -> dict[Path, str]:
        """Caption of every usable image ("" when none); problems become reported skips."""
        sources = [folder / name for name in ("metadata.jsonl", "metadata.csv")]
        present = [path for path in sources if path.is_file()]
        if len(present) == 2:
            raise DataError(f"{folder}: both metadata.jsonl and metadata.csv exist; keep one")
        if present:
            known = set(images)
            captions = dict.fromkeys(images, "")
            for where, name, text in _metadata_rows(present[0]):
                path = folder / name
                if path not in known:
                    self._skip(folder / where, f"names {name!r}, which is not an image here")
                    continue
                captions[path] = text.strip()
            return captions
        captions = {}
        for image in images:
            text_file = image.with_suffix(".txt")
            try:
                captions[image] = _decode_text(text_file).strip() if text_file.is_file() else ""
            except DataError as error:
                self._skip(image, f"caption {error}")
        return captions

    def __len__(self) -> int:
        return len(self.items)

    def _decoded(self, index: int) -> np.ndarray:
        """The decoded image, from memory after its first use while the cache budget lasts."""
        array = self._cache.get(index)
        if array is None:
            array = load_image_array(self.files[index], max_pixels=self.options.max_pixels)
            if self._cached_bytes + array.nbytes <= self.options.cache_mb * 2**20:
                self._cache[index] = array  # crops below are views; to_tensor copies them
                self._cached_bytes += array.nbytes
        return array

    def _pixels(self, index: int, item: int) -> np.ndarray:
        """Pixels of file `index` for item `item` (which seeds the random crop)."""
        array = self._decoded(index)
        side = self.info.resolution
        if self.options.mode == "resize" or min(array.shape[:2]) < side:
            array = resize_short_side(array, side)
        if self.options.mode == "random_crop" and self.split == "train":
            rng = item_rng(self.seed, self.epoch, item)
            if list(self.options.scale) != [1.0, 1.0]:  # else the crops of earlier runs
                return scaled_random_crop(array, side, self.options.scale, rng)
            return random_crop(array, side, rng)
        return center_crop(array, side)

    def load_item(self, index: int) -> dict[str, Any]:
        """The item, or the next decodable one when this file is corrupt (reported)."""
        file_index = self.items[index]
        for step in range(len(self.files)):
            current = (file_index + step) % len(self.files)
            if current in self._bad:
                continue
            # a replacement for a corrupt file is cropped as its own item, as before
            item = index if current == file_index else current
            try:
                image = to_tensor(self._pixels(current, item))
            except ImageError as error:
                self._bad.add(current)
                self._skip(self.files[current], str(error))
                continue
            caption, label = self.captions[current], self.labels[current]
            return {"image": image, "caption": caption, "label": label, "index": index}
        raise DataError(f"{self.folder}: no image could be decoded; {self.skip_summary()}")


def _items_by_area(images: list[Path]) -> list[int]:
    """Each file index repeated round(area / smallest area) times (headers only, no decoding)."""
    areas = []
    for path in images:
        try:
            with Image.open(path) as image:
                areas.append(image.width * image.height)
        except (OSError, ValueError, Image.DecompressionBombError):
            areas.append(0)  # unreadable: loading reports and skips it, as in "image" sampling
    smallest = min((area for area in areas if area > 0), default=1)
    return [i for i, area in enumerate(areas) for _ in range(max(1, round(area / smallest)))]


@register_dataset("folder", FolderOptions, takes_argument=True)
def build_folder(path: str, split: str, resolution: int, options: FolderOptions) -> FolderDataset:
    """Images under `path` (recursive)."""
    return FolderDataset(Path(path).expanduser(), split, resolution, options)
