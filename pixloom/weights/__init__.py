"""Checkpoints shipped inside the package: pixloom/weights/NAME/ is loaded by `pixloom.load(NAME)`.

Each is a normal checkpoint directory (config.json, model.safetensors, manifest.json) made by
the recipe named in its config's provenance; its model card lives in docs/.
"""

from __future__ import annotations

from pathlib import Path


def weights_root() -> Path:
    """The folder holding the shipped checkpoint directories."""
    return Path(__file__).resolve().parent
