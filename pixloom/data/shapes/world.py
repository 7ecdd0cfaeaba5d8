"""Vocabulary and scenes of the shapes world (SHAPES.md), and the scene sampler.

A Scene is resolution-free: centres and boxes are fractions of the canvas, so the same
scene renders at any resolution. Every object lies inside its own 3x3 grid cell, which
keeps objects apart (never overlapping) and makes each position name unambiguous.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pixloom.errors import InvalidValue

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLORS = {  # canonical colour -> RGB in [0,1], far enough apart to survive the jitter
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.15),
    "blue": (0.15, 0.30, 1.00),
    "yellow": (0.95, 0.90, 0.10),
    "purple": (0.60, 0.15, 0.85),
    "orange": (1.00, 0.50, 0.00),
    "cyan": (0.10, 0.85, 0.90),
    "white": (0.95, 0.95, 0.95),
}
SIZES = {"small": 1 / 6, "large": 1 / 3}  # nominal side of the bounding box / canvas
POSITIONS = (  # row-major 3x3 grid cells, y grows downwards
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
RELATIONS = ("left_of", "right_of", "above", "below")
DEFAULT_HELDOUT_PAIRS = ("yellow star", "purple triangle", "cyan cross", "orange diamond")
MAX_OBJECTS = 3
SCALE_LEVELS = (0.80, 0.83, 0.86, 0.89, 0.92, 0.95)  # extent jitter, discrete for the sprite cache
COLOR_JITTER = 0.05  # per channel
COUNT_SCENE_PROBABILITY = 0.3  # scenes of 2-3 identical objects, for counting captions


@dataclass(frozen=True)
class SceneObject:
    """One object: its canonical attributes and where it is drawn."""

    shape: str
    color: str
    size: str  # "small" | "large"
    position: str  # grid cell name of the centre
    center: tuple[float, float]  # (x, y) in [0,1], y downwards
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) in [0,1]
    rgb: tuple[float, float, float]  # the jittered colour actually drawn

    @property
    def extent(self) -> float:
        """Side of the (square) bounding box as a fraction of the canvas."""
        return self.box[2] - self.box[0]


@dataclass(frozen=True)
class Scene:
    """Objects on a dark, lightly noisy background; background and noise are part of it."""

    objects: tuple[SceneObject, ...]
    background: float  # grey level of the background in [0,1]
    noise: int  # which precomputed noise texture (and flip) the renderer uses


def relation_holds(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Whether `a <relation> b` holds by centre coordinates (SHAPES.md)."""
    if relation == "left_of":
        return a.center[0] < b.center[0]
    if relation == "right_of":
        return a.center[0] > b.center[0]
    if relation == "above":
        return a.center[1] < b.center[1]
    if relation == "below":
        return a.center[1] > b.center[1]
    raise InvalidValue("relation", relation, f"one of {', '.join(RELATIONS)}")


def clear_relations(a: SceneObject, b: SceneObject) -> list[str]:
    """Relations of a to b that hold with a full grid cell between them (never ambiguous)."""
    cell_a, cell_b = POSITIONS.index(a.position), POSITIONS.index(b.position)
    relations = []
    if cell_a % 3 != cell_b % 3:
        relations.append("left_of" if cell_a % 3 < cell_b % 3 else "right_of")
    if cell_a // 3 != cell_b // 3:
        relations.append("above" if cell_a // 3 < cell_b // 3 else "below")
    return relations


def parse_pairs(pairs: list[str] | tuple[str, ...], field: str) -> frozenset[tuple[str, str]]:
    """["yellow star", ...] -> {("yellow", "star"), ...}, refusing unknown words."""
    parsed = set()
    for text in pairs:
        words = str(text).split()
        if len(words) != 2 or words[0] not in COLORS or words[1] not in SHAPES:
            raise InvalidValue(
                field, text, f"'color shape' with color in {list(COLORS)} and shape in {SHAPES}"
            )
        parsed.add((words[0], words[1]))
    return frozenset(parsed)


def allowed_pairs(excluded: frozenset[tuple[str, str]] = frozenset()) -> list[tuple[str, str]]:
    """Every (color, shape) pair not excluded, in a fixed order."""
    return [(c, s) for c in COLORS for s in SHAPES if (c, s) not in excluded]


def make_object(rng: random.Random, shape: str, color: str, size: str, cell: int) -> SceneObject:
    """Place an object of the given attributes inside grid cell `cell` with jitter."""
    extent = SIZES[size] * rng.choice(SCALE_LEVELS)
    slack = (1 / 3 - extent) / 2  # how far the centre may move and stay inside the cell
    cell_x, cell_y = (cell % 3 + 0.5) / 3, (cell // 3 + 0.5) / 3
    x = cell_x + rng.uniform(-slack, slack)
    y = cell_y + rng.uniform(-slack, slack)
    half = extent / 2
    rgb = tuple(
        min(1.0, max(0.0, v + rng.uniform(-COLOR_JITTER, COLOR_JITTER))) for v in COLORS[color]
    )
    return SceneObject(
        shape=shape,
        color=color,
        size=size,
        position=POSITIONS[cell],
        center=(x, y),
        box=(x - half, y - half, x + half, y + half),
        rgb=rgb,
    )


def sample_scene(
    rng: random.Random,
    *,
    excluded_pairs: frozenset[tuple[str, str]] = frozenset(),
    max_objects: int = MAX_OBJECTS,
) -> Scene:
    """Draw a scene of 1..max_objects objects; excluded colour-shape pairs never appear."""
    pairs = allowed_pairs(excluded_pairs)
    if not pairs:
        raise InvalidValue("heldout_pairs", sorted(excluded_pairs), "leave some pair allowed")
    count = rng.randint(1, max_objects)
    cells = rng.sample(range(9), count)
    if count > 1 and rng.random() < COUNT_SCENE_PROBABILITY:
        color, shape = rng.choice(pairs)
        size = rng.choice(("small", "large"))
        specs = [(shape, color, size)] * count
    else:
        specs = []
        for _ in range(count):
            color, shape = rng.choice(pairs)
            specs.append((shape, color, rng.choice(("small", "large"))))
    objects = tuple(make_object(rng, *spec, cell) for spec, cell in zip(specs, cells))
    return Scene(objects=objects, background=rng.uniform(0.02, 0.08), noise=rng.randrange(64))
