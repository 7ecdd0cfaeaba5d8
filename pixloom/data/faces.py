"""The "faces" dataset: the 100 face crops of scikit-image's lfw_subset (25x25 grey)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pixloom.data.memory import ArrayDataset, check_resolution, fixed_split, gray_to_rgb
from pixloom.data.registry import DatasetInfo, register_dataset

FACE_COUNT = 100  # lfw_subset holds 100 faces followed by 100 non-faces


@dataclass
class FacesOptions:
    """Options of the faces dataset."""

    resample: Literal["bicubic", "bilinear"] = "bicubic"  # checked by the options parser


@register_dataset("faces", FacesOptions)
def build_faces(split: str, resolution: int, options: FacesOptions) -> ArrayDataset:
    """Faces resized to `resolution`, fixed 80/20 split, no labels or captions."""
    from skimage.data import lfw_subset

    check_resolution(resolution)
    faces = lfw_subset()[:FACE_COUNT]  # (100, 25, 25) float in [0,1]
    indices = fixed_split(FACE_COUNT, split)
    images = gray_to_rgb(faces[indices], resolution, options.resample)
    info = DatasetInfo(name="faces", resolution=resolution)
    return ArrayDataset(info, images, None, None)
