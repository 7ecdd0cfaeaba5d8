"""TrainConfig: every knob of a training run, one name each (CLI flag, YAML preset, JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pixloom.errors import require


def _meta(help_text: str, **extra: Any) -> dict[str, Any]:
    return {"help": help_text, **extra}


@dataclass
class TrainConfig:
    # What to train on.
    task: str = field(default="classifier", metadata=_meta("training task (pixloom.training)"))
    data: str = field(default="digits", metadata=_meta("dataset spec: shapes, digits, folder:PATH"))
    resolution: int = field(default=32, metadata=_meta("image side length in pixels"))
    # Dataset options, validated by the dataset's own options dataclass (pixloom.data).
    data_options: dict[str, Any] = field(
        default_factory=dict, metadata=_meta("dataset options", cli=False)
    )
    # Task-specific options, validated by the task's own options dataclass.
    task_options: dict[str, Any] = field(
        default_factory=dict, metadata=_meta("task options", cli=False)
    )
    # Optimization.
    steps: int = field(default=1000, metadata=_meta("total optimizer steps of the run"))
    batch_size: int = field(default=64, metadata=_meta("global images per optimizer step"))
    grad_accum: int = field(default=1, metadata=_meta("micro-batches per step (memory saver)"))
    warmup_steps: int = field(default=0, metadata=_meta("linear learning-rate warmup steps"))
    lr_schedule: Literal["cosine", "constant"] = field(
        default="cosine", metadata=_meta("learning-rate decay after warmup")
    )
    grad_clip: float = field(default=1.0, metadata=_meta("max global grad norm; 0 disables"))
    ema_decay: float = field(default=0.999, metadata=_meta("EMA decay of the exported weights"))
    ema_warmup: int = field(default=100, metadata=_meta("steps over which EMA decay ramps up"))
    # Where and how to run.
    precision: Literal["auto", "fp32", "bf16"] = field(
        default="auto", metadata=_meta("bf16 autocast on capable CPUs/GPUs under auto")
    )
    device: str = field(default="auto", metadata=_meta("auto, cpu, cuda or cuda:N"))
    seed: int = field(default=0, metadata=_meta("seed of initialization, data order and RNG"))
    num_workers: int = field(default=0, metadata=_meta("data-loading worker processes"))
    compile: bool = field(
        default=False, metadata=_meta("torch.compile the task's training network (token-lm)")
    )
    # Outputs.
    out: str = field(default="runs/train", metadata=_meta("run directory", short="-o"))
    checkpoint_every: int = field(default=500, metadata=_meta("steps between checkpoints"))
    keep_last: int = field(default=3, metadata=_meta("step checkpoints kept on disk"))
    sample_every: int = field(default=0, metadata=_meta("steps between sample grids; 0: never"))
    log_every: int = field(default=10, metadata=_meta("steps between log lines"))
    tensorboard: bool = field(default=True, metadata=_meta("also log to TensorBoard"))
    progress: bool = field(default=True, metadata=_meta("show a progress bar"))
    # Failure handling.
    max_nan_skips: int = field(
        default=5, metadata=_meta("consecutive non-finite steps skipped before a rollback")
    )
    max_rollbacks: int = field(
        default=3, metadata=_meta("rollbacks to the last good checkpoint before giving up")
    )
    resume: bool = field(default=True, metadata=_meta("resume from OUT/latest when present"))

    def __post_init__(self) -> None:
        require(bool(self.task), "task", self.task, "a task name (see pixloom.training.task)")
        require(bool(self.data), "data", self.data, "a dataset spec such as 'digits'")
        require(self.resolution >= 4, "resolution", self.resolution, "an integer >= 4")
        require(isinstance(self.task_options, dict), "task_options", self.task_options, "a dict")
        require(self.steps >= 1, "steps", self.steps, "an integer >= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        require(self.grad_accum >= 1, "grad_accum", self.grad_accum, "an integer >= 1")
        require(
            self.batch_size % self.grad_accum == 0,
            "grad_accum",
            self.grad_accum,
            f"a divisor of batch_size={self.batch_size}",
        )
        require(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "an integer >= 0")
        require(self.grad_clip >= 0, "grad_clip", self.grad_clip, "a norm >= 0 (0 disables)")
        require(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "a decay in [0, 1)")
        require(self.ema_warmup >= 0, "ema_warmup", self.ema_warmup, "an integer >= 0")
        require(self.num_workers >= 0, "num_workers", self.num_workers, "an integer >= 0")
        require(bool(self.out), "out", self.out, "a run directory path")
        require(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, ">= 1")
        require(self.keep_last >= 1, "keep_last", self.keep_last, "an integer >= 1")
        require(self.sample_every >= 0, "sample_every", self.sample_every, ">= 0 (0: never)")
        require(self.log_every >= 1, "log_every", self.log_every, "an integer >= 1")
        require(self.max_nan_skips >= 0, "max_nan_skips", self.max_nan_skips, ">= 0")
        require(self.max_rollbacks >= 0, "max_rollbacks", self.max_rollbacks, ">= 0")
