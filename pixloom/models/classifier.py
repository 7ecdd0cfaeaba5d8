"""A small residual ConvNet classifier: the training engine's test task and the digits oracle.

GroupNorm instead of BatchNorm (Wu & He 2018) so a batch's statistics never leak between
samples or ranks, pre-activation residual blocks (He et al. 2016, "Identity Mappings in
Deep Residual Networks") and a global-average-pooling head (Lin et al. 2014, "Network In
Network"), so the same weights accept any resolution divisible by the downsampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.errors import require
from pixloom.models.registry import register_model


@dataclass
class ClassifierConfig:
    resolution: int = 32  # training image side; must be divisible by 2 ** (depth - 1)
    in_channels: int = 3  # RGB
    num_classes: int = 10
    width: int = 32  # channels of the first stage; each later stage doubles them
    depth: int = 3  # stages; every stage after the first halves the resolution
    groups: int = 8  # GroupNorm groups; width must be divisible by it
    norm: Literal["group", "batch"] = "group"  # BatchNorm is several times faster in bf16 on CPU

    def __post_init__(self) -> None:
        require(self.depth >= 1, "depth", self.depth, "an integer >= 1")
        require(
            self.resolution >= 2 ** (self.depth - 1)
            and self.resolution % 2 ** (self.depth - 1) == 0,
            "resolution",
            self.resolution,
            f"a multiple of 2 ** (depth - 1) = {2 ** (self.depth - 1)}",
        )
        require(self.in_channels >= 1, "in_channels", self.in_channels, "an integer >= 1")
        require(self.num_classes >= 2, "num_classes", self.num_classes, "an integer >= 2")
        require(self.groups >= 1, "groups", self.groups, "an integer >= 1")
        require(
            self.width >= self.groups and self.width % self.groups == 0,
            "width",
            self.width,
            f"a positive multiple of groups={self.groups}",
        )


def make_norm(kind: str, channels: int, groups: int) -> nn.Module:
    """GroupNorm(groups) or BatchNorm2d over `channels`."""
    return nn.GroupNorm(groups, channels) if kind == "group" else nn.BatchNorm2d(channels)


class ResidualBlock(nn.Module):
    """Pre-activation block: norm-SiLU-conv3x3 twice, plus a 1x1 projection when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, norm: str = "group"):
        super().__init__()
        self.norm1 = make_norm(norm, in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)  # norm follows
        self.norm2 = make_norm(norm, out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Classifier(nn.Module):
    """images [B, C, H, W] in [-1, 1] -> logits [B, num_classes]."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        channels = config.width
        self.stem = nn.Conv2d(config.in_channels, channels, 3, padding=1)
        stages = []
        for index in range(config.depth):
            out_channels = config.width * 2**index
            block = ResidualBlock(channels, out_channels, config.groups, config.norm)
            pool = nn.AvgPool2d(2) if index > 0 else nn.Identity()
            stages.append(nn.Sequential(pool, block))
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.head_norm = make_norm(config.norm, channels, config.groups)
        self.head = nn.Linear(channels, config.num_classes)
        self.feature_dim = channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features [B, feature_dim] (for oracle metrics)."""
        h = self.stages(self.stem(x))  # (B, feature_dim, H / 2**(depth-1), W / 2**(depth-1))
        return F.silu(self.head_norm(h)).mean(dim=(2, 3))  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, num_classes]."""
        return self.head(self.features(x))


@register_model("classifier", ClassifierConfig)
def build_classifier(config: ClassifierConfig) -> Classifier:
    """Build a Classifier from its config."""
    return Classifier(config)
