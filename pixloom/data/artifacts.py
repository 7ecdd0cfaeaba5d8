"""Random corruptions that imitate generator artifacts: blur, noise, colour shifts, warps.

An oracle trained on clean renders alone reads generated images badly; these make it
robust to the defects generators actually produce, without changing what the scene is.
All randomness comes from the caller's torch.Generator so training stays reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class ArtifactOptions:
    probability: float = 0.8  # chance that an image gets any corruption
    max_blur_sigma: float = 1.0  # Gaussian blur sigma in pixels of the input
    max_noise: float = 0.08  # std of additive Gaussian noise on the [-1,1] scale
    max_gain: float = 0.12  # per-channel multiplicative colour shift
    max_offset: float = 0.08  # per-channel additive colour shift on the [-1,1] scale
    max_rotation_deg: float = 4.0  # slight affine deformation
    max_scale: float = 0.04
    max_shear: float = 0.04
    low_res_probability: float = 0.3  # view through a 2x lower resolution (64 px and up)


def _uniform(shape, low: float, high: float, generator, device) -> Tensor:
    return torch.rand(shape, generator=generator, device=device) * (high - low) + low


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image with its own sigma [B] (5x5 separable kernel; sigma 0 = identity)."""
    radius = 2
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    sigma = sigma.clamp(min=1e-3)[:, None]
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma**2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, 5)
    batch, channels, height, width = images.shape
    x = images.reshape(1, batch * channels, height, width)
    k = kernel.repeat_interleave(channels, dim=0)  # (B*C, 5)
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="reflect"),
        k[:, None, None, :],
        groups=batch * channels,
    )
    x = F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="reflect"),
        k[:, None, :, None],
        groups=batch * channels,
    )
    return x.reshape(batch, channels, height, width)


def random_warp(images: Tensor, options: ArtifactOptions, generator) -> Tensor:
    """Slight random rotation, scale and shear about the image centre."""
    batch, device = images.shape[0], images.device
    angle = torch.deg2rad(
        _uniform(batch, -options.max_rotation_deg, options.max_rotation_deg, generator, device)
    )
    scale = 1 + _uniform(batch, -options.max_scale, options.max_scale, generator, device)
    shear = _uniform(batch, -options.max_shear, options.max_shear, generator, device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear, torch.zeros_like(cos)], 1),
            torch.stack([sin, cos, torch.zeros_like(cos)], 1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def apply_artifacts(
    images: Tensor, options: ArtifactOptions, generator: torch.Generator | None = None
) -> Tensor:
    """Corrupt a batch [B,3,H,W] in [-1,1]; each image independently, per `options`."""
    batch, device = images.shape[0], images.device
    images = images.float()
    chosen = (torch.rand(batch, generator=generator, device=device) < options.probability).float()
    mask = chosen[:, None, None, None]
    out = random_warp(images, options, generator)
    low = (
        torch.rand(batch, generator=generator, device=device) < options.low_res_probability
    ).float()
    side = images.shape[-1]
    if side >= 64:  # at 32 px a 2x coarser view would erase small shapes
        small = F.interpolate(
            out, size=side // 2, mode="bilinear", antialias=True, align_corners=False
        )
        coarse = F.interpolate(small, size=side, mode="bilinear", align_corners=False)
        out = out + low[:, None, None, None] * (coarse - out)
    out = gaussian_blur(out, _uniform(batch, 0, options.max_blur_sigma, generator, device))
    gain = 1 + _uniform((batch, 3, 1, 1), -options.max_gain, options.max_gain, generator, device)
    offset = _uniform((batch, 3, 1, 1), -options.max_offset, options.max_offset, generator, device)
    noise = torch.randn(out.shape, generator=generator, device=device)
    noise = noise * _uniform((batch, 1, 1, 1), 0, options.max_noise, generator, device)
    out = ((out + 1) * gain - 1 + offset + noise).clamp(-1, 1)
    return images + mask * (out - images)
