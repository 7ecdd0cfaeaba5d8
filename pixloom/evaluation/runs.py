"""Where a checkpoint's training run keeps its log (OUT/model, OUT/checkpoints/step-N)."""

from __future__ import annotations

from pathlib import Path


def find_run_log(model: str | None) -> Path | None:
    """OUT/log.jsonl of the run a checkpoint directory came from, or None (names, baselines)."""
    if not model:
        return None
    path = Path(model)
    if not path.is_dir():
        return None
    for run in (path.parent, path.parent.parent):  # OUT/model or OUT/checkpoints/step-N
        log = run / "log.jsonl"
        if log.is_file():
            return log
    return None
