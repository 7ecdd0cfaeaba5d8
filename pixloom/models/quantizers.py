"""Quantizers of image tokenizers: one return type (`Quantized`) for every quantizer.

- `VectorQuantizer`: nearest code of a learned codebook with l2-normalized, low-dimensional
  codes (ViT-VQGAN, Yu et al. 2022, arXiv:2110.04627; as in LlamaGen, Sun et al. 2024), the
  codebook + commitment loss and straight-through gradients of VQ-VAE (van den Oord et al.
  2017), and dead-code restart from encoder outputs (Dhariwal et al. 2020, Jukebox).
- `FiniteScalarQuantizer`: each channel bounded and rounded to a few levels, the code index
  a mixed-radix number (FSQ, Mentzer et al. 2023, arXiv:2309.15505); nothing to learn.

Both take latents (B, D, h, w) with D = `dim` and return Quantized(z, indices, loss); both
compute in fp32 even under bf16 autocast (cosine argmax and rounding are precision-sensitive).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from pixloom.errors import require


@dataclass
class Quantized:
    """What a quantizer (and a tokenizer's encode) returns."""

    z: Tensor  # (B, D, h, w) quantized latents, straight-through gradients to the encoder
    indices: Tensor  # (B, h, w) int64 code indices
    loss: Tensor  # scalar: codebook + beta * commitment (0 for FSQ)


def code_statistics(indices: Tensor, codebook_size: int) -> tuple[float, float]:
    """(fraction of codes used, perplexity exp(H) of the code histogram) of some indices."""
    counts = torch.bincount(indices.reshape(-1).cpu(), minlength=codebook_size).double()
    probabilities = counts / counts.sum()
    entropy = -(probabilities * probabilities.clamp_min(1e-30).log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())


def _to_rows(z: Tensor) -> Tensor:
    """(B, D, h, w) -> (B*h*w, D) in fp32."""
    return z.float().permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def _to_map(rows: Tensor, batch: int, height: int, width: int) -> Tensor:
    """(B*h*w, D) -> (B, D, h, w)."""
    return rows.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def _check_indices(indices: Tensor) -> None:
    """Refuse anything but an int64 (B, h, w) index grid."""
    require(
        indices.dtype == torch.int64 and indices.dim() == 3,
        "indices",
        f"{indices.dtype} {tuple(indices.shape)}",
        "an int64 tensor (B, h, w)",
    )


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class VectorQuantizer(nn.Module):
    """Cosine-similarity VQ over an l2-normalized codebook with dead-code restart."""

    def __init__(
        self, codebook_size: int, dim: int, *, beta: float = 0.25, restart_after: int = 50
    ):
        super().__init__()
        require(codebook_size >= 2, "codebook_size", codebook_size, "an integer >= 2")
        require(dim >= 1, "code_dim", dim, "an integer >= 1")
        require(beta >= 0, "beta", beta, ">= 0")
        require(restart_after >= 0, "restart_after", restart_after, ">= 0 (0: never restart)")
        self.dim, self.beta, self.restart_after = dim, beta, restart_after
        self.codebook = nn.Parameter(F.normalize(torch.randn(codebook_size, dim), dim=1))
        # Training calls in a row in which each code was picked by no latent of the batch.
        self.register_buffer("unused_calls", torch.zeros(codebook_size, dtype=torch.int64))

    @property
    def codebook_size(self) -> int:
        """Number of codes."""
        return self.codebook.shape[0]

    def codes(self) -> Tensor:
        """The l2-normalized codebook (K, D) in fp32."""
        return F.normalize(self.codebook.float(), dim=1)

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors (B, D, h, w) of indices (B, h, w)."""
        _check_indices(indices)
        return self.codes()[indices].permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)

    def quantize(self, z: Tensor) -> Quantized:
        """Nearest code by cosine; loss = ||sg[e] - q||^2 + beta ||e - sg[q]||^2 (normalized)."""
        require(
            z.dim() == 4 and z.shape[1] == self.dim, "z", tuple(z.shape), f"(B, {self.dim}, h, w)"
        )
        batch, _, height, width = z.shape
        with torch.autocast(z.device.type, enabled=False):
            latents = F.normalize(_to_rows(z), dim=1)  # (N, D)
            codes = self.codes()  # (K, D)
            indices = (latents.detach() @ codes.T).argmax(dim=1)  # (N,)
            chosen = codes[indices]
            codebook_loss = F.mse_loss(chosen, latents.detach())
            commitment = F.mse_loss(latents, chosen.detach())
            rows = latents + (chosen - latents).detach()  # straight-through estimator
        if self.training and self.restart_after > 0:
            self._restart_dead_codes(latents.detach(), indices)
        return Quantized(
            z=_to_map(rows, batch, height, width),
            indices=indices.reshape(batch, height, width),
            loss=codebook_loss + self.beta * commitment,
        )

    @torch.no_grad()
    def _restart_dead_codes(self, latents: Tensor, indices: Tensor) -> None:
        """Re-initialize codes unused for `restart_after` training calls from random latents
        of the batch, so the codebook does not collapse to a few codes. Usage is summed and
        the new vectors are taken from rank 0 so every rank keeps the same codebook."""
        counts = torch.bincount(indices, minlength=self.codebook_size)
        if _distributed():
            dist.all_reduce(counts)
        self.unused_calls.add_(1).masked_fill_(counts > 0, 0)
        dead = self.unused_calls >= self.restart_after
        if _distributed():
            dist.broadcast(dead, 0)
        count = int(dead.sum())
        if count == 0:
            return
        picks = torch.randint(0, latents.shape[0], (count,), device=latents.device)
        fresh = latents[picks].to(self.codebook.dtype)  # (count, D), already unit length
        if _distributed():
            dist.broadcast(fresh, 0)
        self.codebook.data[dead] = fresh
        self.unused_calls[dead] = 0


class FiniteScalarQuantizer(nn.Module):
    """FSQ: bound each channel with tanh, round with a straight-through estimator."""

    def __init__(self, levels: list[int] | tuple[int, ...] = (8, 5, 5, 5)):
        super().__init__()
        require(
            len(levels) >= 1 and all(int(level) >= 2 for level in levels),
            "fsq_levels",
            list(levels),
            "a list of integers >= 2, e.g. [8, 5, 5, 5]",
        )
        levels_tensor = torch.tensor([int(level) for level in levels], dtype=torch.int64)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), levels_tensor[:-1]]), 0)
        # Constants, not weights: kept out of the state dict (they follow from the config).
        self.register_buffer("levels", levels_tensor, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.dim = len(levels)

    @property
    def codebook_size(self) -> int:
        """Number of codes: the product of the levels."""
        return int(torch.prod(self.levels))

    def _bound(self, rows: Tensor) -> Tensor:
        """tanh-bound each channel to (-L/2, L/2) shifted so rounding gives exactly L values."""
        levels = self.levels.float()
        half = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(rows + shift) * half - offset

    def quantize(self, z: Tensor) -> Quantized:
        """Quantized latents in [-1, 1] per channel, indices as mixed-radix numbers, loss 0."""
        require(
            z.dim() == 4 and z.shape[1] == self.dim, "z", tuple(z.shape), f"(B, {self.dim}, h, w)"
        )
        batch, _, height, width = z.shape
        with torch.autocast(z.device.type, enabled=False):
            bounded = self._bound(_to_rows(z))  # (N, D)
            rounded = bounded + (bounded.round() - bounded).detach()  # straight-through
            half_width = (self.levels // 2).float()
            digits = (rounded.detach() + half_width).round().long()  # (N, D) in [0, L)
            indices = (digits * self.basis).sum(dim=1)
            rows = rounded / half_width
        return Quantized(
            z=_to_map(rows, batch, height, width),
            indices=indices.reshape(batch, height, width),
            loss=rows.new_zeros(()),
        )

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors (B, D, h, w) of indices (B, h, w)."""
        _check_indices(indices)
        digits = (indices[..., None] // self.basis) % self.levels  # (B, h, w, D)
        half_width = (self.levels // 2).float()
        return ((digits.float() - half_width) / half_width).permute(0, 3, 1, 2)
