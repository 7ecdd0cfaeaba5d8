"""Task "scene-parser": train the shapes-world oracle on renders with generator-like artifacts.

Reads batch["target"] ([B, 9, 5], pixloom.data.shapes.targets) from the shapes dataset.
Loss: cross-entropy on each cell's shape (with "empty" as class 0), cross-entropy on colour
and size and L1 on the centre offset of occupied cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.data.artifacts import ArtifactOptions, apply_artifacts
from pixloom.data.transforms import resize_square
from pixloom.errors import DataError, require
from pixloom.models.scene_parser import SceneParser, SceneParserConfig, split_cell_outputs
from pixloom.training.task import Phase, register_task


@dataclass
class SceneParserTaskOptions:
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # backbone stages
    pooled_side: int = 8  # spatial side kept before the head
    feature_dim: int = 256  # penultimate width (FID feature space)
    resolution: int = 32  # the network's input side; batches are resized to it
    lr: float = 2e-3  # AdamW learning rate
    weight_decay: float = 0.01
    artifacts: ArtifactOptions = field(default_factory=ArtifactOptions)

    def __post_init__(self):
        require(self.lr > 0, "task_options.lr", self.lr, "a positive learning rate")


def scene_parser_loss(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and per-attribute accuracies of parser logits [B,9,K] against targets [B,9,5]."""
    parts = split_cell_outputs(logits.float())
    shape_target = target[..., 0].long()
    occupied = shape_target > 0
    shape_loss = F.cross_entropy(parts["shape"].flatten(0, 1), shape_target.flatten())
    color_loss = F.cross_entropy(parts["color"][occupied], target[..., 1].long()[occupied])
    size_loss = F.cross_entropy(parts["size"][occupied], target[..., 2].long()[occupied])
    offset_loss = (parts["offset"][occupied] - target[..., 3:5][occupied]).abs().mean()
    loss = shape_loss + color_loss + size_loss + 4 * offset_loss
    with torch.no_grad():
        stats = {
            "cells": (parts["shape"].argmax(-1) == shape_target).float().mean().item(),
            "color": (parts["color"][occupied].argmax(-1) == target[..., 1][occupied])
            .float()
            .mean()
            .item(),
            "size": (parts["size"][occupied].argmax(-1) == target[..., 2][occupied])
            .float()
            .mean()
            .item(),
            "offset": offset_loss.item(),
        }
    return loss, stats


class SceneParserTask:
    """One phase: AdamW on the parser with artifact augmentation."""

    ema_module = "parser"

    def __init__(self, options: SceneParserTaskOptions, dataset_info: Any):
        if not str(getattr(dataset_info, "name", "")).startswith("shapes"):
            raise DataError(
                f"task scene-parser trains on the shapes dataset, not {dataset_info.name!r}"
            )
        self.options = options
        self.model_config = SceneParserConfig(
            resolution=options.resolution,
            widths=tuple(options.widths),
            feature_dim=options.feature_dim,
        )
        self.parser = SceneParser(self.model_config)

    def modules(self) -> dict[str, nn.Module]:
        """The parser network."""
        return {"parser": self.parser}

    def phases(self) -> list[Phase]:
        """A single phase."""
        return [Phase("parse", ["parser"], self.options.lr, weight_decay=self.options.weight_decay)]

    def loss(self, phase: str, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Corrupt the renders, resize to the network's side, score every cell."""
        images = apply_artifacts(batch["image"], self.options.artifacts)
        images = resize_square(images, self.options.resolution)
        return scene_parser_loss(self.parser(images), batch["target"])

    def export_config(self) -> dict:
        """Family and model config of the inference checkpoint."""
        return {"family": "scene-parser", "model": config_to_dict(self.model_config)}

    def state_dict(self) -> dict:
        """No state beyond the network."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """A parser draws nothing."""
        return None


@register_task("scene-parser")
def make_scene_parser_task(options: dict, dataset_info: Any) -> SceneParserTask:
    """Build the task; unknown options are refused by name."""
    parsed = config_from_dict(SceneParserTaskOptions, options, where="task_options")
    return SceneParserTask(parsed, dataset_info)
