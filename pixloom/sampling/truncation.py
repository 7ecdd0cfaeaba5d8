"""The truncation trick toward the conditional mean w (Karras et al. 2019, StyleGAN; the
conditional centre as in conditional StyleGAN variants, e.g. Sauer et al. 2022).

psi = 1 leaves w unchanged; psi < 1 pulls w toward the mean w of the same prompt, trading
variety for fidelity. For generators without a w space the same pull is applied to z
(toward 0, the mean of the latent distribution).
"""

from __future__ import annotations

from typing import Any

import torch


def truncate(w: torch.Tensor, center: torch.Tensor, psi: float) -> torch.Tensor:
    """center + psi * (w - center)."""
    return center + psi * (w - center) if psi != 1 else w


@torch.no_grad()
def conditional_mean_w(
    mapping: Any,
    cond: Any,
    *,
    z_dim: int,
    samples: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Mean of mapping(z, cond) over `samples` latents drawn from a fixed seed: (1, w_dim).

    `cond` holds one prompt (batch 1); the latents are drawn on the CPU so the mean is the
    same on every device.
    """
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, z_dim, generator=generator)
    expanded = cond.repeat(samples) if cond is not None else None
    return mapping(z.to(device), expanded).float().mean(0, keepdim=True)


def style_mix(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: torch.Tensor) -> torch.Tensor:
    """Layers < crossover[i] from ws_a, the rest from ws_b: (B, L, D) each (StyleGAN mixing)."""
    layers = torch.arange(ws_a.shape[1], device=ws_a.device)[None, :, None]  # (1, L, 1)
    return torch.where(layers < crossover[:, None, None], ws_a, ws_b)
