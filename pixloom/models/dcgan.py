"""dcgan: the conditional DCGAN (Radford et al. 2016).

The generator normalizes with BatchNorm as DCGAN does; its gain and bias are predicted from
z and the projected text at every resolution (conditional BatchNorm, as in the class-
conditional generators of Miyato & Koyama 2018 and BigGAN, Brock et al. 2019), so the
caption steers every layer rather than only the input. The discriminator reads the text
through a projection head (Miyato & Koyama 2018). At the `attention_sides`, the image
positions of both networks also cross-attend to the prompt's token states (GigaGAN's
generator and discriminator both do): the pooled vector alone barely tells "a red circle
left of a blue square" from the same caption with the colours swapped. In eval mode the
generator uses running statistics; `recalibrate_batch_norm` recomputes them for averaged
(EMA) weights.
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
from pixloom.models.stylegan_layers import CrossAttention


@dataclass
class DcganConfig:
    resolution: int = 32  # output side: 4 * 2**k (16, 32, 64, 128)
    z_dim: int = 128  # latent width
    width: int = 32  # channels at full resolution; doubled per halving, capped at max_width
    max_width: int = 256  # channel cap
    text_encoder: dict[str, Any] = field(default_factory=dict)  # encoder spec; {}: uncond.
    critic: dict[str, Any] = field(default_factory=dict)  # judges best_of drafts (export --critic)
    attention_sides: list[int] = field(default_factory=list)  # sides where G and D attend to
    # the prompt's token states (e.g. [8, 16]); empty: the pooled text only
    attention_heads: int = 4

    def __post_init__(self) -> None:
        side = self.resolution
        require(
            side >= 8 and side & (side - 1) == 0,
            "model.resolution",
            side,
            "a power of two >= 8 (16, 32, 64, 128)",
        )
        require(self.z_dim >= 1, "model.z_dim", self.z_dim, "an integer >= 1")
        require(self.width >= 1, "model.width", self.width, "an integer >= 1")
        require(self.max_width >= self.width, "model.max_width", self.max_width, ">= width")
        text_dim(self.text_encoder)
        sides = _sides(self)
        for side in self.attention_sides:
            require(side in sides, "model.attention_sides", self.attention_sides,
                    f"sides among {sides}")  # fmt: skip
            require(self.channels(side) % self.attention_heads == 0, "model.attention_heads",
                    self.attention_heads, f"a divisor of {self.channels(side)} channels at "
                    f"side {side}")  # fmt: skip
        require(not self.attention_sides or bool(self.text_encoder), "model.attention_sides",
                self.attention_sides, "empty for an unconditional model (no tokens to attend)")  # fmt: skip

    def channels(self, side: int) -> int:
        """Channels of the feature map of side `side`."""
        return min(self.width * self.resolution // side, self.max_width)


def _attentions(config: DcganConfig) -> nn.ModuleDict:
    """CrossAttention per configured side (keys are the sides as strings)."""
    return nn.ModuleDict({
        str(side): CrossAttention(config.channels(side), text_dim(config.text_encoder),
                                  config.attention_heads)
        for side in config.attention_sides
    })  # fmt: skip


def _attend(attentions: nn.ModuleDict, x: torch.Tensor, cond: Any) -> torch.Tensor:
    """x + attention to the tokens when x's side has an attention layer, else x."""
    side = str(x.shape[-1])
    return attentions[side](x, cond.tokens, cond.mask) if side in attentions else x


def _sides(config: DcganConfig) -> list[int]:
    sides, side = [], 4
    while side <= config.resolution:
        sides.append(side)
        side *= 2
    return sides  # [4, 8, ..., resolution]


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without affine parameters, then x * (1 + gain(c)) + bias(c) per sample."""

    def __init__(self, channels: int, condition: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.affine = nn.Linear(condition, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features and the (B, condition) vector."""
        gain, bias = self.affine(c).to(x.dtype)[:, :, None, None].chunk(2, 1)
        return self.norm(x) * (1 + gain) + bias


class DcganGenerator(nn.Module):
    """net(z, None, cond) -> images (B, 3, R, R) in [-1, 1]."""

    def __init__(self, config: DcganConfig):
        super().__init__()
        self.config = config
        self.text_encoder = make_text_encoder(config.text_encoder)
        self.critic = make_critic(config.critic)
        dim = text_dim(config.text_encoder)
        self.text = TextProjection(dim, config.z_dim) if dim else None
        sides = _sides(config)
        self.start = nn.Linear(config.z_dim * (2 if dim else 1), config.channels(4) * 16)
        # BatchNorm after the stem and every upsampling conv, as in DCGAN (Radford et al.
        # 2016): without it the generator learned the shapes world far more slowly here.
        condition = self.start.in_features
        self.norms = nn.ModuleList(
            ConditionalBatchNorm(config.channels(side), condition) for side in sides
        )
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(config.channels(a), config.channels(b), 4, 2, 1, bias=False)
            for a, b in zip(sides[:-1], sides[1:])
        )
        self.act = nn.LeakyReLU(0.2)
        self.attentions = _attentions(config)
        self.to_rgb = nn.Conv2d(config.channels(config.resolution), 3, 3, padding=1)

    def forward(self, z: torch.Tensor, t: Any = None, cond: Any = None) -> torch.Tensor:
        """Latents (B, z_dim) and the text embedding -> images."""
        check_condition(self.config.text_encoder, cond, z.shape[0])
        c = z if self.text is None else torch.cat([z, self.text(cond.pooled.to(z.dtype))], 1)
        x = self.start(c).view(z.shape[0], -1, 4, 4)  # (B, C4, 4, 4)
        x = self.act(self.norms[0](x.contiguous(memory_format=torch.channels_last), c))
        x = _attend(self.attentions, x, cond)
        for up, norm in zip(self.ups, self.norms[1:]):
            x = _attend(self.attentions, self.act(norm(up(x), c)), cond)
        return torch.tanh(self.to_rgb(x))


class DcganDiscriminator(nn.Module):
    """net(images, None, cond) -> logits (B,)."""

    def __init__(self, config: DcganConfig):
        super().__init__()
        self.config = config
        sides = _sides(config)[::-1]  # [R, ..., 4]
        self.from_rgb = nn.Conv2d(3, config.channels(config.resolution), 3, padding=1)
        self.downs = nn.ModuleList(
            nn.Conv2d(config.channels(a), config.channels(b), 4, 2, 1)
            for a, b in zip(sides[:-1], sides[1:])
        )
        self.act = nn.LeakyReLU(0.2)
        self.attentions = _attentions(config)
        features = config.channels(4)
        self.flat = nn.Linear(features * 16, features)
        self.head = ProjectionHead(features, text_dim(config.text_encoder))

    def forward(self, x: torch.Tensor, t: Any = None, cond: Any = None) -> torch.Tensor:
        """Images (B, 3, R, R) -> logits."""
        check_condition(self.config.text_encoder, cond, x.shape[0])
        x = _attend(self.attentions, self.act(self.from_rgb(x)), cond)
        for down in self.downs:
            x = _attend(self.attentions, self.act(down(x)), cond)
        h = self.act(self.flat(x.flatten(1)))  # (B, C4*16) -> (B, C4)
        return self.head(h, cond)


@register_model("dcgan", DcganConfig)
def build_dcgan_generator(config: DcganConfig) -> DcganGenerator:
    """The dcgan generator."""
    return DcganGenerator(config)


@register_model("dcgan-discriminator", DcganConfig)
def build_dcgan_discriminator(config: DcganConfig) -> DcganDiscriminator:
    """The dcgan discriminator."""
    return DcganDiscriminator(config)
