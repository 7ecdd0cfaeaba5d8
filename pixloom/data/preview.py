"""A captioned contact sheet of dataset items, for looking at data before training on it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixloom.data.registry import load_dataset
from pixloom.errors import require
from pixloom.io.grid import make_grid
from pixloom.io.images import save_png

DISPLAY_SIZE = 128  # small renders are enlarged (nearest) so captions fit beneath them


@dataclass
class PreviewRequest:
    """What `pixloom data show` renders."""

    dataset: str = field(metadata={"positional": True, "help": "dataset spec, e.g. shapes"})
    out: Path | None = field(default=None, metadata={"help": "PNG file to write (required)"})
    split: str = field(default="train", metadata={"help": "train or test"})
    resolution: int = field(default=32, metadata={"help": "image side in pixels"})
    count: int = field(default=16, metadata={"short": "-n", "help": "number of items"})
    seed: int = field(default=0, metadata={"help": "picks which items are shown"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out file"})

    def __post_init__(self):
        require(self.out is not None, "out", self.out, "a PNG path to write, e.g. --out grid.png")
        require(1 <= self.count <= 256, "count", self.count, "1 to 256 items")
        require(self.seed >= 0, "seed", self.seed, "an integer >= 0")


def tensor_to_image(image: torch.Tensor) -> Image.Image:
    """A [3,H,W] tensor in [-1,1] -> an 8-bit RGB PIL image."""
    array = image.detach().float().clamp(-1, 1).add(1).mul(127.5).round()
    pixels = array.permute(1, 2, 0).to(torch.uint8).numpy()  # (H, W, 3)
    return Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")


def render_preview(request: PreviewRequest) -> Path:
    """Write a grid of `count` items drawn by `seed` from the dataset; return the path."""
    dataset = load_dataset(request.dataset, split=request.split, resolution=request.resolution)
    count = min(request.count, len(dataset))
    indices = sorted(random.Random(request.seed).sample(range(len(dataset)), count))
    images, captions = [], []
    for index in indices:
        item = dataset[index]
        image = tensor_to_image(item["image"])
        if image.width < DISPLAY_SIZE:
            scale = -(-DISPLAY_SIZE // image.width)
            image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        label = dataset.info.class_names[item["label"]] if item["label"] >= 0 else None
        text = item["caption"] or (f"label {label}" if label is not None else f"#{index}")
        images.append(image)
        captions.append(text)
    metadata = {
        "dataset": request.dataset,
        "split": request.split,
        "resolution": request.resolution,
        "indices": indices,
        "chain": [{"step": "data show", "seed": request.seed}],
    }
    return save_png(
        make_grid(images, captions), request.out, metadata=metadata, overwrite=request.overwrite
    )
