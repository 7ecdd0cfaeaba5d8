"""Captions of shapes-world scenes from a small grammar with many phrasings (SHAPES.md).

Only the canonical attribute words of world.py appear, joined by the function words in
FUNCTION_WORDS; no synonyms. A caption always names every object (identical objects are
counted, "three green stars" / "3 green stars"); it may leave size, colour or position out.
"""

from __future__ import annotations

import random

from pixloom.data.shapes.world import Scene, SceneObject, clear_relations

NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "one",
        "two",
        "three",
        "1",
        "2",
        "3",
        "there",
        "is",
        "are",
        "in",
        "at",
        "on",
        "to",
        "of",
        "and",
        "corner",
        "side",
    ]
)
# Probabilities that a caption names each optional attribute.
P_SIZE, P_COLOR, P_POSITION, P_RELATION = 0.75, 0.9, 0.5, 0.5

_RELATION_PHRASES = {
    "left_of": ("to the left of", "left of"),
    "right_of": ("to the right of", "right of"),
    "above": ("above",),
    "below": ("below",),
}


def plural(shape: str) -> str:
    """English plural of a shape name ("cross" -> "crosses")."""
    return shape + "es" if shape.endswith("s") else shape + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _adjectives(obj: SceneObject, attributes: set[str]) -> list[str]:
    return [obj.size] * ("size" in attributes) + [obj.color] * ("color" in attributes)


def noun_phrase(obj: SceneObject, attributes: set[str], rng: random.Random, count: int = 1) -> str:
    """ "a small red circle", "the blue square", "two red circles", "2 red circles"."""
    words = _adjectives(obj, attributes)
    if count > 1:
        number = NUMBER_WORDS[count] if rng.random() < 0.6 else str(count)
        return " ".join([number, *words, plural(obj.shape)])
    words.append(obj.shape)
    determiner = rng.choice((_article(words[0]),) * 4 + ("the", "one"))
    return " ".join([determiner, *words])


def position_phrase(position: str, rng: random.Random) -> str:
    """ "in the top left corner", "at the top left", "on the left", "in the center"."""
    if " " in position:  # a corner
        return rng.choice((f"in the {position} corner", f"at the {position}", f"in the {position}"))
    if position == "center":
        return rng.choice(("in the center", "at the center"))
    if position in ("left", "right"):
        return rng.choice((f"on the {position}", f"at the {position}", f"on the {position} side"))
    return rng.choice((f"at the {position}", f"on the {position} side"))


def _groups(scene: Scene) -> list[list[SceneObject]]:
    """Objects grouped by identical (shape, color, size), in scene order."""
    groups: dict[tuple[str, str, str], list[SceneObject]] = {}
    for obj in scene.objects:
        groups.setdefault((obj.shape, obj.color, obj.size), []).append(obj)
    return list(groups.values())


def _join(parts: list[str], rng: random.Random) -> str:
    if len(parts) == 1:
        return parts[0]
    comma = "," if len(parts) > 2 and rng.random() < 0.5 else ""
    return ", ".join(parts[:-1]) + f"{comma} and {parts[-1]}"


def _listing(scene: Scene, attributes: set[str], rng: random.Random) -> str:
    """Every object named: counted groups, or one phrase per object with its position."""
    groups = _groups(scene)
    with_positions = "position" in attributes and all(len(group) == 1 for group in groups)
    if with_positions:
        parts = [
            f"{noun_phrase(g[0], attributes, rng)} {position_phrase(g[0].position, rng)}"
            for g in groups
        ]
    else:
        parts = [noun_phrase(g[0], attributes, rng, count=len(g)) for g in groups]
    text = _join(parts, rng)
    many = len(scene.objects) > 1
    style = rng.random()
    if style < 0.25:
        return f"there {'are' if len(groups[0]) > 1 else 'is'} {text}"
    if style < 0.35 and not many and with_positions:
        obj = scene.objects[0]
        return f"{position_phrase(obj.position, rng)} there is {noun_phrase(obj, attributes, rng)}"
    return text


def _relation_sentence(scene: Scene, attributes: set[str], rng: random.Random) -> str | None:
    """ "a red circle to the left of a blue square" (+ "and ..." for a third object)."""
    objects = list(scene.objects)
    rng.shuffle(objects)
    first, second, *rest = objects
    relations = clear_relations(first, second)
    if not relations:
        return None
    phrase = rng.choice(_RELATION_PHRASES[rng.choice(relations)])
    verb = "is " if rng.random() < 0.3 else ""
    no_position = attributes - {"position"}
    text = f"{noun_phrase(first, no_position, rng)} {verb}{phrase} {noun_phrase(second, no_position, rng)}"
    for obj in rest:
        where = f" {position_phrase(obj.position, rng)}" if "position" in attributes else ""
        text += f" and {noun_phrase(obj, no_position, rng)}{where}"
    return text


def caption_scene(scene: Scene, rng: random.Random, relation_captions: float = P_RELATION) -> str:
    """One caption of the scene, phrased by rng; a scene of distinct objects is told as a
    relation between two of them with probability `relation_captions` (where one is clear)."""
    attributes = {"shape"}
    for name, probability in (("size", P_SIZE), ("color", P_COLOR), ("position", P_POSITION)):
        if rng.random() < probability:
            attributes.add(name)
    identical = len(_groups(scene)) == 1
    if len(scene.objects) > 1 and not identical and rng.random() < relation_captions:
        text = _relation_sentence(scene, attributes, rng)
        if text is not None:
            return text
    return _listing(scene, attributes, rng)
