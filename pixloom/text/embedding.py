"""TextEmbedding (the text-encoder contract) and the prompt normalization every encoder shares.

Prompts are normalized predictably (RELIABILITY R2): control characters become spaces,
whitespace runs collapse, the ends are stripped; an empty prompt encodes to the encoder's
special tokens only. Token sequences longer than the encoder's `max_length` are truncated
(the end of the prompt is dropped), never refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import torch
from torch import Tensor

_SPACES = re.compile(r"\s+")


@dataclass
class TextEmbedding:
    """Per-token states, their validity mask and one pooled vector per prompt."""

    tokens: Tensor  # (B, T, D) float
    mask: Tensor  # (B, T) bool, True where a token is real (at least one per row)
    pooled: Tensor  # (B, D) float

    def to(self, device: torch.device | str) -> TextEmbedding:
        """The same embedding on `device`."""
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    def select(self, index: Tensor | slice) -> TextEmbedding:
        """Rows `index` of the batch (e.g. a permutation for mismatched captions)."""
        return TextEmbedding(self.tokens[index], self.mask[index], self.pooled[index])

    def repeat(self, count: int) -> TextEmbedding:
        """Each row repeated `count` times in a row (one prompt, many images)."""
        return TextEmbedding(
            self.tokens.repeat_interleave(count, 0),
            self.mask.repeat_interleave(count, 0),
            self.pooled.repeat_interleave(count, 0),
        )


def class_prompt(label: int | Tensor) -> str:
    """The prompt that asks a class-conditional model for class `label`: its id in decimal."""
    return str(int(label))


def normalize_prompt(prompt: str) -> str:
    """Control characters -> spaces, whitespace collapsed, ends stripped (case kept)."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in prompt)
    return _SPACES.sub(" ", cleaned).strip()


def pad_embeddings(rows: list[tuple[Tensor, Tensor]]) -> TextEmbedding:
    """Stack per-prompt (tokens [T_i, D], pooled [D]) rows, padding tokens to the longest."""
    length = max(tokens.shape[0] for tokens, _ in rows)
    dim = rows[0][0].shape[1]
    tokens = torch.zeros(len(rows), length, dim, dtype=rows[0][0].dtype)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, (row, _) in enumerate(rows):
        tokens[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = True
    pooled = torch.stack([pooled for _, pooled in rows])
    return TextEmbedding(tokens, mask, pooled)


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of the valid token states: (B, T, D), (B, T) -> (B, D)."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # (B, T, 1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)
