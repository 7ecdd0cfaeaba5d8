"""Checkpoint directories: exact round trips, manifest checks, atomic replace (T1, T7)."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pixloom.errors import CheckpointError, InvalidValue
from pixloom.io import checkpoint as checkpoint_module
from pixloom.io.checkpoint import is_complete, load_checkpoint, save_checkpoint, write_text_atomic

CONFIG = {"family": "tiny", "model": {"width": 4}, "provenance": {"recipe": "test"}}


def _weights():
    return {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.zeros(4)}


def _training_state():
    return {
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 3)}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.99), "params": [0, 1], "foreach": None}],
        },
        "step": 12,
        "huge_int": 2**70,
        "floats": [0.1, -0.0, float("inf"), float("nan")],
        "flags": (True, False, None),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.RandomState(3).get_state()},
        "tensors": [
            torch.randn(2, 3).to(torch.bfloat16),
            torch.arange(6, dtype=torch.int64).reshape(2, 3).t(),  # non-contiguous
            torch.tensor(7),
            torch.empty(0, 5),
        ],
        "nested": [[{"a": [1, [2, (3,)]]}]],
        "label": "ema",
        "numpy_scalars": [np.int64(5), np.float64(0.25), np.bool_(True), np.float32(1.5)],
        "numpy_arrays": [np.float16([1.5, 2.0]), np.array(3, dtype=np.uint8)],
    }


def _assert_same(left, right, where="state"):
    assert type(left) is type(right), where
    if isinstance(left, torch.Tensor):
        assert left.dtype == right.dtype and left.shape == right.shape, where
        as_bytes = [t.contiguous().view(-1).view(torch.uint8) for t in (left, right)]
        assert torch.equal(*as_bytes), where  # bit-exact, nan payloads included
    elif isinstance(left, np.ndarray):
        assert left.dtype == right.dtype and np.array_equal(left, right), where
    elif isinstance(left, dict):
        assert list(left) == list(right), where
        for key in left:
            _assert_same(left[key], right[key], f"{where}[{key!r}]")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(left, float) and math.isnan(left):
        assert math.isnan(right), where
    elif isinstance(left, float):
        assert left.hex() == right.hex(), where
    else:
        assert left == right, where


def test_round_trip_is_bit_exact(tmp_path):
    weights, state = _weights(), _training_state()
    weights["half"] = torch.randn(3).to(torch.bfloat16)
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights=weights, training_state=state)
    loaded = load_checkpoint(path, training_state=True)
    _assert_same(dict(sorted(weights.items())), dict(sorted(loaded.weights.items())), "weights")
    _assert_same(state, loaded.training_state)
    assert loaded.family == "tiny" and loaded.model_config == {"width": 4}
    assert loaded.config["format"] == "pixloom-checkpoint" and loaded.config["format_version"] == 1
    assert loaded.config["provenance"] == {"recipe": "test"} and "pixloom_version" in loaded.config
    assert loaded.sha256 == loaded.manifest["files"]["model.safetensors"]["sha256"]
    assert len(loaded.sha256) == 64 and loaded.training_state is not None
    assert load_checkpoint(path).training_state is None


def test_tied_weights_are_saved(tmp_path):
    shared = torch.randn(3, 3)
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights={"a": shared, "b": shared})
    loaded = load_checkpoint(path).weights
    assert torch.equal(loaded["a"], shared) and torch.equal(loaded["b"], shared)


def test_inference_checkpoint_has_no_training_state(tmp_path):
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    assert not (path / "training").exists()
    with pytest.raises(CheckpointError, match="no training state"):
        load_checkpoint(path, training_state=True)


@pytest.mark.parametrize(
    ("config", "field"),
    [({"model": {}}, "config.family"), ({"family": "x", "model": 3}, "config.model")],
)
def test_save_refuses_bad_config(tmp_path, config, field):
    with pytest.raises(InvalidValue) as error:
        save_checkpoint(tmp_path / "ck", config=config, weights={})
    assert error.value.field == field and not (tmp_path / "ck").exists()


def test_save_refuses_unsupported_state_naming_the_path(tmp_path):
    with pytest.raises(InvalidValue, match=r"training_state\['opt'\]\[0\]"):
        save_checkpoint(
            tmp_path / "ck", config=CONFIG, weights={}, training_state={"opt": [object()]}
        )
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone too


def test_missing_manifest_means_no_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    (path / "manifest.json").unlink()
    assert not is_complete(path)
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_tampered_file_is_refused(tmp_path, name):
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    data = bytearray((path / name).read_bytes())
    data[-3] ^= 0x01  # same size, different content
    (path / name).write_bytes(bytes(data))
    assert is_complete(path) and not is_complete(path, verify=True)
    with pytest.raises(CheckpointError, match=f"{name} does not match its sha256"):
        load_checkpoint(path)
    load_checkpoint(path, verify=False) if name == "model.safetensors" else None


def test_truncated_file_is_refused_even_without_hashing(tmp_path):
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    with open(path / "model.safetensors", "r+b") as file:
        file.truncate(100)
    assert not is_complete(path)
    with pytest.raises(CheckpointError, match="manifest says"):
        load_checkpoint(path, verify=False)


def test_manifest_with_unsafe_names_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["../outside"] = {"sha256": "0" * 64, "size": 1}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="unsafe file name"):
        load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = 99
    text = json.dumps(config)
    (path / "config.json").write_text(text)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["config.json"] = {
        "sha256": checkpoint_module._sha256(path / "config.json"),
        "size": len(text),
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="upgrade pixloom"):
        load_checkpoint(path)


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_existing_checkpoint(tmp_path, monkeypatch, exchange):
    if not exchange:  # the two-rename fallback used where renameat2 is missing
        monkeypatch.setattr(checkpoint_module, "_exchange", lambda first, second: False)
    target = tmp_path / "ck"
    save_checkpoint(target, config=CONFIG, weights={"w": torch.zeros(2)}, training_state={"a": 1})
    save_checkpoint(target, config=CONFIG, weights={"w": torch.ones(2)})
    loaded = load_checkpoint(target)
    assert torch.equal(loaded.weights["w"], torch.ones(2))
    assert not (target / "training").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_refuses_to_replace_a_foreign_directory(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not a pixloom checkpoint"):
        save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    assert (tmp_path / "ck" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    target = save_checkpoint(tmp_path / "ck", config=CONFIG, weights={"w": torch.zeros(2)})

    def no_space(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint_module, "_sha256", no_space)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(target, config=CONFIG, weights={"w": torch.ones(2)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(target).weights["w"], torch.zeros(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_stale_temporaries_of_dead_saves_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".ck.tmp-{dead.stdout.strip()}-abcd1234"
    stale.mkdir()
    save_checkpoint(tmp_path / "ck", config=CONFIG, weights=_weights())
    assert not stale.exists()


_SAVER = """
import sys, torch
from pixloom.io.checkpoint import save_checkpoint
print("ready", flush=True)
step = 0
while True:
    step += 1
    weights = {"w": torch.full((64, 1024), float(step))}
    save_checkpoint(sys.argv[1], config={"family": "tiny", "model": {}}, weights=weights,
                    training_state={"step": step, "m": torch.full((64, 1024), float(step))})
"""


def test_sigkill_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    """T1: kill -9 a process that saves in a loop; the path always holds a whole checkpoint."""
    target = tmp_path / "ck"
    save_checkpoint(target, config=CONFIG, weights={"w": torch.zeros(64, 1024)})
    process = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        for _ in range(3):
            time.sleep(0.15)
            loaded = load_checkpoint(target)  # concurrent reader never sees a torn state
            assert loaded.weights["w"].unique().numel() == 1
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    loaded = load_checkpoint(target)
    assert loaded.weights["w"].unique().numel() == 1


def test_write_text_atomic(tmp_path):
    pointer = tmp_path / "latest"
    write_text_atomic(pointer, "step-10\n")
    write_text_atomic(pointer, "step-20\n")
    assert pointer.read_text() == "step-20\n"
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]


def test_symlinked_checkpoint_path_is_kept(tmp_path):
    real = save_checkpoint(tmp_path / "real", config=CONFIG, weights={"w": torch.zeros(1)})
    (tmp_path / "link").symlink_to(real)
    save_checkpoint(tmp_path / "link", config=CONFIG, weights={"w": torch.ones(1)})
    assert (tmp_path / "link").is_symlink()
    assert torch.equal(load_checkpoint(tmp_path / "real").weights["w"], torch.ones(1))


def test_fallback_restores_previous_when_second_rename_fails(tmp_path, monkeypatch):
    target = save_checkpoint(tmp_path / "ck", config=CONFIG, weights={"w": torch.zeros(1)})
    monkeypatch.setattr(checkpoint_module, "_exchange", lambda first, second: False)
    real_rename = os.rename

    def failing_rename(source, destination):
        if ".tmp-" in str(source):
            raise OSError(errno.EIO, "I/O error")
        real_rename(source, destination)

    monkeypatch.setattr(checkpoint_module.os, "rename", failing_rename)
    with pytest.raises(CheckpointError, match="I/O error"):
        save_checkpoint(target, config=CONFIG, weights={"w": torch.ones(1)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(target).weights["w"], torch.zeros(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_load_starts_over_when_a_writer_replaces_the_checkpoint_meanwhile(tmp_path, monkeypatch):
    target = save_checkpoint(tmp_path / "ck", config=CONFIG, weights={"w": torch.zeros(1)})
    real_load, calls = checkpoint_module._load_files, []

    def racing(*args):
        calls.append(1)
        if len(calls) == 1:  # a newer save lands between our manifest read and the files
            save_checkpoint(target, config=CONFIG, weights={"w": torch.ones(1)})
            raise CheckpointError("sha256 mismatch")
        return real_load(*args)

    monkeypatch.setattr(checkpoint_module, "_load_files", racing)
    assert torch.equal(load_checkpoint(target).weights["w"], torch.ones(1)) and len(calls) == 2


def test_a_real_error_is_not_retried(tmp_path, monkeypatch):
    target = save_checkpoint(tmp_path / "ck", config=CONFIG, weights={"w": torch.zeros(1)})
    calls = []

    def broken(*args):
        calls.append(1)
        raise CheckpointError("sha256 mismatch")

    monkeypatch.setattr(checkpoint_module, "_load_files", broken)
    with pytest.raises(CheckpointError):
        load_checkpoint(target)
    assert len(calls) == 1
