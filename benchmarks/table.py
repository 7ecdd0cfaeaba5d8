"""Comparison tables for benchmark scripts, and side-by-side timing that reports ratios.

Speed claims in pixloom are ratios measured in one process, with the candidates
interleaved, so that machine load, frequency scaling and cache state hit every candidate
alike; absolute times from separate runs on a shared machine are not comparable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from pixloom.errors import require


def _cell(value: Any, float_format: str) -> str:
    """One markdown cell: floats formatted, pipes escaped."""
    if isinstance(value, float):
        text = format(value, float_format)
    else:
        text = "" if value is None else str(value)
    return text.replace("|", "\\|")


def markdown_table(
    rows: list[dict[str, Any]], *, columns: list[str] | None = None, float_format: str = ".4g"
) -> str:
    """Rows of dicts -> a GitHub markdown table (columns: given order, else first-seen order)."""
    require(len(rows) > 0, "rows", rows, "at least one row")
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c), float_format) for c in columns) + " |")
    return "\n".join(lines)


def time_side_by_side(
    fns: dict[str, Callable[[], Any]],
    *,
    repeats: int = 10,
    warmup: int = 2,
    baseline: str | None = None,
) -> list[dict[str, Any]]:
    """Time candidates interleaved in one run -> rows with median/min seconds and ratio.

    Each round calls every candidate once, rotating the order from round to round so no
    candidate always runs first. A candidate on an accelerator must synchronize itself
    (e.g. call torch.cuda.synchronize() before returning).

    Args:
        fns: name -> zero-argument callable doing one unit of work.
        repeats: timed rounds; the median over rounds is reported.
        warmup: untimed rounds first (compilation, caches, allocator).
        baseline: the name the ratios refer to (default: the first candidate).

    Returns:
        one row per candidate: name, median_s, min_s, repeats, and ratio = baseline median
        / candidate median (the speed-up over the baseline: 2.0 means twice as fast).
    """
    require(len(fns) > 0, "fns", fns, "at least one candidate")
    require(repeats >= 1, "repeats", repeats, "an integer >= 1")
    require(warmup >= 0, "warmup", warmup, "an integer >= 0")
    names = list(fns)
    baseline = names[0] if baseline is None else baseline
    require(baseline in fns, "baseline", baseline, f"one of {names}")
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return [
        {
            "name": name,
            "median_s": medians[name],
            "min_s": min(times[name]),
            "repeats": repeats,
            "ratio": medians[baseline] / medians[name] if medians[name] > 0 else float("inf"),
        }
        for name in names
    ]
