"""Super-resolution networks: ESPCN, EDSR, RRDB (ESRGAN) and a small patch discriminator for adversarial SR.

Every generator maps an RGB image in [0, 1] of shape (B, 3, H, W) to (B, 3, H*s, W*s) in
about [0, 1] (not clamped, so the L1 loss sees the raw output); `net(x) -> Tensor`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from pixloom.errors import require
from pixloom.models.registry import register_model

SCALES = (2, 3, 4)
# Mean RGB of DIV2K, as in EDSR's MeanShift: centring the input lets the body start near 0.
RGB_MEAN = (0.4488, 0.4371, 0.4040)


def check_scale(scale: int) -> None:
    """Refuse a scale factor the SR networks do not implement."""
    require(scale in SCALES, "scale", scale, "one of 2, 3, 4")


def run_fp32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run an output layer in fp32 even under bf16 autocast.

    One bf16 step at a bright pixel is 1/256, the whole tiled-versus-untiled budget, so the
    layer that writes pixels must not round them; it costs under 1% of a forward pass.
    """
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float())


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3x3 convolution that keeps the spatial size."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class SubPixelUpsampler(nn.Sequential):
    """Conv + PixelShuffle stages (Shi et al. 2016): x4 as two x2 stages, x2 and x3 as one."""

    def __init__(self, scale: int, features: int):
        stages: list[nn.Module] = []
        factors = [2, 2] if scale == 4 else [scale]
        for factor in factors:
            stages += [conv3x3(features, features * factor * factor), nn.PixelShuffle(factor)]
        super().__init__(*stages)


# ---------------------------------------------------------------- ESPCN


@dataclass
class EspcnConfig:
    """Shape of an ESPCN generator."""

    scale: int = 4
    channels: int = 3
    features: int = 64  # the paper's (64, 32) feature maps with 5-3-3 kernels
    hidden: int = 32

    def __post_init__(self):
        check_scale(self.scale)
        require(self.features >= 1, "features", self.features, "a positive integer")
        require(self.hidden >= 1, "hidden", self.hidden, "a positive integer")


class Espcn(nn.Module):
    """ESPCN (Shi et al. 2016, arXiv:1609.05158): all convs at LR, one sub-pixel shuffle."""

    def __init__(self, config: EspcnConfig):
        super().__init__()
        self.config = config
        s, c = config.scale, config.channels
        self.body = nn.Sequential(
            nn.Conv2d(c, config.features, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(config.features, config.hidden, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(config.hidden, c * s * s, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(s)
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, H, W) -> (B, 3*s*s, H, W) -> (B, 3, H*s, W*s)
        hidden = self.body[:-1](x - self.mean)
        return self.shuffle(run_fp32(self.body[-1], hidden)) + self.mean


@register_model("espcn", EspcnConfig)
def build_espcn(config: EspcnConfig) -> nn.Module:
    """Build an ESPCN generator."""
    return Espcn(config)


# ---------------------------------------------------------------- EDSR


@dataclass
class EdsrConfig:
    """Shape of an EDSR generator."""

    scale: int = 4
    channels: int = 3
    features: int = 64  # EDSR-baseline width; the large model uses 256
    num_blocks: int = 16  # EDSR-baseline depth; the large model uses 32
    res_scale: float = 1.0  # residual scaling (0.1 in the large model keeps training stable)

    def __post_init__(self):
        check_scale(self.scale)
        require(self.features >= 1, "features", self.features, "a positive integer")
        require(self.num_blocks >= 1, "num_blocks", self.num_blocks, "a positive integer")
        require(0 < self.res_scale <= 1, "res_scale", self.res_scale, "a number in (0, 1]")


class ResBlock(nn.Module):
    """conv-ReLU-conv with a scaled identity skip and no batch norm (EDSR, Lim et al. 2017)."""

    def __init__(self, features: int, res_scale: float):
        super().__init__()
        self.conv1 = conv3x3(features, features)
        self.conv2 = conv3x3(features, features)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(torch.relu(self.conv1(x)))


class Edsr(nn.Module):
    """EDSR (Lim et al. 2017, arXiv:1707.02921): residual body, global feature skip, sub-pixel tail.

    The global skip adds the head features to the body output at LR resolution (no bicubic
    upsampled image is added), so the network learns the whole HR image itself.
    """

    def __init__(self, config: EdsrConfig):
        super().__init__()
        self.config = config
        f = config.features
        self.head = conv3x3(config.channels, f)
        self.body = nn.Sequential(
            *[ResBlock(f, config.res_scale) for _ in range(config.num_blocks)], conv3x3(f, f)
        )
        self.upsample = SubPixelUpsampler(config.scale, f)
        self.tail = conv3x3(f, config.channels)
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x - self.mean)  # (B, f, H, W)
        features = features + self.body(features)
        return run_fp32(self.tail, self.upsample(features)) + self.mean  # (B, 3, H*s, W*s)


def deepen_edsr_weights(
    weights: dict[str, torch.Tensor], num_blocks: int, model: Edsr
) -> dict[str, torch.Tensor]:
    """The weights of a `num_blocks` EDSR laid out for the deeper `model`, as the same function.

    The body's closing conv moves to its new index after the added residual blocks, and each
    added block gets a zero second conv, so it starts as the identity (its first conv is
    left out: it keeps the model's initialization). Training then grows the new depth from
    the trained network instead of from scratch.
    """
    new = model.config.num_blocks
    closing = f"body.{num_blocks}."
    moved = {
        f"body.{new}.{key[len(closing) :]}" if key.startswith(closing) else key: value
        for key, value in weights.items()
    }
    own = model.state_dict()
    for index in range(num_blocks, new):
        for name in (f"body.{index}.conv2.weight", f"body.{index}.conv2.bias"):
            moved[name] = torch.zeros_like(own[name])
    return moved


@register_model("edsr", EdsrConfig)
def build_edsr(config: EdsrConfig) -> nn.Module:
    """Build an EDSR generator."""
    return Edsr(config)


# ---------------------------------------------------------------- RRDB (ESRGAN)


@dataclass
class RrdbConfig:
    """Shape of an RRDB (ESRGAN) generator."""

    scale: int = 4
    channels: int = 3
    features: int = 64
    growth: int = 32  # channels each dense-block conv adds
    num_blocks: int = 23  # ESRGAN's depth; CPU presets use far fewer

    def __post_init__(self):
        check_scale(self.scale)
        require(self.features >= 1, "features", self.features, "a positive integer")
        require(self.growth >= 1, "growth", self.growth, "a positive integer")
        require(self.num_blocks >= 1, "num_blocks", self.num_blocks, "a positive integer")


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs with a 0.2-scaled residual (ESRGAN, Wang et al. 2018)."""

    def __init__(self, features: int, growth: int):
        super().__init__()
        self.convs = nn.ModuleList(
            conv3x3(features + i * growth, growth if i < 4 else features) for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for conv in self.convs[:-1]:
            maps.append(nn.functional.leaky_relu(conv(torch.cat(maps, 1)), 0.2))
        return x + 0.2 * self.convs[-1](torch.cat(maps, 1))


class Rrdb(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside a 0.2-scaled skip."""

    def __init__(self, features: int, growth: int):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualDenseBlock(features, growth) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


class RrdbNet(nn.Module):
    """ESRGAN generator (Wang et al. 2018, arXiv:1809.00219): RRDB trunk, nearest+conv upsampling."""

    def __init__(self, config: RrdbConfig):
        super().__init__()
        self.config = config
        f = config.features
        self.head = conv3x3(config.channels, f)
        self.body = nn.Sequential(*[Rrdb(f, config.growth) for _ in range(config.num_blocks)])
        self.body_conv = conv3x3(f, f)
        self.factors = [2, 2] if config.scale == 4 else [config.scale]
        self.up_convs = nn.ModuleList(conv3x3(f, f) for _ in self.factors)
        self.hr_conv = conv3x3(f, f)
        self.tail = conv3x3(f, config.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)  # (B, f, H, W)
        features = features + self.body_conv(self.body(features))
        for factor, conv in zip(self.factors, self.up_convs):
            # nearest + conv instead of a transposed conv avoids checkerboard artefacts
            features = nn.functional.interpolate(features, scale_factor=factor, mode="nearest")
            features = nn.functional.leaky_relu(conv(features), 0.2)
        features = nn.functional.leaky_relu(self.hr_conv(features), 0.2)
        return run_fp32(self.tail, features)  # (B, 3, H*s, W*s)


@register_model("rrdb", RrdbConfig)
def build_rrdb(config: RrdbConfig) -> nn.Module:
    """Build an RRDB (ESRGAN) generator."""
    return RrdbNet(config)


# ---------------------------------------------------------------- discriminator


@dataclass
class PatchDiscriminatorConfig:
    """Shape of the patch discriminator."""

    channels: int = 3
    features: int = 64
    num_layers: int = 3  # stride-2 stages; 3 gives a 70x70-ish receptive field (PatchGAN)

    def __post_init__(self):
        require(self.features >= 1, "features", self.features, "a positive integer")
        require(1 <= self.num_layers <= 6, "num_layers", self.num_layers, "an integer in 1..6")


class PatchDiscriminator(nn.Module):
    """Spectrally normalized PatchGAN (Isola et al. 2017; Miyato et al. 2018): a logit per patch."""

    def __init__(self, config: PatchDiscriminatorConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = config.channels
        for i in range(config.num_layers):
            out_channels = config.features * min(2**i, 8)
            layers += [
                spectral_norm(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
            ]
            in_channels = out_channels
        layers.append(spectral_norm(nn.Conv2d(in_channels, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, H, W) in [0, 1] -> (B, 1, H / 2^L, W / 2^L) logits
        return self.net(x * 2 - 1)


@register_model("sr_patch_discriminator", PatchDiscriminatorConfig)
def build_patch_discriminator(config: PatchDiscriminatorConfig) -> nn.Module:
    """Build the patch discriminator used by the ESRGAN-style fine-tune."""
    return PatchDiscriminator(config)
