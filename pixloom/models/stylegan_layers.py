"""Building blocks of the stylegan family (Karras et al. 2020, StyleGAN2, arXiv:1912.04958).

Modulated convolution is computed in its non-fused form (StyleGAN2's fused_modconv=False):
scale the input channels by the style, run one ordinary convolution shared by the batch,
then demodulate by scaling the output channels. The result equals the per-sample weight
convolution, and it runs on the fast bf16 channels_last kernels with no grouped conv.
Weights use the equalized learning rate (Karras et al. 2018): N(0, 1) init, scaled at use.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.models.attention import attention


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate and an optional learning-rate multiplier."""

    def __init__(self, inputs: int, outputs: int, *, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, inputs) / lr_mul)
        self.bias = nn.Parameter(torch.full((outputs,), bias_init / lr_mul))
        self.weight_gain, self.lr_mul = lr_mul / math.sqrt(inputs), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inputs) -> (B, outputs)."""
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)


def pixel_norm(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Normalize to unit second moment along `dim` (Karras et al. 2018)."""
    return x * torch.rsqrt(x.float().square().mean(dim, keepdim=True) + 1e-8).to(x.dtype)


class ModulatedConv(nn.Module):
    """Style-modulated k x k convolution with optional demodulation (non-fused form)."""

    def __init__(self, inputs: int, outputs: int, w_dim: int, kernel: int, *, demodulate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, inputs, kernel, kernel))
        self.affine = EqualLinear(w_dim, inputs, bias_init=1.0)  # styles start at 1
        self.gain = 1 / math.sqrt(inputs * kernel * kernel)
        self.demodulate, self.padding = demodulate, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (B, Cin, H, W), w (B, w_dim) -> (B, Cout, H, W)."""
        styles = self.affine(w)  # (B, Cin)
        weight = self.weight * self.gain
        x = x * styles[:, :, None, None].to(x.dtype)
        x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # sum over (Cin, k, k) of (weight * style)^2 per (B, Cout)
            energy = weight.float().square().sum((2, 3)) @ styles.float().square().t()  # (Cout, B)
            x = x * torch.rsqrt(energy.t() + 1e-8)[:, :, None, None].to(x.dtype)
        return x


class StyleLayer(nn.Module):
    """Modulated 3x3 conv + per-pixel noise (learned strength) + bias + leaky ReLU."""

    def __init__(self, inputs: int, outputs: int, w_dim: int, side: int):
        super().__init__()
        self.conv = ModulatedConv(inputs, outputs, w_dim, 3)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(1, 1, side, side))
        self.bias = nn.Parameter(torch.zeros(outputs))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        """noise_mode: "random" (training), "const" (reproducible inference) or "none"."""
        x = self.conv(x, w)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
            x = x + (noise * self.noise_strength).to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        x = x + self.bias[None, :, None, None].to(x.dtype)
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation (the skip architecture's output)."""

    def __init__(self, inputs: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(inputs, 3, w_dim, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 3, H, W)."""
        return self.conv(x, w) + self.bias[None, :, None, None].to(x.dtype)


class CrossAttention(nn.Module):
    """Image positions attend to the prompt's token states (as in text-conditional GigaGAN).

    A residual branch whose output gain starts at zero, so it opens as training finds use for it.
    """

    def __init__(self, channels: int, text_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Conv2d(channels, channels, 1)
        self.key_value = nn.Linear(text_dim, 2 * channels)
        self.out = nn.Conv2d(channels, channels, 1)
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), tokens (B, T, D), mask (B, T) -> x + attention."""
        batch, channels, height, width = x.shape
        head_dim = channels // self.heads
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q = q.reshape(batch, -1, self.heads, head_dim).transpose(1, 2)  # (B, h, HW, C/h)
        k, v = self.key_value(tokens.to(q.dtype)).chunk(2, dim=-1)  # (B, T, C) each
        k = k.reshape(batch, -1, self.heads, head_dim).transpose(1, 2)  # (B, h, T, C/h)
        v = v.reshape(batch, -1, self.heads, head_dim).transpose(1, 2)
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, T): True = attend
        y = attention(q, k, v, attn_mask)  # (B, h, HW, C/h)
        y = y.transpose(2, 3).reshape(batch, channels, height, width)  # (B, C, H, W)
        return x + self.out(y.contiguous(memory_format=torch.channels_last)) * self.gain.to(x.dtype)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs then 2x average-pool, with a 1x1 residual skip (StyleGAN2's resnet D)."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, inputs, 3, padding=1)
        self.conv2 = nn.Conv2d(inputs, outputs, 3, padding=1)
        self.skip = nn.Conv2d(inputs, outputs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, Cout, H/2, W/2)."""
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.leaky_relu(self.conv1(x), 0.2)
        x = F.avg_pool2d(F.leaky_relu(self.conv2(x), 0.2), 2)
        return (x + skip) / math.sqrt(2)


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the mean feature std over groups of images as one channel (Karras et al. 2018)."""
    batch, channels, height, width = x.shape
    group = math.gcd(group, batch)
    y = x.float().reshape(group, -1, channels, height, width)  # (G, B/G, C, H, W)
    y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # (B/G,)
    y = y.repeat(group).reshape(batch, 1, 1, 1).expand(batch, 1, height, width)
    return torch.cat([x, y.to(x.dtype)], 1)
