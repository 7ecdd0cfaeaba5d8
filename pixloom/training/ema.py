"""Exponential moving average of a module's weights (Polyak & Juditsky 1992).

The decay ramps from 0 to `decay` over `warmup` steps, so early EMA weights follow the
network instead of staying near its random initialization.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

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


@torch.no_grad()
def recalibrate_batch_norm(module: nn.Module, run_batches: Callable[[], object]) -> bool:
    """Recompute the running statistics of `module`'s BatchNorm layers from scratch.

    Averaged (EMA) weights do not match the running statistics the raw network collected,
    so the statistics are re-estimated with the averaged weights (as SWA does, Izmailov et
    al. 2018): `run_batches()` runs the forward passes. Returns False (and runs nothing)
    when the module has no BatchNorm layer. The module is left in eval mode.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
        norm.train()
    run_batches()
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    module.eval()
    return True
