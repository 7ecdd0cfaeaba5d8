"""Array transforms shared by the datasets: seeded randomness, resizing, crops, tensors.

Images travel as float32 HxWxC arrays in [0,1] until `to_tensor` makes them CHW in [-1,1].
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

from pixloom.errors import InvalidValue

RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def item_rng(seed: int, epoch: int, index: int, stream: int = 0) -> random.Random:
    """A private RNG determined by (seed, epoch, index, stream); never the global RNG."""
    return random.Random(f"pixloom:{seed}:{epoch}:{index}:{stream}")


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """float HxWx3 in [0,1] -> float32 tensor [3,H,W] in [-1,1]."""
    chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)  # (C, H, W)
    return torch.from_numpy(chw).mul_(2.0).sub_(1.0)


def resize_array(array: np.ndarray, size: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Resize float HxWxC to (height, width) per channel in float precision.

    Bicubic may overshoot slightly; the result is clipped back to [0,1] (interpolation
    ringing, not a change of the data's range).
    """
    if method not in RESAMPLE:
        raise InvalidValue("resize method", method, f"one of {', '.join(RESAMPLE)}")
    height, width = size
    if array.shape[:2] == (height, width):
        return array.astype(np.float32, copy=False)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c], dtype=np.float32), mode="F").resize(
                (width, height), RESAMPLE[method]
            )
        )
        for c in range(array.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def resize_short_side(array: np.ndarray, side: int, method: str = "bicubic") -> np.ndarray:
    """Resize so the shorter side equals `side`, keeping the aspect ratio."""
    height, width = array.shape[:2]
    scale = side / min(height, width)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    return resize_array(array, size, method)


def center_crop(array: np.ndarray, side: int) -> np.ndarray:
    """The central side x side window of an array at least that large."""
    height, width = array.shape[:2]
    top, left = (height - side) // 2, (width - side) // 2
    return array[top : top + side, left : left + side]


def random_crop(array: np.ndarray, side: int, rng: random.Random) -> np.ndarray:
    """A side x side window at a position drawn from rng."""
    height, width = array.shape[:2]
    top, left = rng.randint(0, height - side), rng.randint(0, width - side)
    return array[top : top + side, left : left + side]


def check_crop_scale(scale: list[float]) -> None:
    """Refuse a `scale` option that is not [low, high] with 1 <= low <= high."""
    if not (len(scale) == 2 and 1.0 <= scale[0] <= scale[1]):
        raise InvalidValue(
            "scale",
            scale,
            "[low, high] with 1 <= low <= high (crop side as a multiple of the resolution)",
        )


def scaled_random_crop(
    array: np.ndarray, side: int, scale: list[float], rng: random.Random
) -> np.ndarray:
    """A side x side crop of a float array, seen at a random smaller scale.

    A window `scale` times the side (drawn uniformly from [low, high], capped by the image's
    shorter side) is cut at a random place and shrunk to the side with antialiased bicubic.
    """
    window = min(round(side * rng.uniform(*scale)), min(array.shape[:2]))
    crop = random_crop(array, window, rng)
    return resize_array(crop, (side, side))


def resize_square(images: torch.Tensor, side: int) -> torch.Tensor:
    """Resize a batch [B,C,H,W] to side x side: bilinear, antialiased when shrinking."""
    if images.shape[-2:] == (side, side):
        return images
    shrinking = images.shape[-1] > side or images.shape[-2] > side
    return torch.nn.functional.interpolate(
        images, size=(side, side), mode="bilinear", antialias=shrinking, align_corners=False
    )


def images_to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL images of one size -> float32 batch [B, 3, H, W] in [-1, 1]."""
    arrays = np.stack(
        [np.asarray(image.convert("RGB"), dtype=np.float32) / 255 for image in images]
    )
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) * 2 - 1  # (B, H, W, 3) -> (B, 3, H, W)
