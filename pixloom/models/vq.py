"""The image tokenizer: a convolutional autoencoder with a quantized bottleneck (VQGAN,
Esser et al. 2021, arXiv:2012.09841; l2-normalized low-dimensional codes of ViT-VQGAN,
Yu et al. 2022; or FSQ, Mentzer et al. 2023), plus the small PatchGAN of its adversarial phase.

DESIGN.md's tokenizer contract: `encode(img) -> Quantized(z, indices, loss)` and
`decode(indices) -> img`. Images are (B, 3, H, W) in [-1, 1]; a 32 px image with
`downsample` 4 becomes an 8x8 grid of tokens (2: 16x16), `grid_size` per side.

A text-conditioned decoder (config `text_encoder`, the built-in encoder's spec) also reads
the prompt: `decode(indices, prompts)`. Its positions cross-attend to the prompt's token
states at the token grid and at twice its side, so a code that leaves a small object's shape
open (a 2x2-token cross looks much like a diamond) is drawn as the prompt says. The encoder
and the codes are the same as without it. The attention outputs start at zero, so a decoder
fine-tuned from an unconditioned one starts as that decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from pixloom.errors import require
from pixloom.models.attention import attention
from pixloom.models.quantizers import FiniteScalarQuantizer, Quantized, VectorQuantizer
from pixloom.models.registry import register_model

DOWNSAMPLES = (2, 4, 8)
# Channel multiplier per downsampling stage when channel_mult is None.
DEFAULT_CHANNEL_MULT = {2: (1,), 4: (1, 2), 8: (1, 2, 2)}


@dataclass
class VqConfig:
    """Shape of a VQ/FSQ image tokenizer."""

    resolution: int = 32  # training image side; grid_size = resolution // downsample
    downsample: int = 4  # 2, 4 or 8: image pixels per token side
    channels: int = 64  # width of the first stage
    channel_mult: tuple[int, ...] | None = None  # one per stage (log2 downsample); None: default
    num_res_blocks: int = 1  # residual blocks per stage
    quantizer: Literal["vq", "fsq"] = (
        "vq"  # "vq" (learned codebook) or "fsq" (finite scalar levels)
    )
    codebook_size: int = 512  # vq only; fsq's size is the product of fsq_levels
    code_dim: int = 8  # vq only: low-dimensional codes look-up well (ViT-VQGAN uses 8-32)
    beta: float = 0.25  # vq commitment weight (VQ-VAE)
    restart_after: int = 50  # vq: training calls a code may go unused before it is restarted
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)  # fsq: levels per channel (1000 codes)
    # The decoder's prompt encoder ({"name": "builtin", vocab, dim, ...}); {}: no prompt.
    text_encoder: dict[str, Any] = field(default_factory=dict)
    text_heads: int = 4  # heads of the decoder's cross-attention to the prompt

    def __post_init__(self) -> None:
        require(
            self.downsample in DOWNSAMPLES,
            "model.downsample",
            self.downsample,
            "2, 4 or 8 (pixels per token)",
        )
        require(
            self.resolution >= self.downsample and self.resolution % self.downsample == 0,
            "model.resolution",
            self.resolution,
            f"a multiple of downsample={self.downsample}",
        )
        require(self.channels >= 1, "model.channels", self.channels, "an integer >= 1")
        stages = int(math.log2(self.downsample))
        if self.channel_mult is not None:
            require(
                len(self.channel_mult) == stages and all(m >= 1 for m in self.channel_mult),
                "model.channel_mult",
                list(self.channel_mult),
                f"{stages} integers >= 1 (one per stage of downsample={self.downsample}) or null",
            )
        require(self.num_res_blocks >= 1, "model.num_res_blocks", self.num_res_blocks, ">= 1")
        require(self.quantizer in ("vq", "fsq"), "model.quantizer", self.quantizer, "'vq' or 'fsq'")
        require(self.codebook_size >= 2, "model.codebook_size", self.codebook_size, ">= 2")
        require(self.code_dim >= 1, "model.code_dim", self.code_dim, ">= 1")
        require(self.beta >= 0, "model.beta", self.beta, ">= 0")
        require(
            self.restart_after >= 0, "model.restart_after", self.restart_after, ">= 0 (0: never)"
        )
        require(
            len(self.fsq_levels) >= 1 and all(level >= 2 for level in self.fsq_levels),
            "model.fsq_levels",
            list(self.fsq_levels),
            "integers >= 2, e.g. [8, 5, 5, 5]",
        )
        if self.text_encoder:
            require(
                self.text_encoder.get("name") == "builtin",
                "model.text_encoder",
                self.text_encoder.get("name"),
                "the built-in encoder's spec ({'name': 'builtin', ...}) or {}: a "
                "text-conditioned decoder trains its own encoder",
            )
            width = self.stage_channels[-1]
            require(
                self.text_heads >= 1 and width % self.text_heads == 0,
                "model.text_heads",
                self.text_heads,
                f"a divisor of the decoder's first width {width}",
            )

    @property
    def stage_channels(self) -> list[int]:
        """Channels of each downsampling stage."""
        mult = self.channel_mult or DEFAULT_CHANNEL_MULT[self.downsample]
        return [self.channels * m for m in mult]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels (VQGAN: 128 channels, 32 groups).

    Narrow layers keep >= 4 channels a group: with one channel a group the norm turns into an
    instance norm that erases each channel's mean, i.e. the flat colours of an image."""
    return nn.GroupNorm(math.gcd(32, max(1, channels // 4)), channels, eps=1e-6)


class ResBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm, SiLU, 3x3 conv) x 2 plus a skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            group_norm(in_channels),
            nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            group_norm(out_channels),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv (no checkerboard of transposed convs)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    """(B, 3, H, W) -> (B, out_dim, H / downsample, W / downsample)."""

    def __init__(self, config: VqConfig, out_dim: int):
        super().__init__()
        widths = config.stage_channels
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        previous = widths[0]
        for width in widths:
            for _ in range(config.num_res_blocks):
                layers.append(ResBlock(previous, width))
                previous = width
            layers.append(nn.Conv2d(width, width, 3, stride=2, padding=1))  # halves the side
        layers += [ResBlock(previous, previous), group_norm(previous), nn.SiLU()]
        layers.append(nn.Conv2d(previous, out_dim, 1))  # project to the code dimension
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TextCrossAttention(nn.Module):
    """Feature-map positions attend to a prompt's token states; a residual whose output
    projection starts at zero (the block starts as the identity)."""

    def __init__(self, channels: int, text_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels)
        self.query = nn.Linear(channels, channels)
        self.key_value = nn.Linear(text_dim, 2 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, text: Any) -> Tensor:
        """x (B, C, h, w); text a TextEmbedding (tokens (B, T, D), mask (B, T))."""
        batch, channels, height, width = x.shape
        heads = self.heads

        def split(t: Tensor) -> Tensor:  # (B, L, C) -> (B, heads, L, C / heads)
            return t.unflatten(-1, (heads, channels // heads)).transpose(1, 2)

        q = split(self.query(self.norm(x).flatten(2).transpose(1, 2)))
        k, v = self.key_value(text.tokens.to(x.dtype)).chunk(2, dim=-1)
        y = attention(q, split(k), split(v), text.mask[:, None, None, :])
        y = self.out(y.transpose(1, 2).flatten(2))  # (B, hw, C)
        return x + y.transpose(1, 2).reshape(batch, channels, height, width)


class Decoder(nn.Module):
    """(B, in_dim, h, w) -> (B, 3, h * downsample, w * downsample), not clamped.

    With `text_dim`, a TextCrossAttention follows the first residual block (at the token
    grid) and the first upsampling (twice its side); `net` keeps the unconditioned layout,
    so an unconditioned decoder's weights load into a conditioned one."""

    def __init__(self, config: VqConfig, in_dim: int, text_dim: int = 0):
        super().__init__()
        widths = config.stage_channels[::-1]
        previous = widths[0]
        layers: list[nn.Module] = [nn.Conv2d(in_dim, previous, 3, padding=1)]
        layers.append(ResBlock(previous, previous))
        attend = {"1": previous}  # net index -> channels there
        for width in widths:
            for _ in range(config.num_res_blocks):
                layers.append(ResBlock(previous, width))
                previous = width
            layers.append(Upsample(width))
            if len(attend) == 1:
                attend[str(len(layers) - 1)] = width
        layers += [group_norm(previous), nn.SiLU(), nn.Conv2d(previous, 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.cross = nn.ModuleDict(
            {i: TextCrossAttention(c, text_dim, config.text_heads) for i, c in attend.items()}
            if text_dim
            else {}
        )

    def forward(self, z: Tensor, text: Any = None) -> Tensor:
        if not self.cross:
            return self.net(z)
        for index, layer in enumerate(self.net):
            z = layer(z)
            if str(index) in self.cross:
                z = self.cross[str(index)](z, text)
        return z


class VqTokenizer(nn.Module):
    """Images <-> token grids; `net(x, t, cond)` returns the (unclamped) reconstruction."""

    def __init__(self, config: VqConfig):
        super().__init__()
        self.config = config
        if config.quantizer == "vq":
            self.quantizer: nn.Module = VectorQuantizer(
                config.codebook_size,
                config.code_dim,
                beta=config.beta,
                restart_after=config.restart_after,
            )
        else:
            self.quantizer = FiniteScalarQuantizer(config.fsq_levels)
        self.encoder = Encoder(config, self.quantizer.dim)
        self.text_encoder = None
        if config.text_encoder:
            from pixloom.text.registry import load_text_encoder

            self.text_encoder = load_text_encoder(config.text_encoder)
        text_dim = self.text_encoder.dim if self.text_encoder is not None else 0
        self.decoder = Decoder(config, self.quantizer.dim, text_dim)

    @property
    def grid_size(self) -> int:
        """Tokens per side for images of the configured resolution."""
        return self.config.resolution // self.config.downsample

    @property
    def codebook_size(self) -> int:
        """Number of distinct tokens."""
        return self.quantizer.codebook_size

    def encode(self, img: Tensor) -> Quantized:
        """Images (B, 3, H, W) in [-1, 1] -> Quantized with indices (B, H/ds, W/ds)."""
        factor = self.config.downsample
        require(
            img.dim() == 4 and img.shape[1] == 3,
            "img",
            tuple(img.shape),
            "a batch (B, 3, H, W) in [-1, 1]",
        )
        require(
            img.shape[-1] % factor == 0 and img.shape[-2] % factor == 0,
            "img",
            tuple(img.shape),
            f"height and width multiples of downsample={factor}",
        )
        return self.quantizer.quantize(self.encoder(img))

    @property
    def text_conditioned(self) -> bool:
        """Whether the decoder reads the prompt (decode needs `prompts`)."""
        return self.text_encoder is not None

    def encode_prompts(self, prompts: list[str] | None, count: int) -> Any:
        """The decoder's TextEmbedding of `count` prompts; None when it reads none."""
        if self.text_encoder is None:
            return None
        require(
            prompts is not None and len(prompts) == count,
            "prompts",
            None if prompts is None else f"{len(prompts)} prompts",
            f"one prompt per image ({count}): this tokenizer's decoder reads the prompt",
        )
        return self.text_encoder.encode(list(prompts))

    def decode_latents(self, z: Tensor, prompts: list[str] | None = None) -> Tensor:
        """Quantized latents (B, D, h, w) -> images (B, 3, h*ds, w*ds), not clamped.
        `prompts` (one per image) feed a text-conditioned decoder; any other ignores them."""
        return self.decoder(z, self.encode_prompts(prompts, z.shape[0]))

    def decode(self, indices: Tensor, prompts: list[str] | None = None) -> Tensor:
        """Token indices (B, h, w) -> images (B, 3, h*ds, w*ds) clamped to [-1, 1];
        `prompts` as in decode_latents."""
        require(
            bool((indices >= 0).all() and (indices < self.codebook_size).all()),
            "indices",
            f"values in [{int(indices.min())}, {int(indices.max())}]",
            f"token ids in [0, {self.codebook_size})",
        )
        weight = next(self.decoder.parameters())
        z = self.quantizer.lookup(indices.to(weight.device)).to(weight.dtype)
        return self.decode_latents(z, prompts).clamp(-1, 1)

    def forward(self, x: Tensor, t: Tensor | None = None, cond: object = None) -> Tensor:
        """Reconstruction of `x`; `cond` is the prompts of a text-conditioned decoder (t is
        unused: the network contract's slot)."""
        return self.decode_latents(self.encode(x).z, cond)


class VqDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017) of the SR fine-tune, on [-1, 1] images: a logit per patch."""

    def __init__(self, config: VqConfig):
        super().__init__()
        from pixloom.models.sr import PatchDiscriminator, PatchDiscriminatorConfig

        # 32 px -> 2 stride-2 stages (8x8 logits), 64 px and up -> 3 (patches ~ 34-70 px).
        depth = max(1, min(3, int(math.log2(config.resolution)) - 3))
        self.patches = PatchDiscriminator(
            PatchDiscriminatorConfig(features=config.channels, num_layers=depth)
        )

    def forward(self, x: Tensor, t: Tensor | None = None, cond: object = None) -> Tensor:
        return self.patches((x + 1) / 2)  # (B, 1, H / 2^L, W / 2^L)


@register_model("vq", VqConfig)
def build_vq(config: VqConfig) -> nn.Module:
    """Build the VQ/FSQ image tokenizer."""
    return VqTokenizer(config)


@register_model("vq-discriminator", VqConfig)
def build_vq_discriminator(config: VqConfig) -> nn.Module:
    """Build the patch discriminator of the tokenizer's adversarial phase."""
    return VqDiscriminator(config)
