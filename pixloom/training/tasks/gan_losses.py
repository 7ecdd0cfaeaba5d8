"""GAN losses: non-saturating logistic loss (Goodfellow et al. 2014), the matching-aware
discriminator term (Reed et al. 2016, GAN-CLS: a real image with a wrong caption is fake),
and the R1 gradient penalty on real images (Mescheder et al. 2018) applied lazily
(StyleGAN2, Karras et al. 2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits.float()).mean()


def discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    mismatch_logits: torch.Tensor | None = None,
    *,
    mismatch_weight: float = 1.0,
) -> torch.Tensor:
    """softplus(D(fake)) + softplus(-D(real)) [+ weight * softplus(D(real, wrong caption))]."""
    loss = F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()
    if mismatch_logits is not None and mismatch_weight > 0:
        loss = loss + mismatch_weight * F.softplus(mismatch_logits.float()).mean()
    return loss


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||d D(x) / d x||^2 at real images x (requires_grad on x)."""
    (gradient,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return gradient.float().square().sum((1, 2, 3)).mean()


def mismatched(count: int, device: torch.device) -> torch.Tensor:
    """A permutation pairing every image with another's caption (a shift by one)."""
    return torch.roll(torch.arange(count, device=device), 1)
