"""Resume and checkpoint-order guarantees (RELIABILITY.md T2, T3, T6, T7)."""

from __future__ import annotations

import errno
import os
import signal

import numpy as np
import pytest
import torch
from toy import ToyDataset, toy_config

from pixloom.errors import CheckpointError
from pixloom.io import checkpoint as checkpoint_io
from pixloom.training import checkpointing
from pixloom.training.engine import train
from pixloom.training.task import register_task
from pixloom.training.tasks.classifier import ClassifierTask, make_classifier_task

ORIGINAL_LOSS = ClassifierTask.loss
OPTIONS = {"width": 8, "depth": 2, "lr": 1e-2, "augment": True, "shift": 1}


class CountingTask(ClassifierTask):
    """The classifier task plus task state (like ADA strength) that changes every step."""

    def __init__(self, options, dataset_info):
        super().__init__(options, dataset_info)
        self.calls, self.strength = 0, torch.zeros(2)

    def loss(self, phase, batch, step):
        self.calls += 1
        self.strength += torch.rand(2)
        return super().loss(phase, batch, step)

    def state_dict(self):
        return {"calls": self.calls, "strength": self.strength.clone()}

    def load_state_dict(self, state):
        self.calls, self.strength = state["calls"], state["strength"].clone()


@register_task("test-counting")
def _make_counting(options, dataset_info):
    task = make_classifier_task(options, dataset_info)
    return CountingTask(task.options, dataset_info)


def _interrupt_at(monkeypatch, stop_at: int | None, seen: list) -> None:
    """Record the data order; send SIGTERM to ourselves during step `stop_at`."""

    def loss(self, phase, batch, step):
        seen.append((step, batch["index"].tolist()))
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return ORIGINAL_LOSS(self, phase, batch, step)

    monkeypatch.setattr(ClassifierTask, "loss", loss)


def _assert_same_tree(a, b, where="state"):
    if isinstance(a, (torch.Tensor, np.ndarray)):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


def test_interrupt_and_resume_is_bit_identical(tmp_path, monkeypatch):
    """T2/T5: N steps straight == k steps, SIGTERM, resume to N (weights, EMA, optim, RNG, data)."""
    config = dict(task="test-counting", task_options=OPTIONS, steps=7, grad_accum=2)
    seen_full: list = []
    _interrupt_at(monkeypatch, None, seen_full)
    full = train(toy_config(tmp_path / "full", **config), dataset=ToyDataset(size=20))
    rng_full = torch.get_rng_state()

    seen_split: list = []
    _interrupt_at(monkeypatch, 2, seen_split)
    first = train(toy_config(tmp_path / "split", **config), dataset=ToyDataset(size=20))
    assert first.interrupted and first.step == 3 and first.model is None
    assert checkpointing.latest_checkpoint(tmp_path / "split").name == "step-0000003"
    _interrupt_at(monkeypatch, None, seen_split)
    resumed = train(toy_config(tmp_path / "split", **config), dataset=ToyDataset(size=20))
    assert not resumed.interrupted and resumed.step == 7

    assert seen_split == seen_full  # data order, micro-batch by micro-batch
    assert torch.equal(torch.get_rng_state(), rng_full)
    a = checkpoint_io.load_checkpoint(full.checkpoint, training_state=True)
    b = checkpoint_io.load_checkpoint(resumed.checkpoint, training_state=True)
    _assert_same_tree(a.weights, b.weights, "ema weights")
    for key in ("step", "modules", "optimizers", "schedule", "rng", "data", "task", "ema"):
        _assert_same_tree(a.training_state[key], b.training_state[key], key)
    assert b.training_state["task"]["calls"] == 14  # T3: task state restored (7 steps x 2)
    assert b.training_state["data"]["epoch"] == 3  # 20 images, batch 8: 2 steps per epoch


def test_resume_refuses_a_different_run(tmp_path):
    """Resuming into OUT with another batch size names the field instead of mixing runs."""
    train(toy_config(tmp_path, steps=2), dataset=ToyDataset())
    with pytest.raises(Exception, match="batch_size"):
        train(toy_config(tmp_path, steps=4, batch_size=4), dataset=ToyDataset())


def test_pointer_moves_after_completion_and_old_ones_are_removed(tmp_path, monkeypatch):
    """T6: the latest pointer names only complete checkpoints; cleanup follows the pointer."""
    events = []
    write_pointer = checkpoint_io.write_text_atomic

    def pointer(path, text):
        target = tmp_path / text.strip()
        events.append(("pointer", target.name, checkpoint_io.is_complete(target, verify=True)))
        write_pointer(path, text)

    monkeypatch.setattr(checkpoint_io, "write_text_atomic", pointer)
    result = train(toy_config(tmp_path, steps=8, keep_last=2), dataset=ToyDataset())
    names = [f"step-{s:07d}" for s in (2, 4, 6, 8)]
    assert events == [("pointer", name, True) for name in names]
    remaining = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert remaining == names[-2:]
    assert (tmp_path / "latest").read_text().strip() == "checkpoints/step-0000008"
    model = checkpoint_io.load_checkpoint(result.model)
    assert model.config["family"] == "classifier" and "training" in model.config


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    """T7: ENOSPC while writing step 4 is reported; step 2 and the pointer stay as they were."""
    real_fsync = os.fsync

    def fsync(descriptor):
        if "step-0000004" in os.readlink(f"/proc/self/fd/{descriptor}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(CheckpointError, match="No space left on device") as raised:
        train(toy_config(tmp_path, steps=6), dataset=ToyDataset())
    assert "step-0000002 is intact" in str(raised.value)
    assert (tmp_path / "latest").read_text().strip() == "checkpoints/step-0000002"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000002"]
    checkpoint_io.load_checkpoint(tmp_path / "checkpoints/step-0000002", training_state=True)
