"""Text-image alignment on the shapes world: the scoring rule of SHAPES.md.

An image is correct when the oracle's parsed scene has exactly as many objects as the
prompt record, a one-to-one matching exists in which every specified attribute agrees,
and every relation holds under that matching (judged by centre coordinates).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pixloom.metrics.intervals import wilson_interval

ATTRIBUTES = ("shape", "color", "size", "position")


def _holds(relation: str, a_center, b_center) -> bool:
    (ax, ay), (bx, by) = a_center, b_center
    return {"left_of": ax < bx, "right_of": ax > bx, "above": ay < by, "below": ay > by}[relation]


def image_matches(parsed: Sequence[Any], record: dict) -> bool:
    """Whether parsed objects (with .shape/.color/.size/.position/.center) satisfy a record."""
    wanted = record["objects"]
    if len(parsed) != len(wanted):
        return False
    for order in itertools.permutations(range(len(parsed))):
        matched = [parsed[i] for i in order]  # matched[j] plays record object j
        if not all(
            getattr(obj, name) == spec[name]
            for obj, spec in zip(matched, wanted)
            for name in ATTRIBUTES
            if spec.get(name) is not None
        ):
            continue
        if all(
            _holds(rel["type"], matched[rel["a"]].center, matched[rel["b"]].center)
            for rel in record.get("relations", [])
        ):
            return True
    return False


def summarize_alignment(records: Sequence[dict], correct: Sequence[Sequence[bool]]) -> dict:
    """Per-category and overall accuracy with Wilson 95% intervals.

    Args:
        records: the prompt records, in order.
        correct: for each record, one bool per image generated for it.
    """
    by_category: dict[str, list[bool]] = defaultdict(list)
    for record, outcomes in zip(records, correct):
        by_category[record.get("category", "uncategorized")].extend(outcomes)
    everything = [outcome for outcomes in correct for outcome in outcomes]

    def score(outcomes: list[bool]) -> dict:
        hits = sum(outcomes)
        low, high = wilson_interval(hits, len(outcomes))
        return {"accuracy": hits / len(outcomes), "ci95": [low, high], "images": len(outcomes)}

    return {
        "categories": {name: score(outcomes) for name, outcomes in sorted(by_category.items())},
        "overall": score(everything),
        "prompts": len(records),
        "images_per_prompt": len(correct[0]) if correct else 0,
    }
