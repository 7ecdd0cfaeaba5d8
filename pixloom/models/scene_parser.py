"""The shapes-world scene parser: the oracle that reads objects back out of an image.

Every shapes-world object lies inside its own cell of the 3x3 grid (SHAPES.md), so the
parser predicts, for each of the 9 cells, whether an object's centre lies there and if so
its shape, colour, size and centre offset. A small convolutional backbone feeds a global
MLP head; its 256-d penultimate features are pixloom's feature space for FID/KID on this
world (as Inception's pool3 is for natural images, Heusel et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from pixloom.errors import require
from pixloom.models.registry import register_model

GRID_CELLS = 9
NUM_SHAPES = 6  # the order of pixloom.data.shapes.world.SHAPES
NUM_COLORS = 8  # the order of pixloom.data.shapes.world.COLORS
NUM_SIZES = 2  # small, large
# Per cell: shape logits with index 0 = empty, colour, size, centre offset (x, y).
CELL_OUTPUTS = (NUM_SHAPES + 1) + NUM_COLORS + NUM_SIZES + 2


@dataclass
class SceneParserConfig:
    resolution: int = 32  # input side; other sizes are resized by the oracle wrapper
    widths: tuple[int, ...] = (
        32,
        64,
        128,
    )  # channels per stage; each stage after the first halves the side
    pooled_side: int = 8  # spatial side kept before the head
    feature_dim: int = 256  # penultimate width: the FID feature space

    def __post_init__(self):
        require(16 <= self.resolution <= 256, "resolution", self.resolution, "16 to 256")
        require(len(self.widths) >= 2, "widths", self.widths, "at least two stages")
        require(self.pooled_side >= 3, "pooled_side", self.pooled_side, "an integer >= 3")
        require(self.feature_dim >= 16, "feature_dim", self.feature_dim, "an integer >= 16")


class ConvStage(nn.Module):
    """(stride-2 conv unless first) -> conv, each with BatchNorm and SiLU.

    BatchNorm rather than GroupNorm: on CPU its bf16 channels_last kernels are several times
    faster here, and the parser is always run in eval mode after training.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.silu(self.norm1(self.conv1(x)))
        return x + F.silu(self.norm2(self.conv2(x)))


def conv_stages(widths: Sequence[int]) -> nn.ModuleList:
    """ConvStages from RGB through `widths` channels; every stage after the first halves the
    side (the scene parser's backbone, and the critic's image stem)."""
    channels = [3, *widths]
    return nn.ModuleList(
        ConvStage(channels[i], channels[i + 1], downsample=i > 0) for i in range(len(widths))
    )


class SceneParser(nn.Module):
    """image [B,3,R,R] in [-1,1] -> per-cell logits [B,9,CELL_OUTPUTS]."""

    def __init__(self, config: SceneParserConfig):
        super().__init__()
        self.config = config
        self.stages = conv_stages(config.widths)
        flat = config.widths[-1] * config.pooled_side**2
        self.project = nn.Linear(flat, config.feature_dim)
        self.head = nn.Linear(config.feature_dim, GRID_CELLS * CELL_OUTPUTS)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features [B, feature_dim]."""
        for stage in self.stages:
            x = stage(x)
        x = F.adaptive_avg_pool2d(x, self.config.pooled_side).flatten(1)
        return F.silu(self.project(x))

    def forward(self, x: Tensor, t: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        logits = self.head(self.features(x))
        return logits.view(-1, GRID_CELLS, CELL_OUTPUTS)  # (B, cells, outputs)


def split_cell_outputs(logits: Tensor) -> dict[str, Tensor]:
    """[B,9,CELL_OUTPUTS] -> named parts: shape (7), color (8), size (2), offset (2, in [0,1])."""
    shape_end = NUM_SHAPES + 1
    color_end = shape_end + NUM_COLORS
    size_end = color_end + NUM_SIZES
    return {
        "shape": logits[..., :shape_end],
        "color": logits[..., shape_end:color_end],
        "size": logits[..., color_end:size_end],
        "offset": torch.sigmoid(logits[..., size_end:]),
    }


@register_model("scene-parser", SceneParserConfig)
def build_scene_parser(config: SceneParserConfig) -> SceneParser:
    """The shapes-world oracle network."""
    return SceneParser(config)
