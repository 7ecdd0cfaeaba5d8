"""File formats: checkpoint directories, safe weights loading, images, PNG metadata, grids.

Names are resolved on first use so that importing `pixloom.io.images` never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Checkpoint": "pixloom.io.checkpoint",
    "save_checkpoint": "pixloom.io.checkpoint",
    "load_checkpoint": "pixloom.io.checkpoint",
    "is_complete": "pixloom.io.checkpoint",
    "write_text_atomic": "pixloom.io.checkpoint",
    "read_tensor_file": "pixloom.io.safe_files",
    "read_safetensors_header": "pixloom.io.safe_files",
    "detect_format": "pixloom.io.safe_files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines `name` when it is first asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pixloom.io' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
