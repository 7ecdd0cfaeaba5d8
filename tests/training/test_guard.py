"""Non-finite losses: skip, roll back, stop loudly, never checkpoint NaN (RELIABILITY.md T4)."""

from __future__ import annotations

import pytest
import torch
from toy import ToyDataset, toy_config

from pixloom.errors import PixloomError
from pixloom.io import checkpoint as checkpoint_io
from pixloom.training import checkpointing
from pixloom.training.engine import train
from pixloom.training.tasks.classifier import ClassifierTask

ORIGINAL_LOSS = ClassifierTask.loss


def _nan_on(monkeypatch, bad_steps, snapshots=None):
    def loss(self, phase, batch, step):
        if snapshots is not None:
            snapshots[step] = [p.detach().clone() for p in self.classifier.parameters()]
        value, metrics = ORIGINAL_LOSS(self, phase, batch, step)
        return (value * float("nan") if bad_steps(step) else value), metrics

    monkeypatch.setattr(ClassifierTask, "loss", loss)


def test_single_nan_step_is_skipped_without_update(tmp_path, monkeypatch):
    snapshots: dict = {}
    _nan_on(monkeypatch, lambda step: step == 3, snapshots)
    result = train(toy_config(tmp_path), dataset=ToyDataset())
    assert result.step == 6 and result.skipped_steps == 1 and result.rollbacks == 0
    assert all(torch.equal(a, b) for a, b in zip(snapshots[3], snapshots[4]))  # no update
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[2], snapshots[3]))
    assert "step skipped" in (tmp_path / "log.jsonl").read_text()
    assert checkpointing.tensors_finite(checkpoint_io.load_checkpoint(result.model).weights)


def test_repeated_nan_rolls_back_then_stops_with_clear_error(tmp_path, monkeypatch):
    _nan_on(monkeypatch, lambda step: step >= 3)
    config = toy_config(tmp_path, steps=20, max_nan_skips=1, max_rollbacks=2)
    with pytest.raises(PixloomError, match=r"diverged.*after 2 rollback\(s\)"):
        train(config, dataset=ToyDataset())
    log = (tmp_path / "log.jsonl").read_text()
    assert log.count("rolled back to step-0000004") == 2
    for path in (tmp_path / "checkpoints").iterdir():  # T4: no NaN checkpoint was written
        saved = checkpoint_io.load_checkpoint(path, training_state=True)
        assert checkpointing.tensors_finite(saved.weights)
        assert checkpointing.tensors_finite(saved.training_state["modules"])
    assert not (tmp_path / "model").exists()


def test_divergence_before_first_checkpoint_is_explained(tmp_path, monkeypatch):
    _nan_on(monkeypatch, lambda step: True)
    with pytest.raises(PixloomError, match="before the first checkpoint"):
        train(toy_config(tmp_path, max_nan_skips=1, checkpoint_every=100), dataset=ToyDataset())


def test_refuses_to_write_nan_weights(tmp_path):
    weights = {"w": torch.tensor([1.0, float("nan")])}
    with pytest.raises(PixloomError, match="NaN"):
        checkpointing.save_model(tmp_path, config={"family": "x", "model": {}}, weights=weights)
    assert not (tmp_path / "model").exists()
