"""Text-image alignment on the shapes world: the scoring rule of SHAPES.md.

An image is correct when the oracle's parsed scene has exactly as many objects as the
prompt record, a one-to-one matching exists in which every specified attribute agrees,
and every relation holds under that matching (judged by centre coordinates). An image that
fails is given the first reason that applies (judge_image), so that reports say how
models fail, not only how often.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
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


CORRECT = "correct"


def judge_image(parsed: Sequence[Any], record: dict) -> str:
    """CORRECT, or the first reason that applies: "count" (a wrong number of objects),
    "relation" (the right objects in the wrong places), "binding" (every asked attribute
    value is drawn, on the wrong objects), else the attributes with a value missing joined
    by "+" in ATTRIBUTES order ("shape", "shape+color", ...)."""
    if image_matches(parsed, record):
        return CORRECT
    wanted = record["objects"]
    if len(parsed) != len(wanted):
        return "count"
    if record.get("relations") and image_matches(parsed, {**record, "relations": []}):
        return "relation"
    missing = [
        name
        for name in ATTRIBUTES
        if Counter(spec[name] for spec in wanted if spec.get(name) is not None)
        - Counter(getattr(obj, name) for obj in parsed)
    ]
    return "+".join(missing) if missing else "binding"


def summarize_alignment(records: Sequence[dict], verdicts: Sequence[Sequence[str]]) -> dict:
    """Per-category and overall accuracy with Wilson 95% intervals, and failure counts.

    Args:
        records: the prompt records, in order.
        verdicts: for each record, one judge_image verdict per image generated for it.
    """
    by_category: dict[str, list[str]] = defaultdict(list)
    for record, outcomes in zip(records, verdicts):
        by_category[record.get("category", "uncategorized")].extend(outcomes)
    everything = [outcome for outcomes in verdicts for outcome in outcomes]

    def score(outcomes: list[str]) -> dict:
        hits = outcomes.count(CORRECT)
        low, high = wilson_interval(hits, len(outcomes))
        failures = Counter(outcome for outcome in outcomes if outcome != CORRECT)
        return {"accuracy": hits / len(outcomes), "ci95": [low, high], "images": len(outcomes),
                "failures": dict(failures.most_common())}  # fmt: skip

    return {
        "categories": {name: score(outcomes) for name, outcomes in sorted(by_category.items())},
        "overall": score(everything),
        "prompts": len(records),
        "images_per_prompt": len(verdicts[0]) if verdicts else 0,
    }
