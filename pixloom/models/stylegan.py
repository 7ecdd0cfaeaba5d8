"""stylegan: a text-conditional StyleGAN2-style generator and projection discriminator.

Generator (Karras et al. 2020, StyleGAN2): a mapping network turns [z, projected pooled
text] into w; a synthesis network from a learned 4x4 constant applies modulated/demodulated
3x3 convs with per-layer noise, bilinear 2x upsampling and skip-connected RGB outputs.
At sides <= attention_max_side, image positions cross-attend to the prompt's token states
(text-conditional StyleGAN as in GigaGAN, Kang et al. 2023). One w per style layer allows
style mixing; truncation lives in pixloom.sampling.truncation.

Discriminator: StyleGAN2's residual blocks, minibatch standard deviation, and a projection
head (Miyato & Koyama 2018) on the pooled text. The bilinear resampling replaces
StyleGAN2's FIR filters (simpler; fine at 32-128 px).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.errors import InvalidValue, require
from pixloom.models.critic import make_critic
from pixloom.models.gan_conditioning import (
    ProjectionHead,
    check_condition,
    make_text_encoder,
    text_dim,
)
from pixloom.models.registry import register_model
from pixloom.models.stylegan_layers import (
    CrossAttention,
    DiscriminatorBlock,
    EqualLinear,
    StyleLayer,
    ToRGB,
    minibatch_stddev,
    pixel_norm,
)

NOISE_MODES = ("random", "const", "none")


@dataclass
class StyleGanConfig:
    resolution: int = 32  # output side: 4 * 2**k (16, 32, 64, 128)
    z_dim: int = 128  # latent width
    w_dim: int = 128  # intermediate latent (style) width
    mapping_layers: int = 4  # MLP depth of the mapping network (StyleGAN: 8)
    channel_base: int = 4096  # channels at side s: min(channel_base // s, channel_max)
    channel_max: int = 128
    attention_max_side: int = 8  # cross-attention to tokens at sides <= this (0: none)
    attention_heads: int = 4
    text_encoder: dict[str, Any] = field(default_factory=dict)  # encoder spec; {}: uncond.
    critic: dict[str, Any] = field(default_factory=dict)  # judges best_of drafts (export --critic)

    def __post_init__(self) -> None:
        side = self.resolution
        require(
            16 <= side <= 256 and side & (side - 1) == 0,
            "model.resolution",
            side,
            "a power of two from 16 to 256",
        )
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max"):
            require(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), ">= 1")
        require(self.attention_max_side >= 0, "model.attention_max_side", side, ">= 0")
        for s in self.sides():
            require(
                self.channels(s) % self.attention_heads == 0,
                "model.attention_heads",
                self.attention_heads,
                f"a divisor of every stage's channels ({self.channels(s)} at {s} px)",
            )
        text_dim(self.text_encoder)

    def sides(self) -> list[int]:
        """Feature-map sides of the synthesis network: [4, 8, ..., resolution]."""
        return [4 * 2**i for i in range(self.resolution.bit_length() - 2)]

    def channels(self, side: int) -> int:
        """Channels at feature-map side `side`."""
        return max(1, min(self.channel_base // side, self.channel_max))

    @property
    def num_ws(self) -> int:
        """Number of style inputs (one per StyleLayer and ToRGB, shared as in StyleGAN2)."""
        return 2 * len(self.sides())


class MappingNetwork(nn.Module):
    """(z, pooled text) -> w (B, w_dim); the MLP runs at 1/100 learning rate (StyleGAN)."""

    def __init__(self, config: StyleGanConfig):
        super().__init__()
        dim = text_dim(config.text_encoder)
        self.embed = EqualLinear(dim, config.w_dim) if dim else None
        inputs = config.z_dim + (config.w_dim if dim else 0)
        widths = [inputs] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(
            EqualLinear(a, b, lr_mul=0.01) for a, b in zip(widths[:-1], widths[1:])
        )

    def forward(self, z: torch.Tensor, cond: Any) -> torch.Tensor:
        """Latents (B, z_dim) -> w (B, w_dim)."""
        x = pixel_norm(z)
        if self.embed is not None:
            x = torch.cat([x, pixel_norm(self.embed(cond.pooled.to(z.dtype)))], 1)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2) * 2**0.5
        return x


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) + token states -> images (B, 3, R, R)."""

    def __init__(self, config: StyleGanConfig):
        super().__init__()
        self.config = config
        sides, dim = config.sides(), text_dim(config.text_encoder)
        self.const = nn.Parameter(torch.randn(config.channels(4), 4, 4))
        self.layers, self.to_rgbs, self.attentions = nn.ModuleList(), nn.ModuleList(), {}
        attentions = {}
        for i, side in enumerate(sides):
            inputs = config.channels(sides[i - 1] if i else 4)
            self.layers.append(StyleLayer(inputs, config.channels(side), config.w_dim, side))
            self.layers.append(
                StyleLayer(config.channels(side), config.channels(side), config.w_dim, side)
            )
            self.to_rgbs.append(ToRGB(config.channels(side), config.w_dim))
            if dim and side <= config.attention_max_side:
                attentions[str(side)] = CrossAttention(
                    config.channels(side), dim, config.attention_heads
                )
        self.attentions = nn.ModuleDict(attentions)

    def forward(self, ws: torch.Tensor, cond: Any, noise_mode: str = "random") -> torch.Tensor:
        """Style layer i uses ws[:, i]; ToRGB of stage k shares ws[:, 2k + 1]."""
        batch = ws.shape[0]
        x = self.const[None].expand(batch, -1, -1, -1).to(ws.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        rgb = None
        for k, side in enumerate(self.config.sides()):
            if k:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.layers[2 * k](x, ws[:, 2 * k], noise_mode)
            if str(side) in self.attentions:
                x = self.attentions[str(side)](x, cond.tokens, cond.mask)
            x = self.layers[2 * k + 1](x, ws[:, 2 * k + 1], noise_mode)
            y = self.to_rgbs[k](x, ws[:, 2 * k + 1])
            if rgb is not None:
                rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            rgb = y if rgb is None else rgb + y
        return rgb


class StyleGanGenerator(nn.Module):
    """net(z, None, cond) -> images (B, 3, R, R), roughly in [-1, 1] (no output squashing)."""

    def __init__(self, config: StyleGanConfig):
        super().__init__()
        self.config = config
        self.text_encoder = make_text_encoder(config.text_encoder)
        self.critic = make_critic(config.critic)
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)

    def map(self, z: torch.Tensor, cond: Any) -> torch.Tensor:
        """Latents (B, z_dim) -> w (B, w_dim)."""
        check_condition(self.config.text_encoder, cond, z.shape[0])
        return self.mapping(z, cond)

    def synthesize(self, ws: torch.Tensor, cond: Any, noise_mode: str = "random") -> torch.Tensor:
        """w (B, w_dim) or ws (B, num_ws, w_dim) -> images."""
        if noise_mode not in NOISE_MODES:
            raise InvalidValue("noise_mode", noise_mode, f"one of {', '.join(NOISE_MODES)}")
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.config.num_ws, -1)  # (B, num_ws, w_dim)
        return self.synthesis(ws, cond, noise_mode)

    def forward(
        self, z: torch.Tensor, t: Any = None, cond: Any = None, noise_mode: str = "random"
    ) -> torch.Tensor:
        """Latents (B, z_dim) and the text embedding -> images."""
        return self.synthesize(self.map(z, cond), cond, noise_mode)


class StyleGanDiscriminator(nn.Module):
    """net(images, None, cond) -> logits (B,)."""

    def __init__(self, config: StyleGanConfig):
        super().__init__()
        self.config = config
        sides = config.sides()[::-1]  # [R, ..., 4]
        self.from_rgb = nn.Conv2d(3, config.channels(config.resolution), 1)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(config.channels(a), config.channels(b))
            for a, b in zip(sides[:-1], sides[1:])
        )
        features = config.channels(4)
        self.conv = nn.Conv2d(features + 1, features, 3, padding=1)
        self.flat = nn.Linear(features * 16, features)
        self.head = ProjectionHead(features, text_dim(config.text_encoder))

    def forward(self, x: torch.Tensor, t: Any = None, cond: Any = None) -> torch.Tensor:
        """Images (B, 3, R, R) -> logits."""
        check_condition(self.config.text_encoder, cond, x.shape[0])
        x = F.leaky_relu(self.from_rgb(x), 0.2)
        for block in self.blocks:
            x = block(x)
        x = F.leaky_relu(self.conv(minibatch_stddev(x)), 0.2)
        h = F.leaky_relu(self.flat(x.flatten(1)), 0.2)  # (B, C*16) -> (B, C)
        return self.head(h, cond)


@register_model("stylegan", StyleGanConfig)
def build_stylegan_generator(config: StyleGanConfig) -> StyleGanGenerator:
    """The stylegan generator."""
    return StyleGanGenerator(config)


@register_model("stylegan-discriminator", StyleGanConfig)
def build_stylegan_discriminator(config: StyleGanConfig) -> StyleGanDiscriminator:
    """The stylegan discriminator."""
    return StyleGanDiscriminator(config)
