"""Preview grids written during training: OUT/samples/step-XXXXXXX.png (+ TensorBoard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_preview(images: list, directory: Path, step: int, logger: Any) -> Path:
    """Tile `images` (PIL) into one grid, save it as a PNG and send it to TensorBoard."""
    from pixloom.io.grid import make_grid

    directory.mkdir(parents=True, exist_ok=True)
    grid = make_grid(list(images))
    path = directory / f"step-{step:07d}.png"
    grid.save(path)  # overwritten on a rerun of the same step after a resume
    logger.add_image(step, "samples", grid)
    return path
