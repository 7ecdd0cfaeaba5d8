"""pixloom.api.load: names, paths, errors, pipeline factories, and pixloom.load."""

import dataclasses

import pytest
import torch
import torch.nn as nn

import pixloom
from pixloom import api
from pixloom.errors import CheckpointError, InvalidValue
from pixloom.io.checkpoint import save_checkpoint
from pixloom.models.registry import register_model

FAMILY = "api_test_tiny"


@dataclasses.dataclass
class TinyConfig:
    features: int = 3


@register_model(FAMILY, TinyConfig)
def build_tiny(config: TinyConfig) -> nn.Module:
    return nn.Linear(config.features, 1)


def _save(path):
    weights = build_tiny(TinyConfig()).state_dict()
    return save_checkpoint(
        path, config={"family": FAMILY, "model": {"features": 3}}, weights=weights
    )


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A fake pixloom/weights folder with one shipped checkpoint and one incomplete one."""
    root = tmp_path / "weights"
    _save(root / "tiny-default")
    (root / "half-written").mkdir()
    monkeypatch.setattr("pixloom.weights.weights_root", lambda: root)
    return root


def test_load_by_path_returns_eval_model_with_checkpoint(tmp_path):
    path = _save(tmp_path / "ck")
    model = pixloom.load(str(path), device="cpu")
    assert isinstance(model, nn.Linear) and not model.training
    assert model.pixloom_checkpoint.family == FAMILY
    assert model.pixloom_checkpoint.path == path
    assert next(model.parameters()).device == torch.device("cpu")


def test_load_by_shipped_name(shipped):
    assert api.shipped_models() == ["tiny-default"]
    model = api.load("tiny-default")
    assert model.pixloom_checkpoint.path == shipped / "tiny-default"


def test_unknown_name_lists_shipped_models(shipped):
    with pytest.raises(CheckpointError, match=r"no model named or at 'nope'.*tiny-default"):
        api.load("nope")


def test_incomplete_directory_is_refused(tmp_path):
    (tmp_path / "ck").mkdir()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        api.load(tmp_path / "ck")


def test_bad_arguments_are_refused(tmp_path):
    path = _save(tmp_path / "ck")
    with pytest.raises(InvalidValue, match="name_or_path"):
        api.load(42)
    with pytest.raises(InvalidValue, match="device"):
        api.load(path, device="tpu")


def test_registered_pipeline_factory_is_used(tmp_path, monkeypatch):
    path = _save(tmp_path / "ck")
    monkeypatch.setitem(api.PIPELINES, FAMILY, f"{__name__}:_make_pipeline")
    pipeline = api.load(path, device="cpu")
    assert pipeline["family"] == FAMILY and isinstance(pipeline["model"], nn.Linear)
    assert pipeline["device"] == torch.device("cpu")


def _make_pipeline(model, checkpoint, *, device):
    return {"model": model, "family": checkpoint.family, "device": device}
