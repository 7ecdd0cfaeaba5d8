"""Prompt records (the JSON Lines format of SHAPES.md) to and from shapes-world scenes."""

from __future__ import annotations

import random
from typing import Any

from pixloom.data.shapes.world import (
    COLORS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    Scene,
    make_object,
    relation_holds,
)
from pixloom.errors import DataError, InvalidValue

ATTRIBUTES = {"shape": SHAPES, "color": tuple(COLORS), "size": tuple(SIZES), "position": POSITIONS}
MAX_PLACEMENT_TRIES = 2000


def scene_relations(scene: Scene) -> list[dict[str, Any]]:
    """Every relation between two objects that holds by at least a grid cell."""
    records = []
    for a, first in enumerate(scene.objects):
        for b, second in enumerate(scene.objects):
            if a == b:
                continue
            for relation in ("left_of", "above"):
                if relation_holds(first, second, relation) and _cells_differ(
                    first, second, relation
                ):
                    records.append({"type": relation, "a": a, "b": b})
    return records


def _cells_differ(first, second, relation: str) -> bool:
    cell_a, cell_b = POSITIONS.index(first.position), POSITIONS.index(second.position)
    if relation in ("left_of", "right_of"):
        return cell_a % 3 != cell_b % 3
    return cell_a // 3 != cell_b // 3


def scene_to_prompt_record(
    scene: Scene,
    prompt: str,
    category: str,
    *,
    attributes: tuple[str, ...] = ("shape", "color", "size", "position"),
    relations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A SHAPES.md prompt record whose objects are the scene's, with the chosen attributes.

    relations: None lists every clear relation of the scene (see scene_relations).
    """
    for name in attributes:
        if name not in ATTRIBUTES:
            raise InvalidValue("attributes", name, f"a subset of {list(ATTRIBUTES)}")
    objects = [{name: getattr(obj, name) for name in attributes} for obj in scene.objects]
    record: dict[str, Any] = {"prompt": prompt, "objects": objects}
    relations = scene_relations(scene) if relations is None else relations
    if relations:
        record["relations"] = relations
    record["category"] = category
    validate_prompt_record(record)
    return record


def validate_prompt_record(record: Any, where: str = "prompt record") -> dict[str, Any]:
    """Refuse a record that does not follow SHAPES.md, naming the bad field."""
    if not isinstance(record, dict):
        raise InvalidValue(where, record, "a JSON object with prompt, objects, category")
    unknown = set(record) - {"prompt", "objects", "relations", "category"}
    if unknown:
        raise InvalidValue(
            f"{where}.{sorted(unknown)[0]}", "...", "prompt, objects, relations, category"
        )
    if not isinstance(record.get("prompt"), str):
        raise InvalidValue(f"{where}.prompt", record.get("prompt"), "a string")
    if not isinstance(record.get("category", ""), str):
        raise InvalidValue(f"{where}.category", record.get("category"), "a string")
    objects = record.get("objects")
    if not isinstance(objects, list) or not objects:
        raise InvalidValue(f"{where}.objects", objects, "a non-empty list of objects")
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise InvalidValue(f"{where}.objects[{i}]", obj, "an object of attributes")
        for name, value in obj.items():
            if name not in ATTRIBUTES or value not in ATTRIBUTES[name]:
                valid = ATTRIBUTES.get(name, tuple(ATTRIBUTES))
                raise InvalidValue(f"{where}.objects[{i}].{name}", value, f"one of {list(valid)}")
    for i, relation in enumerate(record.get("relations", [])):
        field = f"{where}.relations[{i}]"
        if not isinstance(relation, dict) or relation.get("type") not in RELATIONS:
            raise InvalidValue(field, relation, f"{{type: one of {list(RELATIONS)}, a, b}}")
        for end in ("a", "b"):
            value = relation.get(end)
            if not isinstance(value, int) or not 0 <= value < len(objects):
                raise InvalidValue(
                    f"{field}.{end}", value, f"an index into objects (0-{len(objects) - 1})"
                )
    return record


def prompt_record_to_scene(record: dict[str, Any], rng: random.Random) -> Scene:
    """A scene satisfying the record; unspecified attributes are drawn from rng.

    Relations hold clearly: the two objects are at least one grid column (or row) apart.

    Raises DataError when no placement satisfies the positions and relations (e.g. more than
    nine objects, or contradictory relations).
    """
    validate_prompt_record(record)
    objects = record["objects"]
    if len(objects) > 9:
        raise DataError(f"{len(objects)} objects do not fit the 3x3 grid (at most 9)")
    fixed = {obj["position"] for obj in objects if "position" in obj}
    if len(fixed) < sum("position" in obj for obj in objects):
        raise DataError("two objects ask for the same grid position; each cell holds one object")
    for _ in range(MAX_PLACEMENT_TRIES):
        free_cells = [c for c in range(9) if POSITIONS[c] not in fixed]
        rng.shuffle(free_cells)
        placed = []
        for obj in objects:
            cell = POSITIONS.index(obj["position"]) if "position" in obj else free_cells.pop()
            placed.append(
                make_object(
                    rng,
                    obj.get("shape") or rng.choice(SHAPES),
                    obj.get("color") or rng.choice(tuple(COLORS)),
                    obj.get("size") or rng.choice(tuple(SIZES)),
                    cell,
                )
            )
        if all(  # clearly: a grid column (row) apart, as in training captions
            relation_holds(placed[r["a"]], placed[r["b"]], r["type"])
            and _cells_differ(placed[r["a"]], placed[r["b"]], r["type"])
            for r in record.get("relations", [])
        ):
            return Scene(tuple(placed), background=rng.uniform(0.02, 0.08), noise=rng.randrange(64))
    raise DataError(f"no placement satisfies the relations of {record['prompt']!r}")
