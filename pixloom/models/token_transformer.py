"""A decoder-only transformer over image tokens: raster autoregression and MaskGIT.

Families "token-ar" (causal, raster order, Esser et al. 2021 / LlamaGen, Sun et al. 2024) and
"maskgit" (bidirectional, masked-token prediction, Chang et al. 2022) share this backbone in
the style of current LLMs: pre-norm RMSNorm (Zhang & Sennrich 2019), rotary position
embeddings (Su et al. 2021), SwiGLU MLPs (Shazeer 2020), no biases anywhere.

Sequence layout: [prefix (T <= P slots)] [image slots 0..N-1], N = grid_size**2.
- Prefix: the prompt's token states through a learned Linear (at most P = max_text_tokens;
  a batch takes T slots, its longest prompt's length, the shorter prompts' padding masked
  out of attention), or one class-label token (P = 1), or nothing (P = 0). A
  "null" row (classifier-free guidance, Ho & Salimans 2022) replaces the prefix by one
  learned null token (text) or the extra class id `num_classes`.
- Image slot j always carries the 2-D rotary position (row, col) of grid cell j. In raster
  mode its input is the token of cell j-1 (BOS for j = 0), so slot j's logits predict cell j
  and the query already knows which cell it predicts; in MaskGIT mode its input is cell j's
  token or [MASK]. BOS and [MASK] are both token id `vocab` (one mode never needs the other).
- Rotary positions: half of each head's rotary pairs turn with the row, half with the
  column. Prefix slot i (0..P-1) sits on the diagonal before the grid: row = col = i - P, so
  text tokens keep their 1-D order and every image cell is at the same offset from them.
  A batch with T < P prefix slots keeps these positions (the rotary tables are gathered, not
  sliced), so a row's logits do not depend on how long the other prompts of its batch are.

A frozen image tokenizer (family "vq") is a submodule, so one checkpoint holds everything;
it stays in eval mode and never trains. Networks see tensors only: `TokenCondition`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from pixloom.errors import InvalidValue, require
from pixloom.models.attention import attention
from pixloom.models.critic import make_critic
from pixloom.models.gan_conditioning import make_text_encoder, text_dim
from pixloom.models.registry import register_model

MODES = {"token-ar": "raster", "maskgit": "maskgit"}


@dataclass
class TokenTransformerConfig:
    vocab: int = 512  # = the tokenizer's codebook_size; id `vocab` is BOS / [MASK]
    grid_size: int = 8  # tokens per image side (the tokenizer's grid_size)
    dim: int = 256  # residual width
    depth: int = 6  # transformer blocks
    heads: int = 4  # attention heads; head size dim/heads must be a multiple of 4 (2-D RoPE)
    mlp_ratio: float = 8 / 3  # SwiGLU hidden = mlp_ratio * dim rounded up to a multiple of 8
    mode: Literal["raster", "maskgit"] | None = None  # None: set by the family
    text_encoder: dict[str, Any] = field(default_factory=dict)  # {} = no text prompt
    max_text_tokens: int = 32  # prompt token states kept (the rest is dropped)
    num_classes: int = 0  # > 0: class-conditional (one label token); 0 = none
    tokenizer: dict[str, Any] = field(default_factory=dict)  # the "vq" config; {} = none
    critic: dict[str, Any] = field(default_factory=dict)  # a "critic" config judging best_of
    # drafts (pixloom.models.critic; added by `pixloom export --critic`); {} = none
    tie_head: bool = False  # output head shares the token embedding
    rope_base: float = 10000.0  # rotary frequency base

    def __post_init__(self) -> None:
        require(self.vocab >= 2, "model.vocab", self.vocab, "an integer >= 2")
        require(self.grid_size >= 1, "model.grid_size", self.grid_size, "an integer >= 1")
        require(self.depth >= 1, "model.depth", self.depth, "an integer >= 1")
        require(
            self.heads >= 1 and self.dim % self.heads == 0 and (self.dim // self.heads) % 4 == 0,
            "model.heads",
            self.heads,
            f"a divisor of dim={self.dim} leaving a head size that is a multiple of 4",
        )
        require(self.mlp_ratio > 0, "model.mlp_ratio", self.mlp_ratio, "a number > 0")
        require(self.max_text_tokens >= 1, "model.max_text_tokens", self.max_text_tokens, ">= 1")
        require(self.num_classes >= 0, "model.num_classes", self.num_classes, ">= 0")
        require(
            not (self.num_classes and self.text_encoder),
            "model.num_classes",
            self.num_classes,
            "0 when a text_encoder is set (a model takes a prompt or a label, not both)",
        )
        require(self.rope_base > 1, "model.rope_base", self.rope_base, "a number > 1")
        text_dim(self.text_encoder)  # validates the spec's width

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU hidden width."""
        return 8 * math.ceil(self.mlp_ratio * self.dim / 8)

    @property
    def prefix_length(self) -> int:
        """Prefix slots P: the prompt's tokens, one label token, or none."""
        if self.text_encoder:
            return self.max_text_tokens
        return 1 if self.num_classes else 0


@dataclass
class TokenCondition:
    """What a row is conditioned on: prompt states or class labels, and the null rows."""

    text: Any = None  # TextEmbedding (tokens (B, T, D), mask (B, T)) or None
    labels: Tensor | None = None  # (B,) int64 class ids
    null: Tensor | None = None  # (B,) bool: this row uses the learned null prefix

    def with_null(self) -> TokenCondition:
        """Rows [self; the same rows nulled]: the batch of classifier-free guidance."""
        rows = len(self)
        text = None
        if self.text is not None:
            from pixloom.text.embedding import TextEmbedding

            t = self.text
            text = TextEmbedding(torch.cat([t.tokens] * 2), torch.cat([t.mask] * 2),
                                 torch.cat([t.pooled] * 2))  # fmt: skip
        labels = None if self.labels is None else torch.cat([self.labels] * 2)
        null = self.null if self.null is not None else torch.zeros(rows, dtype=torch.bool)
        null = torch.cat([null, torch.ones_like(null)])
        return TokenCondition(text, labels, null)

    def repeat_rows(self, times: int) -> TokenCondition:
        """Each row `times` times in a row: rows [0, 0, ..., 1, 1, ...] (best-of sampling)."""
        text = None if self.text is None else self.text.repeat(times)
        labels = None if self.labels is None else self.labels.repeat_interleave(times, 0)
        null = None if self.null is None else self.null.repeat_interleave(times, 0)
        return TokenCondition(text, labels, null)

    def __len__(self) -> int:
        if self.text is not None:
            return self.text.tokens.shape[0]
        if self.labels is not None:
            return self.labels.shape[0]
        return 0 if self.null is None else self.null.shape[0]


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in fp32 (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """(..., dim) -> (..., dim) with unit root mean square, then scaled."""
        y = x.float()
        y = y * torch.rsqrt(y.square().mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


def rope_angles(positions: Tensor, head_dim: int, base: float) -> Tensor:
    """(S, 2) (row, col) positions -> (S, head_dim/2) rotation angles (2-D RoPE, Su et al.).

    The first half of the rotary pairs turns with the row, the second with the column.
    """
    quarter = head_dim // 4
    freqs = base ** (-torch.arange(quarter, dtype=torch.float64) / quarter)  # (quarter,)
    rows = positions[:, :1].double() * freqs  # (S, quarter)
    cols = positions[:, 1:].double() * freqs
    return torch.cat([rows, cols], -1).float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (..., S, hd) by angles given as cos/sin (S, hd/2) (rotate-half layout)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class Linear(nn.Linear):
    """nn.Linear without bias whose no-grad CPU forward multiplies by a cached contiguous W^T.

    Decoding runs one or two rows at a time, and there CPU BLAS multiplies x (M, in) by a
    contiguous (in, out) matrix 1.5-2x faster than by the transposed view F.linear uses; the
    copy, in the dtype the product runs in (bf16 under autocast), is remade whenever the
    weight changes (optimizer step, load_state_dict, .to). Training and GPUs use F.linear.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)
        self._transposed: Tensor | None = None
        self._transposed_key: tuple | None = None

    def forward(self, x: Tensor) -> Tensor:
        """(..., in) -> (..., out)."""
        weight = self.weight
        if torch.is_grad_enabled() or x.device.type != "cpu":
            return F.linear(x, weight)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        key = (weight.data_ptr(), weight._version, weight.dtype, dtype)
        if key != self._transposed_key:
            self._transposed = weight.detach().t().contiguous().to(dtype)
            self._transposed_key = key
        return x.to(dtype) @ self._transposed


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on q and k; optional KV cache per layer."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = Linear(dim, 3 * dim)
        self.proj = Linear(dim, dim)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor,
                cache: tuple[Tensor, Tensor, int] | None = None) -> Tensor:  # fmt: skip
        """x (B, S, D); mask (B, 1, S, L) bool, True = may attend, or None = all; cache (K, V, start)."""
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(qkv[:2], cos, sin).unbind(0)  # (B, H, S, hd) each, one rotation
        v = qkv[2]
        if cache is not None:  # write this chunk's keys/values, attend to everything so far
            keys, values, start = cache
            keys[:, :, start : start + length] = k
            values[:, :, start : start + length] = v
            k, v = keys[:, :, : start + length], values[:, :, : start + length]
        y = attention(q, k.to(q.dtype), v.to(q.dtype), mask)
        return self.proj(y.transpose(1, 2).reshape(batch, length, dim))  # (B, S, D)


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x) (Shazeer 2020)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = Linear(dim, hidden)
        self.w3 = Linear(dim, hidden)
        self.w2 = Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, S, D) -> (B, S, D)."""
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm x), then x + mlp(norm x)."""

    def __init__(self, config: TokenTransformerConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.dim)
        self.attn = Attention(config.dim, config.heads)
        self.mlp_norm = RMSNorm(config.dim)
        self.mlp = SwiGLU(config.dim, config.mlp_hidden)

    def forward(self, x, cos, sin, mask, cache=None) -> Tensor:
        """(B, S, D) -> (B, S, D)."""
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache)
        return x + self.mlp(self.mlp_norm(x))


@dataclass
class KVCache:
    """Keys and values of every layer for the slots decoded so far (raster decoding)."""

    keys: list[Tensor]  # per layer (B, H, T + N, hd), filled up to `length`
    values: list[Tensor]
    valid: Tensor  # (B, T + N) bool: key slots that may be attended (prefix padding is not)
    cos: Tensor  # (T + N, hd/2) rotary tables of the cache's slots (TokenTransformer.rotary)
    sin: Tensor
    length: int  # slots filled
    padded: bool = True  # some key slot is invalid; False lets one-slot steps skip the mask


class TokenTransformer(nn.Module):
    """net(tokens (B, n), None, cond) -> logits (B, n, vocab); see the module docstring."""

    def __init__(self, config: TokenTransformerConfig):
        super().__init__()
        require(config.mode in ("raster", "maskgit"), "model.mode", config.mode,
                "raster or maskgit")  # fmt: skip
        self.config = config
        self.special = config.vocab  # BOS (raster) / [MASK] (maskgit)
        self.embed = nn.Embedding(config.vocab + 1, config.dim)
        self.text_encoder = make_text_encoder(config.text_encoder)  # built-in one trains too
        width = text_dim(config.text_encoder)
        self.text_proj = nn.Linear(width, config.dim, bias=False) if width else None
        self.null = nn.Parameter(torch.zeros(config.dim)) if width else None
        self.label_embed = (
            nn.Embedding(config.num_classes + 1, config.dim) if config.num_classes else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = RMSNorm(config.dim)
        self.head = None if config.tie_head else Linear(config.dim, config.vocab)
        self._init_weights()
        prefix, cells = config.prefix_length, config.grid_size**2
        diagonal = torch.arange(-prefix, 0)[:, None].expand(prefix, 2)
        grid = torch.stack(torch.meshgrid(torch.arange(config.grid_size),
                                          torch.arange(config.grid_size), indexing="ij"), -1)  # fmt: skip
        positions = torch.cat([diagonal, grid.reshape(cells, 2)])  # (P + N, 2)
        angles = rope_angles(positions, config.dim // config.heads, config.rope_base)
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)
        self.tokenizer = None
        if config.tokenizer:
            from pixloom.models.registry import build_model

            self.tokenizer = build_model("vq", config.tokenizer).eval().requires_grad_(False)
            self._check_tokenizer()
        self.critic = make_critic(config.critic)

    def _init_weights(self) -> None:
        """N(0, 0.02); residual output projections scaled by 1/sqrt(2 depth) (GPT-2)."""
        for name, param in self.named_parameters():
            if name.startswith("text_encoder."):
                continue
            if param.dim() >= 2:
                std = 0.02
                if name.endswith(("attn.proj.weight", "mlp.w2.weight")):
                    std /= math.sqrt(2 * self.config.depth)
                nn.init.normal_(param, std=std)

    def _check_tokenizer(self) -> None:
        for name in ("codebook_size", "grid_size"):
            ours = self.config.vocab if name == "codebook_size" else self.config.grid_size
            theirs = getattr(self.tokenizer, name)
            if theirs != ours:
                field_name = "vocab" if name == "codebook_size" else "grid_size"
                raise InvalidValue(f"model.{field_name}", ours, f"the tokenizer's {name}={theirs}")

    def train(self, mode: bool = True) -> TokenTransformer:
        """Train/eval mode; the frozen tokenizer and critic always stay in eval mode."""
        super().train(mode)
        for frozen in (self.tokenizer, self.critic):
            if frozen is not None:
                frozen.eval()
        return self

    @property
    def num_tokens(self) -> int:
        """Image tokens N per image."""
        return self.config.grid_size**2

    def prefix(self, cond: TokenCondition | None, batch: int) -> tuple[Tensor, Tensor]:
        """Prefix states (B, T, D) and their attention validity (B, T) bool.

        T is the batch's longest prompt (the encoders pad to it), at most P = prefix_length:
        slots that every row would mask are never computed.
        """
        config, device = self.config, self.embed.weight.device
        length = config.prefix_length
        if length == 0:
            return self.embed.weight.new_zeros(batch, 0, config.dim), torch.ones(
                batch, 0, dtype=torch.bool, device=device)  # fmt: skip
        require(cond is not None and len(cond) == batch, "cond", None if cond is None else len(cond),
                f"a TokenCondition with {batch} rows")  # fmt: skip
        null = cond.null.to(device) if cond.null is not None else None
        if self.label_embed is not None:
            require(cond.labels is not None, "cond.labels", None, "class ids for a class model")
            labels = cond.labels.to(device)
            require(bool(((labels >= 0) & (labels < config.num_classes)).all()), "labels",
                    labels.tolist(), f"class ids 0..{config.num_classes - 1}")  # fmt: skip
            if null is not None:
                labels = torch.where(null, torch.full_like(labels, config.num_classes), labels)
            return self.label_embed(labels)[:, None], torch.ones(batch, 1, dtype=torch.bool,
                                                                 device=device)  # fmt: skip
        text = cond.text
        require(text is not None, "cond.text", None, "the prompt's TextEmbedding")
        width = text_dim(config.text_encoder)
        require(text.tokens.shape[-1] == width, "cond.text.tokens", tuple(text.tokens.shape),
                f"token states of width {width}")  # fmt: skip
        tokens = text.tokens[:, :length].to(device)  # (B, T<=P, D_text)
        valid = text.mask[:, :length].to(device)
        pad = max(1 - tokens.shape[1], 0)  # a null row needs slot 0
        tokens = F.pad(tokens, (0, 0, 0, pad))  # (B, T, D_text)
        valid = F.pad(valid, (0, pad), value=False)  # (B, T)
        x = self.text_proj(tokens.to(self.text_proj.weight.dtype))  # (B, T, D)
        if null is not None:
            x = torch.where(null[:, None, None], torch.zeros_like(x), x)
            x[:, 0] = torch.where(null[:, None], self.null.to(x.dtype), x[:, 0])
            valid = torch.where(null[:, None], F.one_hot(torch.zeros_like(null, dtype=torch.long),
                                                         x.shape[1]).bool(), valid)  # fmt: skip
        return x, valid

    def rotary(self, prefix_slots: int, image_slots: int) -> tuple[Tensor, Tensor]:
        """Rotary tables (cos, sin), (T + S, hd/2) each, of T prefix slots then S image slots.

        Prefix slot i keeps its position i - P whatever T is; image slot j is grid cell j.
        """
        start, device = self.config.prefix_length, self.rope_cos.device
        rows = torch.cat([torch.arange(prefix_slots, device=device),
                          torch.arange(start, start + image_slots, device=device)])  # fmt: skip
        return self.rope_cos[rows], self.rope_sin[rows]

    def logits(self, x: Tensor) -> Tensor:
        """Final norm and head: (B, S, D) -> (B, S, vocab)."""
        x = self.norm(x)
        if self.head is not None:
            return self.head(x)
        return F.linear(x, self.embed.weight[: self.special].to(x.dtype))

    def run_slots(self, slot_ids: Tensor, cond: TokenCondition | None) -> Tensor:
        """Logits (B, S, vocab) for image-slot input ids (B, S <= N), prefix included."""
        batch, slots = slot_ids.shape
        require(slots <= self.num_tokens, "tokens", tuple(slot_ids.shape),
                f"at most {self.num_tokens} tokens per row")  # fmt: skip
        prefix, valid = self.prefix(cond, batch)
        x = torch.cat([prefix, self.embed(slot_ids)], 1)  # (B, P + S, D)
        total = x.shape[1]
        keys = torch.cat([valid, torch.ones_like(slot_ids, dtype=torch.bool)], 1)  # (B, P + S)
        mask = keys[:, None, None, :].expand(batch, 1, total, total)
        if self.config.mode == "raster":
            causal = torch.ones(total, total, dtype=torch.bool, device=x.device).tril()
            mask = mask & causal
        cos, sin = self.rotary(prefix.shape[1], slots)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.logits(x[:, prefix.shape[1] :])

    def forward(self, tokens: Tensor, t: None = None, cond: TokenCondition | None = None) -> Tensor:
        """Logits (B, n, vocab) for image tokens (B, n): raster predicts cell j at slot j from
        cells < j (inputs shifted behind BOS); maskgit predicts every cell (id vocab = [MASK])."""
        if self.config.mode == "raster":
            bos = torch.full_like(tokens[:, :1], self.special)
            tokens = torch.cat([bos, tokens[:, :-1]], 1)  # (B, n): BOS, t0 .. t_{n-2}
        return self.run_slots(tokens, cond)

    def new_cache(self, batch: int, dtype: torch.dtype, prefix_slots: int) -> KVCache:
        """An empty raster KV cache for `batch` rows after `prefix_slots` (<= P) prefix slots."""
        config, device = self.config, self.embed.weight.device
        total = prefix_slots + self.num_tokens
        shape = (batch, config.heads, total, config.dim // config.heads)
        keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.blocks]
        values = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.blocks]
        valid = torch.ones(batch, total, dtype=torch.bool, device=device)
        cos, sin = self.rotary(prefix_slots, self.num_tokens)
        return KVCache(keys, values, valid, cos, sin, 0)

    def _cached(self, x: Tensor, cache: KVCache) -> Tensor:
        """Run new slots x (B, S, D) through the blocks after `cache.length` cached slots."""
        batch, count = x.shape[:2]
        start, end = cache.length, cache.length + count
        mask = None  # one new slot and no padding: it may attend to every filled slot
        if count > 1 or cache.padded:
            mask = cache.valid[:, None, None, :end].expand(batch, 1, count, end)
            causal = torch.ones(count, end, dtype=torch.bool, device=x.device).tril(start)
            mask = mask & causal
        cos, sin = cache.cos[start:end], cache.sin[start:end]
        for block, keys, values in zip(self.blocks, cache.keys, cache.values):
            x = block(x, cos, sin, mask, (keys, values, start))
        cache.length = end
        return self.logits(x[:, -1])  # (B, vocab)

    def prefill(self, cond: TokenCondition | None, batch: int,
                dtype: torch.dtype = torch.float32) -> tuple[Tensor, KVCache]:  # fmt: skip
        """Raster: run prefix + BOS -> (logits of cell 0 (B, vocab), the filled cache)."""
        require(self.config.mode == "raster", "mode", self.config.mode, "raster for a KV cache")
        prefix, valid = self.prefix(cond, batch)
        cache = self.new_cache(batch, dtype, prefix.shape[1])
        cache.valid[:, : valid.shape[1]] = valid
        cache.padded = not bool(valid.all())
        bos = self.embed(torch.full((batch, 1), self.special, device=prefix.device))
        return self._cached(torch.cat([prefix, bos], 1), cache), cache

    def forward_step(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Raster: feed the last drawn tokens (B,) -> logits of the next cell (B, vocab)."""
        require(cache.length < cache.valid.shape[1], "cache", cache.length, "a cache not yet full")
        return self._cached(self.embed(tokens[:, None]), cache)


def _build(config: TokenTransformerConfig, family: str) -> TokenTransformer:
    mode = MODES[family]
    require(config.mode in (None, mode), "model.mode", config.mode,
            f"{mode} (or unset) for family {family}")  # fmt: skip
    return TokenTransformer(dataclasses.replace(config, mode=mode))


@register_model("token-ar", TokenTransformerConfig)
def build_token_ar(config: TokenTransformerConfig) -> TokenTransformer:
    """Raster-order autoregressive transformer over image tokens."""
    return _build(config, "token-ar")


@register_model("maskgit", TokenTransformerConfig)
def build_maskgit(config: TokenTransformerConfig) -> TokenTransformer:
    """MaskGIT: the same backbone, bidirectional over image tokens."""
    return _build(config, "maskgit")
