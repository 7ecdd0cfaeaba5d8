"""The non-finite guard: skip bad steps, roll back after too many, then stop loudly."""

from __future__ import annotations

from pixloom.errors import PixloomError


class NonFiniteGuard:
    """Counts consecutive non-finite steps and the rollbacks they caused."""

    def __init__(self, *, max_skips: int, max_rollbacks: int):
        self.max_skips, self.max_rollbacks = max_skips, max_rollbacks
        self.consecutive = 0
        self.skipped = 0
        self.rollbacks = 0

    def record(self, finite: bool, step: int) -> str:
        """Return "ok", "skip" or "rollback" for a step; raise after too many rollbacks."""
        if finite:
            self.consecutive = 0
            return "ok"
        self.consecutive += 1
        self.skipped += 1
        if self.consecutive <= self.max_skips:
            return "skip"
        if self.rollbacks >= self.max_rollbacks:
            raise PixloomError(
                f"training diverged: non-finite loss or gradients for {self.consecutive} "
                f"consecutive steps at step {step} after {self.rollbacks} rollback(s) "
                f"(max_rollbacks={self.max_rollbacks}); lower the learning rate, enable "
                "grad_clip or use precision=fp32"
            )
        self.rollbacks += 1
        self.consecutive = 0
        return "rollback"
