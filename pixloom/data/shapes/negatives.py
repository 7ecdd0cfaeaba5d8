"""Hard negative captions: one caption word changed so the caption no longer fits its image.

As NegCLIP (Yuksekgonul et al. 2023) swaps words in captions to teach a contrastive model
word order and binding, these edits turn a shapes-world caption into a near miss: colours
or shapes swapped between two objects, one colour, shape or size replaced, a count changed,
a direction flipped, a relation between two objects reversed. They read the caption's words
only (never the scene), using the world's vocabulary (world.py) to know which word is a
colour, a shape or a number. Edits that would name a held-out colour-shape pair are not
made, so that a critic trained on them never learns such a pair as a mismatch.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pixloom.data.shapes.captions import NUMBER_WORDS, plural
from pixloom.data.shapes.world import COLORS, SHAPES, SIZES
from pixloom.text.builtin import split_words

_PLURALS = {plural(shape): shape for shape in SHAPES}
_FLIPS = {"left": "right", "right": "left", "above": "below", "below": "above",
          "top": "bottom", "bottom": "top", "small": "large", "large": "small"}  # fmt: skip
_COUNTS = {"two": 2, "three": 3, "2": 2, "3": 3}
_DETERMINERS = ("a", "an", "one", "the")


def _shape_of(word: str) -> str | None:
    return word if word in SHAPES else _PLURALS.get(word)


def _with_shape(word: str, shape: str) -> str:
    """`word`'s slot (singular or plural) filled with `shape`."""
    return shape if word in SHAPES else plural(shape)


def _swap_colors(words: list[str], rng: random.Random) -> list[str] | None:
    slots = [i for i, w in enumerate(words) if w in COLORS]
    pairs = [(i, j) for i in slots for j in slots if i < j and words[i] != words[j]]
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    out = list(words)
    out[i], out[j] = words[j], words[i]
    return out


def _swap_shapes(words: list[str], rng: random.Random) -> list[str] | None:
    slots = [i for i, w in enumerate(words) if _shape_of(w)]
    pairs = [(i, j) for i in slots for j in slots if i < j and _shape_of(words[i]) != _shape_of(words[j])]  # fmt: skip
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    out = list(words)
    out[i], out[j] = _with_shape(words[i], _shape_of(words[j])), _with_shape(words[j], _shape_of(words[i]))  # fmt: skip
    return out


def _replace(words: list[str], rng: random.Random, vocabulary, read, write) -> list[str] | None:
    slots = [i for i, w in enumerate(words) if read(w)]
    if not slots:
        return None
    i = rng.choice(slots)
    out = list(words)
    out[i] = write(words[i], rng.choice([v for v in vocabulary if v != read(words[i])]))
    return out


def _replace_color(words: list[str], rng: random.Random) -> list[str] | None:
    return _replace(words, rng, list(COLORS), lambda w: w if w in COLORS else None,
                    lambda _, new: new)  # fmt: skip


def _replace_shape(words: list[str], rng: random.Random) -> list[str] | None:
    return _replace(words, rng, SHAPES, _shape_of, _with_shape)


def _flip(words: list[str], rng: random.Random) -> list[str] | None:
    """A direction, position or size word turned to its opposite."""
    slots = [i for i, w in enumerate(words) if w in _FLIPS]
    if not slots:
        return None
    i = rng.choice(slots)
    return words[:i] + [_FLIPS[words[i]]] + words[i + 1 :]


def _relation_slots(words: list[str]) -> list[int]:
    """Where the words name a relation between two objects: "left of", "right of", "above",
    "below" (a position's "left" or "right" is never followed by "of")."""
    return [
        i
        for i, w in enumerate(words)
        if w in ("above", "below") or (w in ("left", "right") and words[i + 1 : i + 2] == ["of"])
    ]


def _flip_relation(words: list[str], rng: random.Random) -> list[str] | None:
    """The relation between two objects reversed: "left of" <-> "right of", "above" <->
    "below". The objects and their order stay, so only where they are tells the two apart."""
    slots = _relation_slots(words)
    if not slots:
        return None
    i = rng.choice(slots)
    return words[:i] + [_FLIPS[words[i]]] + words[i + 1 :]


def _agree(words: list[str], first: int, noun: int, many: bool) -> None:
    """Fix the verb around the noun phrase words[first:noun + 1] after its number changed."""
    old, new = ("is", "are") if many else ("are", "is")
    if noun + 1 < len(words) and words[noun + 1] == old:
        words[noun + 1] = new
    if first >= 2 and words[first - 2 : first] == ["there", old]:
        words[first - 1] = new


def _recount(words: list[str], rng: random.Random) -> list[str] | None:
    """One count changed: "two circles" -> "three circles" or "a circle", "a circle" -> "two
    circles"; the verb follows."""
    choices = []
    for i, word in enumerate(words):
        if word in _COUNTS:
            noun = next((j for j in range(i + 1, len(words)) if words[j] in _PLURALS), None)
            if noun is not None:
                choices.append(("plural", i, noun))
        elif word in _DETERMINERS:
            noun = next((j for j in range(i + 1, len(words)) if _shape_of(words[j])), None)
            between = words[i + 1 : noun] if noun is not None else ["?"]
            if (
                noun is not None
                and words[noun] in SHAPES
                and all(w in COLORS or w in SIZES for w in between)
            ):
                choices.append(("single", i, noun))
    if not choices:
        return None
    kind, i, noun = rng.choice(choices)
    out = list(words)
    if kind == "single":
        out[i] = NUMBER_WORDS[rng.choice((2, 3))]
        out[noun] = plural(words[noun])
        _agree(out, i, noun, many=True)
        return out
    count = _COUNTS[words[i]]
    new = rng.choice([c for c in (1, 2, 3) if c != count])
    if new == 1:
        out[noun] = _PLURALS[words[noun]]
        out[i] = "an" if out[i + 1][0] in "aeiou" else "a"
        _agree(out, i, noun, many=False)
    else:
        out[i] = NUMBER_WORDS[new]
    return out


EDITS: dict[str, Callable[[list[str], random.Random], list[str] | None]] = {
    "swap_colors": _swap_colors,
    "swap_shapes": _swap_shapes,
    "replace_color": _replace_color,
    "replace_shape": _replace_shape,
    "flip": _flip,
    "recount": _recount,
    "flip_relation": _flip_relation,
}
# Edits tried only where a critic task's edit_weights names them, so that the presets
# written before they existed draw the same edits.
OPT_IN_EDITS = frozenset({"flip_relation"})


def _names_pair(words: list[str], pairs: frozenset[tuple[str, str]]) -> bool:
    return any((a, _shape_of(b)) in pairs for a, b in zip(words, words[1:]) if a in COLORS)


def hard_negative(
    caption: str,
    rng: random.Random,
    avoid_pairs: frozenset[tuple[str, str]] = frozenset(),
    weights: dict[str, float] | None = None,
) -> str | None:
    """The caption with one edit that makes it false of its scene, or None when no edit
    applies. Words come back lower-cased, space-separated (as the built-in encoder reads
    them); no edit names a (colour, shape) pair of `avoid_pairs`. The edits are tried in a
    random order, each equally likely to come first, or in proportion to `weights` (by edit
    name; 1 where unnamed, 0 never tried; an edit of OPT_IN_EDITS only where named)."""
    words = split_words(caption)
    names = [name for name in EDITS if weights is not None or name not in OPT_IN_EDITS]
    if weights is None:
        rng.shuffle(names)
    else:  # weighted order without replacement (Efraimidis and Spirakis 2006)
        keys = {
            name: rng.random() ** (1 / w)
            for name in names
            if (w := weights.get(name, 0.0 if name in OPT_IN_EDITS else 1.0)) > 0
        }
        names = sorted(keys, key=keys.get, reverse=True)
    for name in names:
        edited = EDITS[name](words, rng)
        if edited is not None and edited != words and not _names_pair(edited, avoid_pairs):
            return " ".join(edited)
    return None
