"""The "digits" dataset: scikit-learn's 8x8 handwritten digits, resized, with captions."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pixloom.data.memory import ArrayDataset, check_resolution, fixed_split, gray_to_rgb
from pixloom.data.registry import DatasetInfo, register_dataset

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CLASS_NAMES = tuple(str(d) for d in range(10))
_TEMPLATES = (
    "the digit {word}",
    "the digit {digit}",
    "a handwritten {digit}",
    "a handwritten {word}",
    "the number {word}",
    "a {digit}",
    "{digit}",
    "{word}",
    "a handwritten digit {digit}",
)


@dataclass
class DigitsOptions:
    """Options of the digits dataset."""

    seed: int = 0  # seeds the caption phrasing
    resample: Literal["bicubic", "bilinear"] = "bicubic"  # checked by the options parser


def digit_caption(label: int, rng: random.Random) -> str:
    """A caption such as "the digit seven" or "a handwritten 7"."""
    return rng.choice(_TEMPLATES).format(word=DIGIT_WORDS[label], digit=label)


@register_dataset("digits", DigitsOptions)
def build_digits(split: str, resolution: int, options: DigitsOptions) -> ArrayDataset:
    """scikit-learn load_digits (1,797 images), fixed 80/20 split, grey replicated to RGB."""
    from sklearn.datasets import load_digits

    check_resolution(resolution)
    digits = load_digits()
    indices = fixed_split(len(digits.images), split)
    images = gray_to_rgb(digits.images[indices] / 16.0, resolution, options.resample)
    info = DatasetInfo(
        name="digits",
        resolution=resolution,
        num_classes=10,
        class_names=CLASS_NAMES,
        has_captions=True,
    )
    return ArrayDataset(
        info,
        images,
        digits.target[indices],
        digit_caption,
        seed=options.seed,
        vary_captions=split == "train",
    )
