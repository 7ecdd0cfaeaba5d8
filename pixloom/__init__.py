"""pixloom: language-driven visual generation, trained and served from one toolkit."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(name_or_path, **kwargs):
    """Load a shipped model by name or a checkpoint directory by path (see pixloom.api.load)."""
    from pixloom.api import load as _load

    return _load(name_or_path, **kwargs)
