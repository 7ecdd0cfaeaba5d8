"""Wilson score intervals against published values."""

from __future__ import annotations

import pytest

from pixloom.errors import InvalidValue
from pixloom.metrics.intervals import wilson_interval


@pytest.mark.parametrize(
    "successes, trials, low, high",
    [
        (8, 10, 0.4902, 0.9433),
        (50, 100, 0.4038, 0.5962),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_95_known_values(successes, trials, low, high):
    got = wilson_interval(successes, trials)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_wider_for_higher_confidence_and_validates():
    narrow, wide = wilson_interval(30, 60, confidence=0.8), wilson_interval(30, 60, confidence=0.99)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    with pytest.raises(InvalidValue, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(InvalidValue, match="trials"):
        wilson_interval(0, 0)
