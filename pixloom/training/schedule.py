"""Learning-rate schedule as a pure function of the step (so resume needs only the step).

Linear warmup (Goyal et al. 2017, "Accurate, Large Minibatch SGD") followed by cosine
decay to zero (Loshchilov & Hutter 2017, "SGDR") or a constant rate.
"""

from __future__ import annotations

import math


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate for 0-based `step`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
