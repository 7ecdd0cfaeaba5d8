"""Task "classifier": cross-entropy training of pixloom.models.classifier on labeled images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.errors import DataError, require
from pixloom.models.classifier import Classifier, ClassifierConfig
from pixloom.training.task import Phase, register_task


@dataclass
class ClassifierTaskOptions:
    width: int = 32  # channels of the first stage
    depth: int = 3  # stages (each later one halves the resolution)
    norm: Literal["group", "batch"] = "group"  # normalization layers of the classifier
    lr: float = 2e-3  # AdamW learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    label_smoothing: float = 0.0  # Szegedy et al. 2016; 0 disables
    augment: bool = False  # random translations of up to `shift` pixels
    shift: int = 2  # maximum translation in pixels when augment is on

    def __post_init__(self) -> None:
        require(self.lr > 0, "task_options.lr", self.lr, "a positive learning rate")
        require(self.weight_decay >= 0, "task_options.weight_decay", self.weight_decay, ">= 0")
        require(
            0 <= self.label_smoothing < 1,
            "task_options.label_smoothing",
            self.label_smoothing,
            "a value in [0, 1)",
        )
        require(self.shift >= 0, "task_options.shift", self.shift, "an integer >= 0")


def random_translate(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Shift each image by up to `shift` pixels (replicate padding), drawn from torch's RNG."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
    offsets = torch.randint(0, 2 * shift + 1, (batch, 2), device=images.device)
    rows = offsets[:, :1] + torch.arange(height, device=images.device)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(width, device=images.device)  # (B, W)
    picked = padded.permute(0, 2, 3, 1)[
        torch.arange(batch, device=images.device)[:, None, None], rows[:, :, None], cols[:, None, :]
    ]  # (B, H, W, C)
    return picked.permute(0, 3, 1, 2)  # (B, C, H, W), channels_last strides


class ClassifierTask:
    """One phase: AdamW on cross-entropy of the classifier's logits against batch["label"]."""

    ema_module = "classifier"

    def __init__(self, options: ClassifierTaskOptions, dataset_info: Any):
        num_classes = getattr(dataset_info, "num_classes", 0) or 0
        if num_classes < 2:
            raise DataError(
                f"task classifier needs a labeled dataset; {getattr(dataset_info, 'name', '?')} "
                f"has num_classes={num_classes}"
            )
        self.options = options
        self.model_config = ClassifierConfig(
            resolution=dataset_info.resolution,
            in_channels=getattr(dataset_info, "channels", 3),
            num_classes=num_classes,
            width=options.width,
            depth=options.depth,
            norm=options.norm,
        )
        self.classifier = Classifier(self.model_config)

    def modules(self) -> dict[str, nn.Module]:
        """The single trained network."""
        return {"classifier": self.classifier}

    def phases(self) -> list[Phase]:
        """One phase updating the classifier."""
        options = self.options
        return [Phase("classify", ["classifier"], options.lr, weight_decay=options.weight_decay)]

    def loss(self, phase: str, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy (fp32) and accuracy of the batch."""
        images, labels = batch["image"], batch["label"]
        if self.options.augment and self.options.shift > 0:
            images = random_translate(images, self.options.shift)
        logits = self.classifier(images).float()
        loss = F.cross_entropy(logits, labels, label_smoothing=self.options.label_smoothing)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return loss, {"accuracy": float(accuracy)}

    def export_config(self) -> dict:
        """The inference checkpoint's family and model config."""
        return {"family": "classifier", "model": config_to_dict(self.model_config)}

    def state_dict(self) -> dict:
        """No state beyond the modules."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """A classifier draws no samples."""
        return None


@register_task("classifier")
def make_classifier_task(options: dict, dataset_info: Any) -> ClassifierTask:
    """Build the classifier task from its options (unknown options are refused by name)."""
    return ClassifierTask(
        config_from_dict(ClassifierTaskOptions, options, where="task_options"), dataset_info
    )
