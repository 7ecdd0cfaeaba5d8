"""The Task contract between the training engine and a model family.

A task supplies its networks (`modules`), the optimizer phases that update them (`phases`:
a GAN has G and D plus a lazy-regularization phase with an interval, as in StyleGAN2-ADA,
Karras et al. 2020) and a `loss` per phase. The engine owns everything else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch.nn as nn
from torch import Tensor

from pixloom.errors import InvalidValue


@dataclass
class Phase:
    name: str
    modules: list[str]  # names in task.modules() whose parameters this phase updates
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    interval: int = 1  # run on steps where step % interval == 0 (lazy R1 etc.)

    def __post_init__(self) -> None:
        if not self.modules:
            raise InvalidValue(f"phase {self.name}.modules", self.modules, "at least one module")
        if not self.lr > 0:
            raise InvalidValue(f"phase {self.name}.lr", self.lr, "a positive learning rate")
        if self.interval < 1:
            raise InvalidValue(f"phase {self.name}.interval", self.interval, "an integer >= 1")


class Task(Protocol):
    ema_module: str | None  # module that gets an EMA copy (or None)

    def modules(self) -> dict[str, nn.Module]: ...

    def phases(self) -> list[Phase]: ...

    def loss(self, phase: str, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        # batch = collated dataset items moved to the device ("image" channels_last when bf16)
        ...

    def export_config(self) -> dict:
        # {"family": str, "model": {...}} for the inference checkpoint (EMA weights)
        ...

    def state_dict(self) -> dict:
        # extra task state (e.g. ADA strength)
        ...

    def load_state_dict(self, state: dict) -> None: ...

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        # optional preview grid (PIL images), may return None
        ...

    # Optional: prepare_inference(module) -> None, called on a copy of the EMA module before
    # it is exported or sampled (e.g. to re-estimate BatchNorm statistics for its weights).
    # Optional: compile_modules() -> None, called once after the EMA copy is made when
    # TrainConfig.compile is set; it compiles the training networks in place (state-dict keys
    # unchanged). Tasks without it refuse `compile`.


TaskFactory = Callable[[dict, Any], Task]  # factory(options, dataset_info) -> Task

_TASKS: dict[str, TaskFactory] = {}

# Modules that register tasks; imported on first lookup so nothing runs at import time.
TASK_MODULES: list[str] = [
    "pixloom.training.tasks.classifier",
    "pixloom.training.tasks.scene_parser",
    "pixloom.training.tasks.sr",
    "pixloom.training.tasks.gan",
    "pixloom.training.tasks.vq",
    "pixloom.training.tasks.token_lm",
    "pixloom.training.tasks.critic",
]


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: register `factory(options: dict, dataset_info) -> Task` under `name`."""

    def decorate(factory: TaskFactory) -> TaskFactory:
        if name in _TASKS and _TASKS[name] is not factory:
            raise ValueError(f"task {name!r} is registered twice")
        _TASKS[name] = factory
        return factory

    return decorate


def _ensure_loaded() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def task_names() -> list[str]:
    """Names of every registered training task."""
    _ensure_loaded()
    return sorted(_TASKS)


def get_task(name: str) -> TaskFactory:
    """The factory registered under `name`, or a clear error listing the known tasks."""
    _ensure_loaded()
    if name not in _TASKS:
        raise InvalidValue("task", name, f"one of {', '.join(sorted(_TASKS))}")
    return _TASKS[name]
