"""The library's front door: load a model by name or path; the CLI and server call these.

`load` resolves a shipped name or a checkpoint directory, builds the network from the
checkpoint's own config (never from flags), loads its weights strictly and hands back the
pipeline registered for the family, or the bare network when no pipeline exists yet.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from pixloom.errors import InvalidValue
from pixloom.models.loading import load_model, resolve_checkpoint, shipped_models

__all__ = ["PIPELINES", "describe", "load", "load_model", "resolve_checkpoint", "shipped_models"]

# family -> "module:function"; the factory is called as factory(model, checkpoint, device=...)
# with the network already loaded and in eval mode, and returns the ready pipeline.
PIPELINES: dict[str, str] = {
    "mlp-gan": "pixloom.pipelines.text_to_image:from_checkpoint",
    "dcgan": "pixloom.pipelines.text_to_image:from_checkpoint",
    "stylegan": "pixloom.pipelines.text_to_image:from_checkpoint",
    "token-ar": "pixloom.pipelines.token_to_image:from_checkpoint",
    "maskgit": "pixloom.pipelines.token_to_image:from_checkpoint",
    "espcn": "pixloom.pipelines.upscale:from_checkpoint",
    "edsr": "pixloom.pipelines.upscale:from_checkpoint",
    "rrdb": "pixloom.pipelines.upscale:from_checkpoint",
}


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
    """What a checkpoint directory (or shipped model name), a pixloom PNG or a weights file
    holds, JSON-ready.

    Reads headers and metadata only, never unpickles; a checkpoint's files are checked
    against its manifest (sha256 too unless verify=False).
    """
    from pixloom.models.loading import shipped_models
    from pixloom.weights import weights_root

    if not Path(path).exists() and str(path) in shipped_models():  # a shipped model's name
        path = weights_root() / str(path)
    path = Path(path)
    if path.is_dir():
        return _describe_checkpoint(path, verify)
    if path.is_file():
        return _describe_file(path)
    raise InvalidValue(
        "path", str(path), "an existing checkpoint directory, PNG or weights file, or a "
        f"shipped model name ({', '.join(shipped_models())})",
    )  # fmt: skip
