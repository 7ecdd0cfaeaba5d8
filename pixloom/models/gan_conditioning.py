"""Text conditioning shared by the GAN families (mlp-gan, dcgan, stylegan).

A generator config carries its text encoder spec (`{}` = unconditional); the built-in encoder
is a submodule of the generator (it trains with it and its weights ride in the checkpoint),
frozen encoders (minilm, hf:PATH) are loaded by whoever calls the network. Networks only
ever see tensors: a TextEmbedding (tokens, mask, pooled).

The discriminator's text term is the projection discriminator of Miyato & Koyama 2018:
logit = linear(h) + <embed(pooled text), h>. Both sides standardize the pooled vector per
dimension (BatchNorm without affine parameters) before their linear maps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from pixloom.errors import InvalidValue, require


def text_dim(spec: dict[str, Any]) -> int:
    """Width of the pooled text vector named by a generator's spec (0: unconditional)."""
    if not spec:
        return 0
    dim = spec.get("dim")
    require(
        isinstance(dim, int) and dim > 0,
        "text_encoder.dim",
        dim,
        "a positive integer (the encoder's width) in every text encoder spec",
    )
    return dim


def make_text_encoder(spec: dict[str, Any]) -> nn.Module | None:
    """The trainable built-in encoder for a "builtin" spec, else None (frozen ones load outside)."""
    if not spec or spec.get("name") != "builtin":
        return None
    from pixloom.text.registry import load_text_encoder

    return load_text_encoder(spec)


def check_condition(spec: dict[str, Any], cond: Any, batch: int) -> None:
    """Refuse a missing text embedding for a conditional net, or a wrongly sized one."""
    if not spec:
        return
    if cond is None:
        raise InvalidValue("cond", None, f"a TextEmbedding from the {spec.get('name')} encoder")
    if cond.pooled.shape != (batch, text_dim(spec)):
        raise InvalidValue(
            "cond.pooled", tuple(cond.pooled.shape), f"shape ({batch}, {text_dim(spec)})"
        )


class TextProjection(nn.Module):
    """Pooled text -> a unit-scale vector of `features` (the mapping input of the conditions)."""

    def __init__(self, dim: int, features: int):
        super().__init__()
        # Sentence vectors of one domain share most of their direction (MiniLM: cosine ~0.7
        # between "a red circle" and "a blue circle"); standardizing each dimension over the
        # data makes the differences between prompts, not the shared part, the signal.
        self.norm = nn.BatchNorm1d(dim, affine=False)
        self.linear = nn.Linear(dim, features)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, dim) -> (B, features), normalized to unit second moment per row."""
        y = self.linear(self.norm(pooled))
        return y * torch.rsqrt(y.float().square().mean(1, keepdim=True) + 1e-8).to(y.dtype)


class ProjectionHead(nn.Module):
    """Discriminator output: unconditional logit plus the text projection term."""

    def __init__(self, features: int, dim: int):
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.norm = nn.BatchNorm1d(dim, affine=False) if dim else None  # as in TextProjection
        self.embed = nn.Linear(dim, features, bias=False) if dim else None

    def forward(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """(B, features) features and the embedding -> (B,) logits."""
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            text = self.embed(self.norm(cond.pooled.to(h.dtype)))
            out = out + (text * h).sum(1) / h.shape[1] ** 0.5
        return out
