"""Run-directory checkpoints: OUT/checkpoints/step-XXXXXXX, the OUT/latest pointer, OUT/model.

Order of a save (RELIABILITY.md T1, T6, T7): the checkpoint directory is written atomically
by pixloom.io.checkpoint; only then does the "latest" pointer move, and only after that are
old checkpoints removed. A failed write leaves the previous checkpoint and the pointer as
they were. Weights containing NaN/inf are never written.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixloom.errors import CheckpointError
from pixloom.io import checkpoint as checkpoint_io

LATEST = "latest"
_STEP_DIR = re.compile(r"^step-(\d{7,})$")


def step_dir(out: Path, step: int) -> Path:
    """Directory of the checkpoint taken after `step` completed steps."""
    return out / "checkpoints" / f"step-{step:07d}"


def tensors_finite(value: Any) -> bool:
    """True when every floating tensor nested in `value` is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, dict):
        return all(tensors_finite(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(tensors_finite(item) for item in value)
    return True


def cpu_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors wants contiguous, unshared storage)."""
    return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in state.items()}


def _step_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete step checkpoints under OUT/checkpoints, oldest first."""
    root = out / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and path.is_dir() and checkpoint_io.is_complete(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(out: Path) -> Path | None:
    """The checkpoint OUT/latest points to, else the newest complete one, else None."""
    pointer = out / LATEST
    if pointer.is_file():
        target = out / pointer.read_text().strip()
        if target.is_dir() and checkpoint_io.is_complete(target):
            return target
    complete = _step_checkpoints(out)
    return complete[-1][1] if complete else None


def resolve_trained(name_or_path: str | Path) -> Path:
    """The checkpoint meant by a checkpoint directory, a shipped name, a run directory OUT or
    OUT/latest: OUT/model when the run finished, else the checkpoint OUT/latest points to."""
    from pixloom.models.loading import resolve_checkpoint

    path = Path(name_or_path)
    run = path.parent if path.name == LATEST and path.is_file() else path
    if run.is_dir() and not checkpoint_io.is_complete(run):
        if checkpoint_io.is_complete(run / "model"):
            return run / "model"
        found = latest_checkpoint(run)
        if found is not None:
            return found
    return resolve_checkpoint(name_or_path)


def load_trained(name_or_path: str | Path, field: str, families: list[str] | tuple[str, ...]):
    """(model in eval mode, Checkpoint) of the trained model that task_options.`field` names
    (resolve_trained), refused by that field unless its family is one of `families`."""
    from pixloom.errors import require
    from pixloom.models.loading import load_model

    try:
        model, checkpoint = load_model(resolve_trained(name_or_path))
    except CheckpointError as error:
        raise CheckpointError(f"task_options.{field}: {error}") from error
    require(checkpoint.family in families, f"task_options.{field}", name_or_path,
            f"a {' or '.join(map(repr, families))} checkpoint, "
            f"not family {checkpoint.family!r}")  # fmt: skip
    return model, checkpoint


def save_step_checkpoint(
    out: Path,
    step: int,
    *,
    config: dict,
    weights: dict[str, torch.Tensor],
    training_state: dict,
    keep_last: int,
) -> Path:
    """Write step `step`'s checkpoint, then move the pointer, then drop old checkpoints."""
    path = step_dir(out, step)
    if not (tensors_finite(weights) and tensors_finite(training_state.get("modules"))):
        raise CheckpointError(f"refusing to write {path}: the weights contain NaN or inf")
    previous = latest_checkpoint(out)
    try:
        checkpoint_io.save_checkpoint(
            path, config=config, weights=cpu_weights(weights), training_state=training_state
        )
        checkpoint_io.write_text_atomic(out / LATEST, f"{path.relative_to(out).as_posix()}\n")
    except (OSError, CheckpointError) as error:  # the io layer turns OSError into CheckpointError
        problem = (
            str(error)
            if isinstance(error, CheckpointError)
            else f"could not write checkpoint {path}: {error}"
        )
        kept = f"{previous} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(
            f"{problem}; {kept} and {out / LATEST} is unchanged; free disk space and rerun "
            "the same command to resume"
        ) from error
    for _, old in _step_checkpoints(out)[:-keep_last]:
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    return path


def save_model(out: Path, *, config: dict, weights: dict[str, torch.Tensor]) -> Path:
    """Write the inference checkpoint OUT/model (config + EMA weights, no training state)."""
    path = out / "model"
    if not tensors_finite(weights):
        raise CheckpointError(f"refusing to write {path}: the weights contain NaN or inf")
    try:
        return checkpoint_io.save_checkpoint(path, config=config, weights=cpu_weights(weights))
    except OSError as error:
        raise CheckpointError(f"could not write the model {path}: {error}") from error


def capture_rng() -> dict[str, Any]:
    """The torch, CUDA, numpy and python global RNG states."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": list(np.random.get_state()),
        "python": list(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore states captured by capture_rng()."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    np.random.set_state(tuple(state["numpy"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
