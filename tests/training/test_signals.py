"""Process-level failures: SIGKILL during a save (T1) and SIGTERM during training (T5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from toy import ToyDataset, toy_config

from pixloom.io import checkpoint as checkpoint_io
from pixloom.training import checkpointing
from pixloom.training.engine import train

CHILD = Path(__file__).resolve().parent / "child_train.py"


def _start(out: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(out), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _wait_for(condition, child: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            raise AssertionError(f"child exited early: {child.communicate()}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("timed out waiting for the child")
        time.sleep(0.02)


def test_sigkill_during_save_keeps_previous_checkpoint(tmp_path):
    """T1: kill -9 while step 4 is being written; step 2 stays loadable and resumable."""
    child = _start(tmp_path, "slow-save")
    checkpoints = tmp_path / "checkpoints"
    _wait_for(lambda: (tmp_path / "latest").exists(), child)
    _wait_for(lambda: any(p.name.startswith(".step-0000004") for p in checkpoints.iterdir()), child)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    latest = checkpointing.latest_checkpoint(tmp_path)
    assert latest.name == "step-0000002"
    assert checkpoint_io.is_complete(latest, verify=True)
    checkpoint_io.load_checkpoint(latest, training_state=True)
    resumed = train(toy_config(tmp_path, steps=4, checkpoint_every=2), dataset=ToyDataset())
    assert resumed.step == 4 and not resumed.interrupted
    assert not any(p.name.startswith(".") for p in checkpoints.iterdir())  # temp dir cleaned


def test_sigterm_writes_checkpoint_and_exits_zero(tmp_path):
    """T5: SIGTERM finishes the step, writes a checkpoint and exits 0."""
    child = _start(tmp_path, "long")
    log = tmp_path / "log.jsonl"
    _wait_for(lambda: log.exists() and log.read_text().count("\n") >= 3, child)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert "interrupted=True" in stdout
    step = int(stdout.split("step=")[1])
    latest = checkpointing.latest_checkpoint(tmp_path)
    assert latest.name == f"step-{step:07d}"
    saved = checkpoint_io.load_checkpoint(latest, training_state=True)
    assert saved.training_state["step"] == step >= 3
