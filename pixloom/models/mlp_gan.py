"""mlp-gan: the tiny reference GAN (Goodfellow et al. 2014) with text conditioning.

The generator maps [z, projected text] through an MLP to a tanh image; the discriminator
flattens the image into an MLP whose features feed a projection head (gan_conditioning.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from pixloom.errors import require
from pixloom.models.critic import make_critic
from pixloom.models.gan_conditioning import (
    ProjectionHead,
    TextProjection,
    check_condition,
    make_text_encoder,
    text_dim,
)
from pixloom.models.registry import register_model


@dataclass
class MlpGanConfig:
    resolution: int = 16  # output side in pixels
    z_dim: int = 64  # latent width
    hidden: int = 256  # width of the hidden layers
    layers: int = 2  # hidden layers of G and D
    text_encoder: dict[str, Any] = field(default_factory=dict)  # encoder spec; {}: uncond.
    critic: dict[str, Any] = field(default_factory=dict)  # judges best_of drafts (export --critic)

    def __post_init__(self) -> None:
        require(4 <= self.resolution <= 64, "model.resolution", self.resolution, "4 to 64")
        require(self.z_dim >= 1, "model.z_dim", self.z_dim, "an integer >= 1")
        require(self.hidden >= 1, "model.hidden", self.hidden, "an integer >= 1")
        require(self.layers >= 1, "model.layers", self.layers, "an integer >= 1")
        text_dim(self.text_encoder)


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class MlpGenerator(nn.Module):
    """net(z, None, cond) -> images (B, 3, R, R) in [-1, 1]."""

    def __init__(self, config: MlpGanConfig):
        super().__init__()
        self.config = config
        self.text_encoder = make_text_encoder(config.text_encoder)
        self.critic = make_critic(config.critic)
        dim = text_dim(config.text_encoder)
        self.text = TextProjection(dim, config.z_dim) if dim else None
        inputs = config.z_dim * (2 if dim else 1)
        self.body = _mlp([inputs] + [config.hidden] * config.layers)
        self.out = nn.Linear(config.hidden, 3 * config.resolution**2)

    def forward(self, z: torch.Tensor, t: Any = None, cond: Any = None) -> torch.Tensor:
        """Latents (B, z_dim) and the text embedding -> images."""
        check_condition(self.config.text_encoder, cond, z.shape[0])
        x = z if self.text is None else torch.cat([z, self.text(cond.pooled.to(z.dtype))], 1)
        side = self.config.resolution
        return torch.tanh(self.out(self.body(x))).view(-1, 3, side, side)  # (B, 3, R, R)


class MlpDiscriminator(nn.Module):
    """net(images, None, cond) -> logits (B,)."""

    def __init__(self, config: MlpGanConfig):
        super().__init__()
        self.config = config
        self.body = _mlp([3 * config.resolution**2] + [config.hidden] * config.layers)
        self.head = ProjectionHead(config.hidden, text_dim(config.text_encoder))

    def forward(self, x: torch.Tensor, t: Any = None, cond: Any = None) -> torch.Tensor:
        """Images (B, 3, R, R) -> logits."""
        check_condition(self.config.text_encoder, cond, x.shape[0])
        return self.head(self.body(x.flatten(1)), cond)  # (B, 3*R*R) -> (B,)


@register_model("mlp-gan", MlpGanConfig)
def build_mlp_generator(config: MlpGanConfig) -> MlpGenerator:
    """The mlp-gan generator."""
    return MlpGenerator(config)


@register_model("mlp-gan-discriminator", MlpGanConfig)
def build_mlp_discriminator(config: MlpGanConfig) -> MlpDiscriminator:
    """The mlp-gan discriminator."""
    return MlpDiscriminator(config)
