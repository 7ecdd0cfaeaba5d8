"""Loading networks from checkpoint directories: shipped names, strict config and weights.

Sits in the models layer (it needs the model registry and io), so pipelines, metrics and
the api all load networks the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch.nn as nn

from pixloom.errors import CheckpointError, InvalidValue, PixloomError
from pixloom.families import TOKEN_FAMILIES

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


def load_image_tokenizer(
    directory: str | Path, field: str = "tokenizer"
) -> tuple[nn.Module, dict[str, Any], Any]:
    """The vq tokenizer of a checkpoint directory (eval mode), its model config dict and the
    Checkpoint it came from.

    A vq checkpoint is the tokenizer itself; a token model (token-ar, maskgit) gives the
    frozen tokenizer it decodes with, so `shapes-ar` names the tokenizer it shipped with.
    `field` names the option in the error for any other family.
    """
    model, checkpoint = load_model(directory)
    if checkpoint.family == "vq":
        return model, dict(checkpoint.model_config), checkpoint
    if checkpoint.family in TOKEN_FAMILIES:
        return model.tokenizer.eval(), dict(checkpoint.model_config["tokenizer"]), checkpoint
    raise InvalidValue(
        field,
        str(directory),
        f"a 'vq' tokenizer or a token model ({', '.join(TOKEN_FAMILIES)}), "
        f"not family {checkpoint.family!r}",
    )
