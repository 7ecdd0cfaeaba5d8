"""DiffAugment (Zhao et al. 2020, arXiv:2006.10738): differentiable augmentations applied to
both real and generated images before the discriminator, so a GAN trains on few images.

Policies: "color" (brightness, saturation, contrast), "translation" (1/8 of the side, zero
padded), "cutout" (a square of half the side). Randomness comes from torch's global RNG,
which the engine saves and restores, so a resumed run is exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixloom.errors import InvalidValue


def _color(x: torch.Tensor) -> torch.Tensor:
    batch = x.shape[0]
    x = x + (torch.rand(batch, 1, 1, 1, device=x.device) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (torch.rand(batch, 1, 1, 1, device=x.device) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(batch, 1, 1, 1, device=x.device) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    batch, _, height, width = x.shape
    sy, sx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (batch, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (batch, 1, 1), device=x.device)
    rows = torch.arange(height, device=x.device)[None, :, None] + dy + 1  # (B, H, 1)
    cols = torch.arange(width, device=x.device)[None, None, :] + dx + 1  # (B, 1, W)
    rows, cols = rows.clamp(0, height + 1), cols.clamp(0, width + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (B, H+2, W+2, C)
    batch_index = torch.arange(batch, device=x.device)[:, None, None]
    return padded[batch_index, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    batch, _, height, width = x.shape
    ch, cw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    cy = torch.randint(0, height + (1 - ch % 2), (batch, 1, 1), device=x.device)
    cx = torch.randint(0, width + (1 - cw % 2), (batch, 1, 1), device=x.device)
    rows = torch.arange(height, device=x.device)[None, :, None]
    cols = torch.arange(width, device=x.device)[None, None, :]
    inside = ((rows - cy + ch // 2).clamp(0) < ch) & ((cols - cx + cw // 2).clamp(0) < cw)
    inside = inside & (rows - cy + ch // 2 >= 0) & (cols - cx + cw // 2 >= 0)
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"color": _color, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> list[str]:
    """ "color,translation" -> ["color", "translation"]; "" -> []."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    for name in names:
        if name not in POLICIES:
            raise InvalidValue("task_options.augment", policy, f"comma-separated {list(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the policy's augmentations in order (differentiable in x)."""
    for name in parse_policy(policy):
        x = POLICIES[name](x)
    return x
