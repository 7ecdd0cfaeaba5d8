"""A tiny labeled in-memory dataset and config helpers shared by the training tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from pixloom.training.config import TrainConfig


@dataclass(frozen=True)
class ToyInfo:
    name: str = "toy"
    resolution: int = 8
    channels: int = 3
    num_classes: int = 2
    class_names: tuple[str, ...] = ("dark", "bright")
    has_captions: bool = False


class ToyDataset(Dataset):
    """Images whose class is their brightness sign, with fixed noise; 8x8 RGB."""

    def __init__(self, size: int = 32, resolution: int = 8, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (size,), generator=generator)
        noise = torch.randn(size, 3, resolution, resolution, generator=generator) * 0.5
        self.images = (noise + (self.labels * 2 - 1).float().view(-1, 1, 1, 1) * 0.3).clamp(-1, 1)
        self.info = ToyInfo(resolution=resolution)
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {
            "image": self.images[index],
            "caption": "",
            "label": int(self.labels[index]),
            "index": index,
        }


def toy_config(out, **overrides) -> TrainConfig:
    """A few-step fp32 CPU run of a tiny classifier."""
    values = dict(
        task="classifier",
        data="toy",
        resolution=8,
        task_options={"width": 8, "depth": 2, "lr": 1e-2},
        steps=6,
        batch_size=8,
        warmup_steps=2,
        ema_warmup=2,
        precision="fp32",
        device="cpu",
        out=str(out),
        checkpoint_every=2,
        keep_last=2,
        log_every=1,
        tensorboard=False,
        progress=False,
    )
    values.update(overrides)
    return TrainConfig(**values)
