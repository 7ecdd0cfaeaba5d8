"""Scaled dot-product attention, one function for every pixloom model that attends.

`attention(q, k, v, mask)` is softmax(q k^T / sqrt(d), masked) v. It calls PyTorch's fused
`scaled_dot_product_attention` everywhere except when training on the CPU: there the fused
kernel's bf16 backward is 3-5x slower than the same product written out (measured with torch
2.13 on 2 AMX cores: 72 ms against 21 ms forward+backward at batch 128, 4 heads, 80
positions, head size 64; in fp32 the two are even). Training the token transformers in bf16
on the CPU spends a quarter of each step there otherwise (docs/models/shapes-tokens.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """q (B, H, S, hd), k and v (B, H, L, hd), mask broadcastable to (B, H, S, L) with True =
    may attend (or None: all) -> (B, H, S, hd). Rows with no allowed key are undefined."""
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if not grad or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # (B, H, S, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v
