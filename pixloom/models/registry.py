"""The model registry: family name -> (config dataclass, builder), filled by a decorator.

Used at the edges only (checkpoint loading, CLI, presets, tests). A model's config is a
dataclass next to its code; checkpoints store it so loading never asks for shapes again.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from pixloom.configs import config_from_dict
from pixloom.errors import InvalidValue


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    family: str
    config_cls: type
    builder: Callable[[Any], nn.Module]


_REGISTRY: dict[str, ModelEntry] = {}

# Modules that register families; imported on first lookup so nothing runs at import time.
FAMILY_MODULES: list[str] = [
    "pixloom.models.sr",
    "pixloom.models.classifier",
    "pixloom.models.scene_parser",
    "pixloom.models.mlp_gan",
    "pixloom.models.dcgan",
    "pixloom.models.stylegan",
    "pixloom.models.vq",
    "pixloom.models.token_transformer",
    "pixloom.models.critic",
]


def register_model(family: str, config_cls: type) -> Callable:
    """Decorator: register `builder(config) -> nn.Module` under `family`."""

    def decorate(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if family in _REGISTRY and _REGISTRY[family].builder is not builder:
            raise ValueError(f"model family {family!r} is registered twice")
        _REGISTRY[family] = ModelEntry(family, config_cls, builder)
        return builder

    return decorate


def _ensure_loaded() -> None:
    for module in FAMILY_MODULES:
        importlib.import_module(module)


def model_families() -> list[str]:
    """Names of every registered model family."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_model_entry(family: str) -> ModelEntry:
    """The registry entry for `family`, or a clear error listing the known ones."""
    _ensure_loaded()
    if family not in _REGISTRY:
        raise InvalidValue("family", family, f"one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[family]


def build_model(family: str, config: dict[str, Any] | Any) -> nn.Module:
    """Build a network from its family and config (a dict is validated strictly)."""
    entry = get_model_entry(family)
    if isinstance(config, dict):
        config = config_from_dict(entry.config_cls, config, where="model")
    return entry.builder(config)
