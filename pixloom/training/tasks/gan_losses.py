"""GAN losses: non-saturating logistic loss (Goodfellow et al. 2014), the matching-aware
discriminator term (Reed et al. 2016, GAN-CLS: a real image with a wrong caption is fake),
and the R1 gradient penalty on real images (Mescheder et al. 2018) applied lazily
(StyleGAN2, Karras et al. 2020). `swap_words` makes the hard negatives of that term: a
caption with two of its words exchanged, as NegCLIP's word-order negatives (Yuksekgonul et
al. 2023) teach a model that "a red circle left of a blue square" is not "a blue circle left
of a red square".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def swap_words(caption: str, generator: torch.Generator | None = None) -> str | None:
    """The caption with two different words at random positions exchanged; None when it
    has fewer than two different words (no swap changes it)."""
    words = caption.split()
    if len(set(words)) < 2:
        return None
    while True:
        i, j = torch.randint(len(words), (2,), generator=generator).tolist()
        if words[i] != words[j]:
            words[i], words[j] = words[j], words[i]
            return " ".join(words)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits.float()).mean()


def discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    mismatch_logits: torch.Tensor | None = None,
    *,
    mismatch_weight: float = 1.0,
    swap_logits: torch.Tensor | None = None,
    swap_weight: float = 0.0,
) -> torch.Tensor:
    """softplus(D(fake)) + softplus(-D(real)) [+ weight * softplus(D(real, wrong caption))]
    [+ swap_weight * softplus(D(real, its caption with two words swapped))]."""
    loss = F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()
    for logits, weight in ((mismatch_logits, mismatch_weight), (swap_logits, swap_weight)):
        if logits is not None and logits.numel() and weight > 0:
            loss = loss + weight * F.softplus(logits.float()).mean()
    return loss


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||d D(x) / d x||^2 at real images x (requires_grad on x)."""
    (gradient,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return gradient.float().square().sum((1, 2, 3)).mean()


def mismatched(count: int, device: torch.device) -> torch.Tensor:
    """A permutation pairing every image with another's caption (a shift by one)."""
    return torch.roll(torch.arange(count, device=device), 1)
