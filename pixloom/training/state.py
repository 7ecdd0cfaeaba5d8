"""What a run is made of (task, modules, optimizers, EMA, data order) and its saved state.

`build_run` assembles a run from a TrainConfig; `capture_state` / `restore_state` turn it
into the nested training state of a checkpoint and back, bit for bit.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from pixloom import __version__
from pixloom.configs import config_to_dict
from pixloom.devices import memory_format, resolve_device, resolve_precision
from pixloom.errors import InvalidValue, require
from pixloom.training.checkpointing import capture_rng, restore_rng
from pixloom.training.config import TrainConfig
from pixloom.training.data_order import DataOrder
from pixloom.training.distributed import (
    World,
    broadcast_modules,
    check_batch_split,
    gather_objects,
    init_world,
)
from pixloom.training.ema import EMA
from pixloom.training.task import Phase, Task, get_task

# Settings that must match when resuming: anything else changes what the run means.
RESUME_MUST_MATCH = (
    "task",
    "data",
    "data_options",
    "resolution",
    "batch_size",
    "seed",
    "task_options",
)


@dataclass
class Run:
    config: TrainConfig
    world: World
    device: torch.device
    precision: str  # "fp32" or "bf16"
    dataset: Any
    task: Task
    modules: dict[str, nn.Module]
    phases: list[Phase]
    trainable: dict[str, list[nn.Parameter]]  # phase name -> parameters it updates
    optimizers: dict[str, torch.optim.Optimizer]
    ema: EMA | None
    order: DataOrder
    step: int = 0  # completed optimizer steps


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python's random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _check_phases(phases: list[Phase], modules: dict[str, nn.Module], ema_module: str | None):
    if not phases:
        raise InvalidValue("task.phases", phases, "at least one Phase")
    for phase in phases:
        for name in phase.modules:
            if name not in modules:
                raise InvalidValue(f"phase {phase.name}.modules", name, f"one of {list(modules)}")
    if ema_module is not None and ema_module not in modules:
        raise InvalidValue("task.ema_module", ema_module, f"None or one of {list(modules)}")


def _phase_parameters(phase: Phase, modules: dict[str, nn.Module]) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for name in phase.modules:
        for param in modules[name].parameters():
            if param.requires_grad:  # frozen parts (e.g. a text encoder) stay frozen
                seen.setdefault(id(param), param)
    return list(seen.values())


def build_run(config: TrainConfig, dataset: Any | None = None) -> Run:
    """Assemble devices, dataset, task, modules, optimizers and EMA for `config`."""
    device = resolve_device(config.device)
    world = init_world(device.type)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    check_batch_split(world, config.batch_size, config.grad_accum)
    precision = resolve_precision(config.precision, device)
    if device.type == "cuda":  # training shapes are fixed: let cuDNN pick the fastest kernels
        torch.backends.cudnn.benchmark = True
    if dataset is None:
        from pixloom.data.registry import load_dataset

        dataset = load_dataset(
            config.data, split="train", resolution=config.resolution, **config.data_options
        )
    seed_everything(config.seed)  # identical initialization on every rank
    task = get_task(config.task)(dict(config.task_options), dataset.info)
    modules = task.modules()
    phases = task.phases()
    _check_phases(phases, modules, task.ema_module)
    for module in modules.values():
        module.to(device=device, memory_format=memory_format(precision)).train()
    broadcast_modules(modules, world)
    trainable = {phase.name: _phase_parameters(phase, modules) for phase in phases}
    optimizers = {
        phase.name: torch.optim.AdamW(
            trainable[phase.name], lr=phase.lr, betas=phase.betas, weight_decay=phase.weight_decay
        )
        for phase in phases
    }
    ema = None
    if task.ema_module is not None:
        ema = EMA(modules[task.ema_module], decay=config.ema_decay, warmup=config.ema_warmup)
    if config.compile:  # after the EMA copy, which must stay eager (it samples with a cache)
        compile_modules = getattr(task, "compile_modules", None)
        require(compile_modules is not None, "compile", True,
                f"false: task {config.task} has no compiled training path (token-lm has)")  # fmt: skip
        compile_modules()
    order = DataOrder(len(dataset), config.batch_size, config.seed)
    seed_everything(config.seed + 7919 * (world.rank + 1))  # per-rank training randomness
    return Run(
        config,
        world,
        device,
        precision,
        dataset,
        task,
        modules,
        phases,
        trainable,
        optimizers,
        ema,
        order,
    )


def inference_ema(run: Run) -> nn.Module:
    """The EMA module as inference sees it: a copy the task prepared (e.g. BatchNorm
    statistics re-estimated for the averaged weights), or the EMA module itself."""
    prepare = getattr(run.task, "prepare_inference", None)
    if prepare is None:
        return run.ema.module
    module = copy.deepcopy(run.ema.module)
    with torch.random.fork_rng(devices=[]):
        prepare(module)
    return module


def export_weights(run: Run) -> dict[str, torch.Tensor]:
    """Inference weights: the EMA module, else the only module, else all modules prefixed."""
    if run.ema is not None:
        return inference_ema(run).state_dict()
    if len(run.modules) == 1:
        return next(iter(run.modules.values())).state_dict()
    return {
        f"{name}.{key}": value
        for name, module in run.modules.items()
        for key, value in module.state_dict().items()
    }


def _dataset_description(run: Run) -> dict[str, Any]:
    info = run.dataset.info
    fields = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(vars(info))
    plain = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in fields.items()
        if isinstance(value, (str, int, float, bool, list, tuple))
    }
    return {"spec": run.config.data, **plain}


def export_config(run: Run) -> dict[str, Any]:
    """config.json content: the task's model config plus training, dataset and provenance."""
    config = dict(run.task.export_config())
    config["training"] = config_to_dict(run.config)
    config["dataset"] = _dataset_description(run)
    config["provenance"] = {
        "pixloom_version": __version__,
        "torch_version": torch.__version__,
        "step": run.step,
        "world_size": run.world.size,
        "precision": run.precision,
        "device": run.device.type,
    }
    return config


def capture_state(run: Run) -> dict[str, Any]:
    """The full training state (call on every rank: RNG states are gathered)."""
    position = run.order.position(run.step)
    return {
        "step": run.step,
        "modules": {name: module.state_dict() for name, module in run.modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in run.optimizers.items()},
        "schedule": {
            "name": run.config.lr_schedule,
            "warmup_steps": run.config.warmup_steps,
            "total_steps": run.config.steps,
            "step": run.step,
        },
        "rng": gather_objects(capture_rng(), run.world),  # one entry per rank
        "data": dataclasses.asdict(position),
        "task": run.task.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "world_size": run.world.size,
    }


def check_resumable(run: Run, saved_config: dict[str, Any], path: Any) -> None:
    """Refuse to resume a run whose defining settings differ from the checkpoint's."""
    saved = saved_config.get("training", {})
    current = config_to_dict(run.config)
    for name in RESUME_MUST_MATCH:
        if name in saved and saved[name] != current[name]:
            raise InvalidValue(
                name,
                current[name],
                f"{saved[name]!r} as in the run being resumed ({path}); "
                "use another --out or --no-resume to start over",
            )


def restore_state(run: Run, state: dict[str, Any]) -> None:
    """Load a state made by capture_state() into `run`."""
    for name, module in run.modules.items():
        module.load_state_dict(state["modules"][name])
    for name, optimizer in run.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])
    run.task.load_state_dict(state["task"])
    rng_states = state["rng"]
    if len(rng_states) == run.world.size:
        restore_rng(rng_states[run.world.rank])
    else:  # a different world size cannot continue the same random streams
        seed_everything(run.config.seed + 7919 * (run.world.rank + 1) + state["step"])
    run.step = int(state["step"])
