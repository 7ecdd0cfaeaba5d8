"""The built-in text encoder: a word tokenizer over the training captions' vocabulary and a
small pre-norm transformer encoder (Vaswani et al. 2017) trained with the generator.

The vocabulary is stored in the model config, so a checkpoint needs nothing else. Words are
lower-cased and split on word characters and punctuation; unknown words map to [UNK]; a
[CLS] token starts every sequence (an empty prompt encodes to [CLS] alone); sequences are
truncated to `max_length` tokens, [CLS] included.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.errors import require
from pixloom.models.attention import attention
from pixloom.text.embedding import TextEmbedding, masked_mean, normalize_prompt

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")
PAD, UNK, CLS = 0, 1, 2
_WORDS = re.compile(r"\w+|[^\w\s]")


def split_words(prompt: str) -> list[str]:
    """Lower-cased words and punctuation marks of a normalized prompt."""
    return _WORDS.findall(normalize_prompt(prompt).lower())


def build_vocabulary(captions: Iterable[str], *, max_size: int = 4096) -> list[str]:
    """Special tokens then the `max_size` most frequent words (ties broken alphabetically)."""
    counts = Counter(word for caption in captions for word in split_words(caption))
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    return list(SPECIAL_TOKENS) + ranked[: max(0, max_size - len(SPECIAL_TOKENS))]


@dataclass
class BuiltinTextConfig:
    vocab: list[str] = field(default_factory=lambda: list(SPECIAL_TOKENS))  # index = token id
    dim: int = 128  # width of token states and the pooled vector
    layers: int = 2  # transformer blocks
    heads: int = 4  # attention heads (dim must divide evenly)
    max_length: int = 32  # tokens kept per prompt, [CLS] included; the rest is dropped

    def __post_init__(self) -> None:
        require(
            list(self.vocab[:3]) == list(SPECIAL_TOKENS),
            "text_encoder.vocab",
            self.vocab[:3],
            f"a list starting with {list(SPECIAL_TOKENS)}",
        )
        require(self.dim >= 8, "text_encoder.dim", self.dim, "an integer >= 8")
        require(self.layers >= 0, "text_encoder.layers", self.layers, "an integer >= 0")
        require(
            self.heads >= 1 and self.dim % self.heads == 0,
            "text_encoder.heads",
            self.heads,
            f"a divisor of dim={self.dim}",
        )
        require(self.max_length >= 2, "text_encoder.max_length", self.max_length, ">= 2")


def attend(
    module: nn.MultiheadAttention,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """`module`'s attention, with its own weights, of x (B, S, D) over `context` (B, L, D; x
    itself when None) with key mask (B, L) or None, through pixloom.models.attention (whose CPU
    bf16 backward is the fast one; the module's own call would take PyTorch's fused kernel)."""
    batch, length, dim = x.shape
    heads = module.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, heads, T, D / heads)
        return t.view(batch, t.shape[1], heads, dim // heads).transpose(1, 2)

    if context is None:
        qkv = F.linear(x, module.in_proj_weight, module.in_proj_bias)
        q, k, v = qkv.view(batch, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    else:
        weights, biases = module.in_proj_weight.chunk(3), module.in_proj_bias.chunk(3)
        q = split(F.linear(x, weights[0], biases[0]))
        k, v = (split(F.linear(context, w, b)) for w, b in zip(weights[1:], biases[1:]))
    y = attention(q, k, v, None if mask is None else mask[:, None, None, :])
    return module.out_proj(y.transpose(1, 2).reshape(batch, length, dim))


def encoder_layer(block: nn.TransformerEncoderLayer, x: torch.Tensor, mask: torch.Tensor):
    """A pre-norm nn.TransformerEncoderLayer (dropout 0) on x (B, T, D) with key mask (B, T),
    its own weights, through `attend`."""
    x = x + attend(block.self_attn, block.norm1(x), mask)
    return x + block.linear2(block.activation(block.linear1(block.norm2(x))))


class BuiltinTextEncoder(nn.Module):
    """Word embeddings + learned positions + transformer; mean-pooled sentence vector."""

    def __init__(self, config: BuiltinTextConfig):
        super().__init__()
        self.config = config
        self.name, self.dim, self.max_length = "builtin", config.dim, config.max_length
        self.index = {word: i for i, word in enumerate(config.vocab)}
        self.embed = nn.Embedding(len(config.vocab), config.dim, padding_idx=PAD)
        self.position = nn.Parameter(torch.zeros(config.max_length, config.dim))
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                config.dim,
                config.heads,
                2 * config.dim,
                dropout=0.0,
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.dim)

    def token_ids(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids [B, T], mask [B, T]) padded to the longest prompt; truncated to max_length."""
        rows = [
            [CLS] + [self.index.get(word, UNK) for word in split_words(prompt)]
            for prompt in prompts
        ]
        rows = [row[: self.max_length] for row in rows]
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids, ids != PAD

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> TextEmbedding:
        """Token ids (B, T) and mask (B, T) -> TextEmbedding with D = dim."""
        x = self.embed(ids) + self.position[: ids.shape[1]]  # (B, T, D)
        for block in self.blocks:
            x = encoder_layer(block, x, mask)
        x = self.norm(x)
        return TextEmbedding(x, mask, masked_mean(x, mask))

    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Encode prompts (gradients flow: this encoder trains with the generator)."""
        require(len(prompts) > 0, "prompts", prompts, "a non-empty list of strings")
        ids, mask = self.token_ids(list(prompts))
        device = self.embed.weight.device
        return self.forward(ids.to(device), mask.to(device))
