"""Confidence intervals for the accuracies pixloom reports (e.g. text-image alignment)."""

from __future__ import annotations

import math
from statistics import NormalDist

from pixloom.errors import require


def wilson_interval(
    successes: int, trials: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927) -> (low, high) in [0, 1].

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or
    `trials` successes, which matters for the small per-category counts of alignment suites.
    """
    require(isinstance(trials, int) and trials >= 1, "trials", trials, "an integer >= 1")
    require(
        isinstance(successes, int) and 0 <= successes <= trials,
        "successes",
        successes,
        f"an integer in [0, {trials}]",
    )
    require(0 < confidence < 1, "confidence", confidence, "a probability in (0, 1), e.g. 0.95")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)  # 1.96 for 95%
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, center - half_width), min(1.0, center + half_width)
