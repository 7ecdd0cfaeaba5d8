"""Exponential moving average of a module's weights (Polyak & Juditsky 1992).

The decay ramps from 0 to `decay` over `warmup` steps, so early EMA weights follow the
network instead of staying near its random initialization.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    """An eval-mode copy of `module` whose floating tensors track an EMA of its weights."""

    def __init__(self, module: nn.Module, *, decay: float, warmup: int):
        self.decay, self.warmup = decay, warmup
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """Effective decay after `step` completed steps."""
        if self.warmup <= 0:
            return self.decay
        return self.decay * min(1.0, step / self.warmup)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Move the average toward `module`'s current weights; buffers are copied."""
        beta = self.decay_at(step)
        source = module.state_dict()
        for name, target in self.module.state_dict().items():
            value = source[name].detach()
            if target.is_floating_point():
                target.lerp_(value.to(target.dtype), 1.0 - beta)
            else:
                target.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore averaged weights saved by state_dict()."""
        self.module.load_state_dict(state)
