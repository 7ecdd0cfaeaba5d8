"""The "shapes" dataset: fixed, disjoint train/test splits of captioned shapes-world scenes.

Scene i of a split is drawn from a private RNG seeded by (seed, split, i), so it is the
same in every process and run. Captions of the train split are rephrased each epoch
(seeded by (seed, epoch, i)); test captions never change. The training split never shows a
held-out colour-shape pair, in images or captions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pixloom.data.registry import DatasetInfo, ImageDataset, register_dataset
from pixloom.data.shapes.captions import P_RELATION, caption_scene
from pixloom.data.shapes.render import check_resolution, render_scene
from pixloom.data.shapes.targets import scene_to_target
from pixloom.data.shapes.world import (
    DEFAULT_HELDOUT_PAIRS,
    MAX_OBJECTS,
    Scene,
    parse_pairs,
    sample_scene,
)
from pixloom.data.transforms import item_rng, to_tensor
from pixloom.errors import require

_SPLIT_CODES = {"train": 1, "test": 2}


@dataclass
class ShapesOptions:
    """Options of the shapes dataset."""

    seed: int = 0  # selects the world; different seeds give different scenes
    train_size: int = 100_000
    test_size: int = 10_000
    heldout_pairs: list[str] = field(default_factory=lambda: list(DEFAULT_HELDOUT_PAIRS))
    max_objects: int = MAX_OBJECTS
    noise: bool = True  # false: flat backgrounds, without the noise texture
    relation_captions: float = P_RELATION  # chance that a scene of distinct objects is told
    # as a relation between two ("a red circle left of a blue square"), where one is clear

    def __post_init__(self):
        require(self.train_size >= 1, "train_size", self.train_size, "an integer >= 1")
        require(self.test_size >= 1, "test_size", self.test_size, "an integer >= 1")
        require(1 <= self.max_objects <= MAX_OBJECTS, "max_objects", self.max_objects, "1, 2 or 3")
        require(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        parse_pairs(self.heldout_pairs, "heldout_pairs")
        require(0 <= self.relation_captions <= 1, "relation_captions", self.relation_captions,
                "a probability from 0 to 1")  # fmt: skip


def scene_seed(seed: int, split: str, index: int) -> int:
    """The integer seeding scene `index` of `split`; the splits never share one."""
    return ((seed * 4 + _SPLIT_CODES[split]) << 40) + index


class ShapesDataset(ImageDataset):
    """Captioned renders of shapes-world scenes; `scene(i)` is the exact ground truth."""

    def __init__(self, split: str, resolution: int, options: ShapesOptions):
        check_resolution(resolution)
        info = DatasetInfo(name="shapes", resolution=resolution, has_captions=True)
        super().__init__(info, seed=options.seed)
        self.split = split
        self.options = options
        self.excluded_pairs = (
            parse_pairs(options.heldout_pairs, "heldout_pairs") if split == "train" else frozenset()
        )
        self.length = options.train_size if split == "train" else options.test_size

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        """The scene of item `index` (deterministic per (seed, split, index))."""
        require(0 <= index < self.length, "index", index, f"0 to {self.length - 1}")
        rng = random.Random(scene_seed(self.seed, self.split, index))
        return sample_scene(
            rng, excluded_pairs=self.excluded_pairs, max_objects=self.options.max_objects
        )

    def caption(self, index: int, scene: Scene | None = None) -> str:
        """The caption of item `index` in the current epoch (fixed for the test split)."""
        epoch = self.epoch if self.split == "train" else 0
        rng = item_rng(scene_seed(self.seed, self.split, index), epoch, index, stream=1)
        return caption_scene(scene or self.scene(index), rng, self.options.relation_captions)

    def load_item(self, index: int) -> dict[str, Any]:
        scene = self.scene(index)
        image = to_tensor(render_scene(scene, self.info.resolution, noise=self.options.noise))
        return {
            "image": image,
            "caption": self.caption(index, scene),
            "label": -1,
            "index": index,
            "target": scene_to_target(scene),  # [9, 5] ground truth for the scene parser
        }


@register_dataset("shapes", ShapesOptions)
def build_shapes(split: str, resolution: int, options: ShapesOptions) -> ShapesDataset:
    """The shapes world at `resolution` (16-256)."""
    return ShapesDataset(split, resolution, options)
