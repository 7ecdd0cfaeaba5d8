"""The shapes-world oracle: parse images into objects, and embed them for FID/KID.

Wraps a trained `scene-parser` network (pixloom.models.scene_parser). Images of any side
are resized to the network's input side (bilinear, antialiased when shrinking), so one
oracle reads 32- and 64-pixel images alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pixloom.data.shapes.targets import COLOR_NAMES, SIZE_NAMES, cell_center
from pixloom.data.shapes.world import POSITIONS, SHAPES
from pixloom.metrics.features import NetworkFeatures
from pixloom.models.scene_parser import SceneParser, split_cell_outputs


@dataclass(frozen=True)
class ParsedObject:
    """An object the oracle found: canonical attributes, centre in [0,1] and confidence."""

    shape: str
    color: str
    size: str
    position: str
    center: tuple[float, float]
    confidence: float


class ShapesOracle(NetworkFeatures):
    """Scene parser + feature extractor (implements metrics.features.ClassifierExtractor)."""

    def __init__(self, network: SceneParser, *, name: str = "shapes-oracle", sha256: str = ""):
        super().__init__(network, name=name, sha256=sha256)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Per-cell shape probabilities flattened to [B, 9*7] and renormalized (for IS)."""
        probs = split_cell_outputs(self.network(self._prepare(images)))["shape"].softmax(-1)
        probs = probs.flatten(1)
        return (probs / probs.sum(dim=1, keepdim=True)).cpu()

    @torch.no_grad()
    def parse(self, images: torch.Tensor) -> list[list[ParsedObject]]:
        """Objects found in each image, one list per image in grid order."""
        parts = split_cell_outputs(self.network(self._prepare(images)).float())
        shape_probs = parts["shape"].softmax(-1)  # (B, 9, 7)
        confidence, shape_index = shape_probs.max(-1)
        colors = parts["color"].argmax(-1)
        sizes = parts["size"].argmax(-1)
        offsets = parts["offset"]
        scenes = []
        for b in range(images.shape[0]):
            objects = []
            for cell in range(len(POSITIONS)):
                if int(shape_index[b, cell]) == 0:
                    continue
                objects.append(
                    ParsedObject(
                        shape=SHAPES[int(shape_index[b, cell]) - 1],
                        color=COLOR_NAMES[int(colors[b, cell])],
                        size=SIZE_NAMES[int(sizes[b, cell])],
                        position=POSITIONS[cell],
                        center=cell_center(
                            cell, float(offsets[b, cell, 0]), float(offsets[b, cell, 1])
                        ),
                        confidence=float(confidence[b, cell]),
                    )
                )
            scenes.append(objects)
        return scenes
