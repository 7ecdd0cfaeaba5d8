"""The library's front door: load a model by name or path; the CLI and server call these.

`load` resolves a shipped name or a checkpoint directory, builds the network from the
checkpoint's own config (never from flags), loads its weights strictly and hands back the
pipeline registered for the family, or the bare network when no pipeline exists yet.
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path
from typing import Any

import torch.nn as nn

from pixloom.errors import CheckpointError, InvalidValue, PixloomError

# family -> "module:function"; the factory is called as factory(model, checkpoint, device=...)
# with the network already loaded and in eval mode, and returns the ready pipeline.
PIPELINES: dict[str, str] = {}

_SHIPPED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def shipped_models() -> list[str]:
    """Names of the checkpoints shipped inside the package (usable as `load(name)`)."""
    from pixloom.io.checkpoint import MANIFEST_FILE
    from pixloom.weights import weights_root

    root = weights_root()
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and (entry / MANIFEST_FILE).exists()
    )


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """The checkpoint directory meant by a shipped name or a path, or a CheckpointError."""
    from pixloom.weights import weights_root

    path = Path(name_or_path)
    if path.is_dir():
        return path
    text = str(name_or_path)
    if _SHIPPED_NAME.fullmatch(text) and (weights_root() / text).is_dir():
        return weights_root() / text
    shipped = ", ".join(shipped_models()) or "none yet"
    raise CheckpointError(
        f"no model named or at {text!r}: give a checkpoint directory or a shipped model "
        f"name ({shipped})"
    )


def _check_weights_match(model: nn.Module, weights: dict, where: Path) -> None:
    """Refuse weights that are missing, unexpected or shaped unlike the model's tensors (C6)."""
    expected = model.state_dict()
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    wrong = [
        f"{name} {tuple(weights[name].shape)} != model {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in weights and weights[name].shape != tensor.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensor(s) {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"unexpected tensor(s) {', '.join(unexpected[:5])}")
    if wrong:
        problems.append(f"wrong shape: {'; '.join(wrong[:5])}")
    if problems:
        raise CheckpointError(
            f"{where}/model.safetensors does not match the model its config.json describes: "
            + "; ".join(problems)
        )


def load_model(directory: str | Path, *, verify: bool = True) -> tuple[nn.Module, Any]:
    """Build the network from a checkpoint's config and load its weights strictly (eval mode).

    Returns (model on CPU, Checkpoint). Config fields are validated by the family's config
    dataclass (InvalidValue names the field); weights must match the model exactly.
    """
    from pixloom.io.checkpoint import load_checkpoint
    from pixloom.models.registry import build_model

    checkpoint = load_checkpoint(directory, verify=verify)
    try:
        model = build_model(checkpoint.family, checkpoint.model_config)
    except PixloomError:
        raise
    except (ValueError, TypeError, RuntimeError) as error:  # e.g. an impossible shape
        raise CheckpointError(
            f"{checkpoint.path}/config.json: cannot build family {checkpoint.family!r} "
            f"from its model config: {error}"
        ) from error
    _check_weights_match(model, checkpoint.weights, checkpoint.path)
    model.load_state_dict(checkpoint.weights, strict=True)
    return model.eval(), checkpoint


def _pipeline_factory(family: str) -> Any | None:
    spec = PIPELINES.get(family)
    if spec is None:
        return None
    module_name, _, function_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def load(name_or_path: str | Path, *, device: str = "auto") -> Any:
    """Load a shipped model by name or a checkpoint directory; return its ready pipeline.

    Without a pipeline registered for the family, returns the network in eval mode on
    `device` with the Checkpoint attached as `.pixloom_checkpoint`.
    """
    from pixloom.devices import resolve_device

    if not isinstance(name_or_path, (str, Path)):
        raise InvalidValue("name_or_path", name_or_path, "a shipped model name or a directory")
    resolved_device = resolve_device(device)
    model, checkpoint = load_model(resolve_checkpoint(name_or_path))
    model = model.to(resolved_device)
    factory = _pipeline_factory(checkpoint.family)
    if factory is not None:
        return factory(model, checkpoint, device=resolved_device)
    model.pixloom_checkpoint = checkpoint
    return model


def _describe_checkpoint(path: Path, verify: bool) -> dict[str, Any]:
    from pixloom.io.checkpoint import WEIGHTS_FILE, load_checkpoint
    from pixloom.io.safe_files import read_safetensors_header

    checkpoint = load_checkpoint(path, weights=False, verify=verify)
    header = read_safetensors_header(path / WEIGHTS_FILE)
    parameters = sum(
        math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__"
    )
    return {
        "kind": "checkpoint",
        "path": str(path),
        "family": checkpoint.family,
        "sha256": checkpoint.sha256,
        "verified": verify,
        "tensors": len(header) - ("__metadata__" in header),
        "parameters": parameters,
        "has_training_state": "training/state.json" in checkpoint.manifest["files"],
        "files": {name: entry["size"] for name, entry in checkpoint.manifest["files"].items()},
        "provenance": checkpoint.config.get("provenance"),
        "config": checkpoint.config,
    }


def _describe_file(path: Path) -> dict[str, Any]:
    from pixloom.io.safe_files import detect_format, read_safetensors_header

    with open(path, "rb") as file:
        is_png = file.read(8) == b"\x89PNG\r\n\x1a\n"
    if is_png:
        from pixloom.io.images import read_png_metadata

        return {"kind": "png", "path": str(path), "metadata": read_png_metadata(path)}
    kind = detect_format(path)
    result: dict[str, Any] = {"kind": "weights", "path": str(path), "format": kind}
    result["size"] = path.stat().st_size
    if kind == "safetensors":
        header = read_safetensors_header(path)
        result["metadata"] = header.pop("__metadata__", {})
        result["tensors"] = {
            name: {"dtype": entry["dtype"], "shape": entry["shape"]}
            for name, entry in header.items()
        }
    return result


def describe(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """What a checkpoint directory, a pixloom PNG or a weights file holds, JSON-ready.

    Reads headers and metadata only, never unpickles; a checkpoint's files are checked
    against its manifest (sha256 too unless verify=False).
    """
    path = Path(path)
    if path.is_dir():
        return _describe_checkpoint(path, verify)
    if path.is_file():
        return _describe_file(path)
    raise InvalidValue("path", str(path), "an existing checkpoint directory, PNG or weights file")
