"""The "photos" dataset: crops of the colour photos bundled with scikit-image and scikit-learn.

The split is by image (never a crop of a test photo in training). Item i shows photo
i mod P; its crop is drawn from (seed, epoch, i) in the train split and from (seed, 0, i)
in the test split, so test crops never change.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixloom.data.registry import DatasetInfo, ImageDataset, register_dataset
from pixloom.data.transforms import check_crop_scale, item_rng, scaled_random_crop, to_tensor
from pixloom.errors import InvalidValue, require

SKIMAGE_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field",
    "immunohistochemistry", "retina", "colorwheel", "logo",
)  # fmt: skip
SKLEARN_PHOTOS = ("china", "flower")
TEST_PHOTOS = ("coffee", "china")
PHOTO_NAMES = SKIMAGE_PHOTOS + SKLEARN_PHOTOS
CAPTIONS = {
    "astronaut": "a photo of an astronaut",
    "coffee": "a photo of a cup of coffee",
    "chelsea": "a photo of a cat",
    "rocket": "a photo of a rocket",
    "cat": "a photo of a cat",
    "hubble_deep_field": "a photo of galaxies in deep space",
    "immunohistochemistry": "a microscope image of tissue",
    "retina": "a photo of a retina",
    "colorwheel": "a colour wheel",
    "logo": "a logo",
    "china": "a photo of a temple",
    "flower": "a photo of a flower",
}
MIN_RESOLUTION = 8


@dataclass
class PhotosOptions:
    """Options of the photos dataset."""

    seed: int = 0  # seeds the crops
    length: int | None = None  # crops per epoch; None: 1,000 (train) or 100 (test)
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # crop side / resolution range

    def __post_init__(self):
        require(self.length is None or self.length >= 1, "length", self.length, "None or >= 1")
        check_crop_scale(self.scale)


@functools.cache
def _photo(name: str) -> np.ndarray:
    """One photo as uint8 HxWx3 (logo's alpha composited over black, as decode_image does)."""
    if name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    from skimage import data

    image = getattr(data, name)()
    if image.shape[2] == 4:
        rgb = image[..., :3].astype(np.float32) * (image[..., 3:4] / 255.0)
        image = np.round(rgb).astype(np.uint8)
    return image


class PhotosDataset(ImageDataset):
    """Random crops (train) or fixed crops (test) of a fixed set of photos."""

    def __init__(self, split: str, resolution: int, options: PhotosOptions):
        names = [n for n in PHOTO_NAMES if (n in TEST_PHOTOS) == (split == "test")]
        photos = [_photo(name).astype(np.float32) / 255.0 for name in names]
        smallest = min(min(p.shape[:2]) for p in photos)
        if not MIN_RESOLUTION <= resolution <= smallest:
            raise InvalidValue(
                "resolution", resolution, f"{MIN_RESOLUTION} to {smallest} for photos"
            )
        info = DatasetInfo(
            name="photos",
            resolution=resolution,
            num_classes=len(PHOTO_NAMES),
            class_names=PHOTO_NAMES,
            has_captions=True,
        )
        super().__init__(info, seed=options.seed)
        self.split, self.names, self.photos, self.options = split, names, photos, options
        default_length = 1000 if split == "train" else 100
        self.length = options.length or default_length

    def __len__(self) -> int:
        return self.length

    def load_item(self, index: int) -> dict[str, Any]:
        photo_index = index % len(self.photos)
        photo = self.photos[photo_index]
        epoch = self.epoch if self.split == "train" else 0
        rng = item_rng(self.seed, epoch, index)
        resolution = self.info.resolution
        crop = scaled_random_crop(photo, resolution, self.options.scale, rng)
        name = self.names[photo_index]
        return {
            "image": to_tensor(crop),
            "caption": CAPTIONS[name],
            "label": PHOTO_NAMES.index(name),
            "index": index,
        }


@register_dataset("photos", PhotosOptions)
def build_photos(split: str, resolution: int, options: PhotosOptions) -> PhotosDataset:
    """Crops of 12 offline photos: 10 for training, coffee and china for testing."""
    return PhotosDataset(split, resolution, options)
