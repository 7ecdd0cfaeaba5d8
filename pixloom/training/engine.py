"""The training engine: one loop for every family (DESIGN.md, "Task (training)").

`train(config)` builds the run (state.py), resumes from OUT/latest, and repeats: take the
step's batch from the deterministic data order, run each due phase of the task (gradient
accumulation, bf16 autocast, gradient averaging across ranks, clipping, warmup + cosine
learning rate), update the EMA, log, sample and checkpoint. Non-finite steps are skipped
and eventually rolled back; SIGINT/SIGTERM end the run with a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from pixloom.devices import autocast, memory_format
from pixloom.errors import PixloomError
from pixloom.io import checkpoint as checkpoint_io
from pixloom.training import checkpointing
from pixloom.training.config import TrainConfig
from pixloom.training.data_order import iterate_batches
from pixloom.training.distributed import all_true, any_true, average_gradients, shutdown
from pixloom.training.guard import NonFiniteGuard
from pixloom.training.interrupts import StopRequest
from pixloom.training.logs import RunLogger
from pixloom.training.schedule import lr_factor
from pixloom.training.state import (
    Run,
    build_run,
    capture_state,
    check_resumable,
    export_config,
    export_weights,
    inference_ema,
    restore_state,
)
from pixloom.training.task import Phase


@dataclass
class RunResult:
    step: int  # completed optimizer steps
    out: Path  # the run directory
    checkpoint: Path | None  # the last step checkpoint written (None on ranks > 0)
    model: Path | None  # OUT/model, written when the run finished (not when interrupted)
    interrupted: bool  # True when SIGINT/SIGTERM ended the run early
    metrics: dict[str, float] = field(default_factory=dict)  # last step's losses
    images_per_second: float = 0.0  # training throughput, first step excluded
    skipped_steps: int = 0  # non-finite steps skipped
    rollbacks: int = 0  # rollbacks to the last good checkpoint


def _to_device(batch: dict, run: Run) -> dict:
    """Move tensors to the device; images channels_last under bf16."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(run.device, non_blocking=True)
            if value.dim() == 4 and value.is_floating_point():
                value = value.contiguous(memory_format=memory_format(run.precision))
        moved[key] = value
    return moved


def _split(batch: dict, parts: int) -> list[dict]:
    """Split a collated batch into `parts` equal micro-batches along dim 0."""
    if parts == 1:
        return [batch]
    size = len(next(iter(batch.values()))) // parts
    return [
        {key: value[i * size : (i + 1) * size] for key, value in batch.items()}
        for i in range(parts)
    ]


def _run_phase(run: Run, phase: Phase, step: int, micro_batches: list[dict]):
    """Accumulate one phase's gradients and update; (finite, metrics)."""
    optimizer, params = run.optimizers[phase.name], run.trainable[phase.name]
    # Only this phase's parameters collect gradients (a G step must not fill D's grads).
    for others in run.trainable.values():
        for param in others:
            param.requires_grad_(False)
    for param in params:
        param.requires_grad_(True)
    optimizer.zero_grad(set_to_none=True)
    finite, totals = True, {}
    for micro in micro_batches:
        with autocast(run.device, run.precision):
            loss, metrics = run.task.loss(phase.name, micro, step)
        loss = loss.float()  # fp32 loss and gradients scale
        finite = finite and bool(torch.isfinite(loss))
        if finite:
            (loss / len(micro_batches)).backward()
        for key, value in {"loss": loss.item(), **metrics}.items():
            totals[key] = totals.get(key, 0.0) + float(value) / len(micro_batches)
    finite = all_true(finite, run.world, run.device)
    if finite:
        average_gradients(params, run.world)
        max_norm = run.config.grad_clip if run.config.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        finite = bool(torch.isfinite(norm))
        totals["grad_norm"] = float(norm)
    if not finite:
        optimizer.zero_grad(set_to_none=True)
        return False, totals
    factor = lr_factor(
        step,
        warmup_steps=run.config.warmup_steps,
        total_steps=run.config.steps,
        schedule=run.config.lr_schedule,
    )
    for group in optimizer.param_groups:
        group["lr"] = phase.lr * factor
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    totals["lr"] = phase.lr * factor
    return True, totals


def _train_step(run: Run, step: int, batch: dict) -> tuple[bool, dict[str, float]]:
    """Run every phase due at `step`, then the EMA; (finite, metrics)."""
    micro_batches = _split(_to_device(batch, run), run.config.grad_accum)
    metrics: dict[str, float] = {}
    for phase in run.phases:
        if step % phase.interval:
            continue
        finite, phase_metrics = _run_phase(run, phase, step, micro_batches)
        metrics.update({f"{phase.name}/{key}": value for key, value in phase_metrics.items()})
        if not finite:
            return False, metrics
    if run.ema is not None:
        run.ema.update(run.modules[run.task.ema_module], step + 1)
    return True, metrics


class _Trainer:
    """Drives a Run: the step loop, resume, rollback, checkpoints, logs and samples."""

    def __init__(self, run: Run):
        self.run = run
        self.out = Path(run.config.out)
        self.guard = NonFiniteGuard(
            max_skips=run.config.max_nan_skips, max_rollbacks=run.config.max_rollbacks
        )
        self.logger: RunLogger | None = None
        self.last_checkpoint: Path | None = None
        self.saved_step = -1  # step of the checkpoint on disk that matches the run
        self.metrics: dict[str, float] = {}
        self.images, self.seconds = 0, 0.0

    def restore(self, path: Path, *, check: bool) -> None:
        """Load the training state of checkpoint `path` into the run."""
        loaded = checkpoint_io.load_checkpoint(path, training_state=True)
        if check:
            check_resumable(self.run, loaded.config, path)
        restore_state(self.run, loaded.training_state)
        self.last_checkpoint, self.saved_step = path, self.run.step

    def save(self) -> Path | None:
        """Write a step checkpoint (rank 0) after gathering every rank's state."""
        state = capture_state(self.run)
        path = None
        if self.run.world.is_main:
            path = checkpointing.save_step_checkpoint(
                self.out,
                self.run.step,
                config=export_config(self.run),
                weights=export_weights(self.run),
                training_state=state,
                keep_last=self.run.config.keep_last,
            )
            self.last_checkpoint = path
        self.saved_step = self.run.step
        if self.run.world.size > 1:
            dist.barrier()
        return path

    def rollback(self, step: int) -> None:
        """Return to the last good checkpoint after too many non-finite steps."""
        path = checkpointing.latest_checkpoint(self.out)
        if path is None:
            raise PixloomError(
                f"training diverged at step {step} (non-finite loss for more than "
                f"{self.run.config.max_nan_skips} steps) before the first checkpoint; lower "
                "the learning rate or checkpoint_every"
            )
        self.restore(path, check=False)
        self.logger.event(step, f"non-finite steps: rolled back to {path.name}")

    def sample(self) -> None:
        """Write a preview grid from the task, without disturbing the training RNG."""
        modules = dict(self.run.modules)
        if self.run.ema is not None:
            modules[self.run.task.ema_module] = inference_ema(self.run)
        with (
            torch.random.fork_rng(devices=[]),
            torch.no_grad(),
            autocast(self.run.device, self.run.precision),
        ):
            images = self.run.task.sample_images(modules, self.run.step)
        if images:
            from pixloom.training.previews import save_preview

            save_preview(images, self.out / "samples", self.run.step, self.logger)

    def after_step(self, metrics: dict[str, float], seconds: float, first: bool) -> None:
        """Throughput, logs, progress and samples after a completed step."""
        run, step = self.run, self.run.step
        if not first:  # the first step pays for warm-up and lazy initialization
            self.images += run.config.batch_size
            self.seconds += seconds
        self.metrics = metrics
        shown = dict(metrics)
        if self.seconds > 0:
            shown["images_per_second"] = self.images / self.seconds
        self.logger.progress(step, shown)
        if step % run.config.log_every == 0 or step == run.config.steps:
            self.logger.log(step, {**shown, "epoch": run.order.position(step - 1).epoch})
        if run.config.sample_every and step % run.config.sample_every == 0 and run.world.is_main:
            self.sample()

    def loop(self, stop: StopRequest) -> str:
        """Train until the end, an interrupt ("interrupted") or a rollback ("rollback")."""
        run, first = self.run, True
        batches = iterate_batches(
            run.dataset,
            run.order,
            start_step=run.step,
            end_step=run.config.steps,
            rank=run.world.rank,
            world_size=run.world.size,
            num_workers=run.config.num_workers,
        )
        started = time.perf_counter()
        for step, batch in batches:
            finite, metrics = _train_step(run, step, batch)
            if self.guard.record(finite, step) == "rollback":
                return "rollback"
            if not finite:
                self.logger.event(step, "non-finite loss or gradients: step skipped")
            run.step = step + 1
            now = time.perf_counter()
            self.after_step(metrics, now - started, first)
            first = False
            if any_true(stop.requested, run.world, run.device):
                return "interrupted"
            if run.step % run.config.checkpoint_every == 0 and run.step < run.config.steps:
                self.save()
            started = time.perf_counter()
        return "done"

    def fit(self, stop: StopRequest) -> RunResult:
        """Resume if possible, train, and write the final checkpoint and model."""
        run = self.run
        resume_from = checkpointing.latest_checkpoint(self.out) if run.config.resume else None
        if resume_from is not None:
            self.restore(resume_from, check=True)
        self.logger = RunLogger(
            self.out,
            enabled=run.world.is_main,
            tensorboard=run.config.tensorboard,
            progress=run.config.progress,
            total=run.config.steps,
            start=run.step,
        )
        outcome = "rollback"
        while outcome == "rollback":
            outcome = self.loop(stop)
            if outcome == "rollback":
                self.rollback(run.step)
        if self.saved_step != run.step:
            self.save()
        model = None
        if outcome == "done" and run.world.is_main:
            model = checkpointing.save_model(
                self.out, config=export_config(run), weights=export_weights(run)
            )
        if outcome == "interrupted":
            self.logger.event(run.step, f"stopped by {stop.signal_name}; checkpoint written")
        return RunResult(
            step=run.step,
            out=self.out,
            checkpoint=self.last_checkpoint if run.world.is_main else None,
            model=model,
            interrupted=outcome == "interrupted",
            metrics=self.metrics,
            images_per_second=self.images / self.seconds if self.seconds else 0.0,
            skipped_steps=self.guard.skipped,
            rollbacks=self.guard.rollbacks,
        )


def train(config: TrainConfig, *, dataset: Any | None = None) -> RunResult:
    """Train `config.task` on `config.data` (or `dataset`, a pixloom ImageDataset)."""
    run = build_run(config, dataset)
    trainer = _Trainer(run)
    try:
        with StopRequest() as stop:
            return trainer.fit(stop)
    finally:
        if trainer.logger is not None:
            trainer.logger.close()
        with contextlib.suppress(Exception):
            shutdown(run.world)
