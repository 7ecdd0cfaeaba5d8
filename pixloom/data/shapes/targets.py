"""Scenes as fixed-size tensors: the ground truth a scene parser is trained against.

Every object sits in its own 3x3 grid cell (world.py), so a scene is 9 rows of
[shape + 1 (0 = empty cell), colour, size, centre offset x, centre offset y], the offsets
being the centre's position inside its cell in [0,1].
"""

from __future__ import annotations

import torch

from pixloom.data.shapes.world import COLORS, POSITIONS, SHAPES, SIZES, Scene

COLOR_NAMES = tuple(COLORS)
SIZE_NAMES = tuple(SIZES)
TARGET_FIELDS = ("shape", "color", "size", "offset_x", "offset_y")


def scene_to_target(scene: Scene) -> torch.Tensor:
    """Scene -> float32 [9, 5] (see module docstring); empty cells are all zero."""
    target = torch.zeros(len(POSITIONS), len(TARGET_FIELDS))
    for obj in scene.objects:
        cell = POSITIONS.index(obj.position)
        x, y = obj.center
        target[cell] = torch.tensor(
            [
                SHAPES.index(obj.shape) + 1,
                COLOR_NAMES.index(obj.color),
                SIZE_NAMES.index(obj.size),
                x * 3 - cell % 3,
                y * 3 - cell // 3,
            ]
        )
    return target


def cell_center(cell: int, offset_x: float, offset_y: float) -> tuple[float, float]:
    """Canvas coordinates in [0,1] of an offset inside grid cell `cell`."""
    return ((cell % 3 + offset_x) / 3, (cell // 3 + offset_y) / 3)
