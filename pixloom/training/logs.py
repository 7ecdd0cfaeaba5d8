"""Run logs: JSONL (OUT/log.jsonl), TensorBoard (OUT/tensorboard) and a tqdm progress bar."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pixloom.progress import progress_bar


def _json_number(value: float | int) -> float | int | None:
    """Ints stay ints; NaN/inf become null (JSON has no spelling for them)."""
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


class RunLogger:
    """Writes metrics from rank 0; a no-op on other ranks."""

    def __init__(
        self, out: Path, *, enabled: bool, tensorboard: bool, progress: bool, total: int, start: int
    ):
        self.enabled = enabled
        self.path = out / "log.jsonl"
        self._writer = None
        self._bar = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only when asked

            self._writer = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=start)
        if progress:
            self._bar = progress_bar(total=total, initial=start, unit="step", dynamic_ncols=True)

    def _truncate_after(self, step: int) -> None:
        """Drop lines past `step` left by a run that stopped after its last checkpoint."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        self.path.write_text("".join(f"{line}\n" for line in kept))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append one JSONL record and the TensorBoard scalars for `step`."""
        if not self.enabled:
            return
        record: dict[str, Any] = {"step": step, "time": round(time.time(), 3)}
        record.update({key: _json_number(value) for key, value in metrics.items()})
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, step)

    def event(self, step: int, message: str) -> None:
        """Record a notable event (rollback, skipped checkpoint) in the log and on screen."""
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, "event": message}) + "\n")
        tqdm.write(f"pixloom train: step {step}: {message}")

    def progress(self, step: int, metrics: dict[str, float]) -> None:
        """Advance the bar to `step` and show the latest metrics."""
        if self._bar is None:
            return
        self._bar.update(step - self._bar.n)
        self._bar.set_postfix(
            {key: f"{value:.4g}" for key, value in metrics.items()}, refresh=False
        )

    def add_image(self, step: int, name: str, image: Any) -> None:
        """Add a PIL image to TensorBoard."""
        if self._writer is None:
            return
        import numpy as np

        self._writer.add_image(name, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        """Flush and close the bar and the TensorBoard writer."""
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
