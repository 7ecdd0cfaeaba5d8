"""C6: config.json and weights are checked against the model family before anything runs."""

import dataclasses
import json

import pytest
import torch
import torch.nn as nn

from pixloom.api import load_model
from pixloom.errors import CheckpointError, InvalidValue
from pixloom.io.checkpoint import _sha256, save_checkpoint
from pixloom.models.registry import register_model

FAMILY = "io_test_tiny"


@dataclasses.dataclass
class TinyConfig:
    channels: int = 4
    hidden: int = 8

    def __post_init__(self):
        if self.channels <= 0:
            raise InvalidValue("model.channels", self.channels, "a positive channel count")


@register_model(FAMILY, TinyConfig)
def build_tiny(config: TinyConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(config.channels, config.hidden), nn.Linear(config.hidden, 2))


def _save(path, model_config=None, weights=None):
    model_config = model_config or {"channels": 4, "hidden": 8}
    if weights is None:
        weights = build_tiny(TinyConfig(**model_config)).state_dict()
    config = {"family": FAMILY, "model": model_config}
    return save_checkpoint(path, config=config, weights=weights)


def _rewrite_config(path, change):
    """Edit config.json and re-seal the manifest, as an attacker with write access could."""
    config = json.loads((path / "config.json").read_text())
    change(config)
    (path / "config.json").write_text(json.dumps(config))
    manifest = json.loads((path / "manifest.json").read_text())
    entry = {"sha256": _sha256(path / "config.json"), "size": (path / "config.json").stat().st_size}
    manifest["files"]["config.json"] = entry
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_load_model_builds_from_config_and_loads_weights(tmp_path):
    source = build_tiny(TinyConfig())
    path = _save(tmp_path / "ck", weights=source.state_dict())
    model, checkpoint = load_model(path)
    assert not model.training and checkpoint.family == FAMILY
    for name, tensor in source.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["model"].update(depth=3), "model.depth"),
        (lambda c: c["model"].update(hidden="8"), "model.hidden"),
        (lambda c: c["model"].update(channels=-1), "model.channels"),
        (lambda c: c.update(family=7), "config.json:family"),
    ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, change, field):
    path = _save(tmp_path / "ck")
    _rewrite_config(path, change)
    with pytest.raises(InvalidValue) as error:
        load_model(path)
    assert error.value.field == field


def test_unknown_family_is_refused(tmp_path):
    path = _save(tmp_path / "ck")
    _rewrite_config(path, lambda c: c.update(family="no_such_family"))
    with pytest.raises(InvalidValue, match="family='no_such_family'"):
        load_model(path)


def test_impossible_shape_from_builder_is_a_checkpoint_error(tmp_path):
    path = _save(tmp_path / "ck")
    _rewrite_config(path, lambda c: c["model"].update(hidden=-5))
    with pytest.raises(CheckpointError, match="cannot build family"):
        load_model(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda w: w.pop("1.bias"), "missing tensor.*1.bias"),
        (lambda w: w.update(extra=torch.zeros(1)), "unexpected tensor.*extra"),
        (lambda w: w.update({"0.weight": torch.zeros(8, 5)}), r"wrong shape: 0.weight \(8, 5\)"),
    ],
)
def test_weights_not_matching_the_config_are_refused_by_name(tmp_path, edit, match):
    weights = dict(build_tiny(TinyConfig()).state_dict())
    edit(weights)
    path = _save(tmp_path / "ck", weights=weights)
    with pytest.raises(CheckpointError, match=match):
        load_model(path)


def test_export_stores_float16_and_loads_back_as_float32(tmp_path):
    from safetensors.torch import load_file

    from pixloom.io.checkpoint import export_checkpoint, load_checkpoint

    source = build_tiny(TinyConfig())
    state = {"step": 3}
    path = save_checkpoint(tmp_path / "run", config={"family": FAMILY, "model": {}},
                           weights=source.state_dict(), training_state=state)  # fmt: skip
    exported = export_checkpoint(path, tmp_path / "half")
    assert (exported / "model.safetensors").stat().st_size < (
        path / "model.safetensors").stat().st_size  # fmt: skip
    stored = load_file(str(exported / "model.safetensors"))
    assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
    written = load_checkpoint(exported, weights=False)
    assert written.config["storage"] == {
        "dtype": "float16", "source_sha256": load_checkpoint(path).sha256}  # fmt: skip
    assert "training" not in written.manifest["files"] and not (exported / "training").exists()
    model, _ = load_model(exported)
    for name, tensor in source.state_dict().items():
        loaded = model.state_dict()[name]
        assert loaded.dtype == torch.float32
        assert torch.equal(loaded, tensor.half().float())


def test_export_refuses_bad_dtypes_values_and_its_own_source(tmp_path):
    from pixloom.io.checkpoint import export_checkpoint, load_checkpoint

    weights = build_tiny(TinyConfig()).state_dict()
    weights["0.bias"][0] = 1e6
    path = _save(tmp_path / "big", weights=weights)
    with pytest.raises(InvalidValue, match=r"weights\['0.bias'\].*bfloat16 or float32"):
        export_checkpoint(path, tmp_path / "half")
    assert not (tmp_path / "half").exists()
    export_checkpoint(path, tmp_path / "bf16", dtype="bfloat16")  # bf16 has fp32's range
    with pytest.raises(InvalidValue, match="dtype.*float16, bfloat16"):
        export_checkpoint(path, tmp_path / "int8", dtype="int8")
    with pytest.raises(InvalidValue, match="target.*other than the source"):
        export_checkpoint(path, tmp_path / "." / "big", dtype="bfloat16")
    assert load_checkpoint(path).weights["0.bias"][0] == 1e6  # the source is untouched


def test_export_averages_checkpoints_of_one_model_and_records_them(tmp_path):
    from pixloom.io.checkpoint import export_checkpoint, load_checkpoint

    states = [build_tiny(TinyConfig()).state_dict() for _ in range(3)]
    paths = [_save(tmp_path / f"step-{i}", weights=state) for i, state in enumerate(states)]
    soup = export_checkpoint(paths[0], tmp_path / "soup", dtype="float32", average=paths[1:])
    written = load_checkpoint(soup)
    for name, tensor in written.weights.items():
        mean = (states[0][name] + states[1][name] + states[2][name]) / 3
        assert torch.allclose(tensor, mean, atol=1e-7), name
    assert written.config["storage"]["averaged_sha256"] == [
        load_checkpoint(p).sha256 for p in paths[1:]]  # fmt: skip

    other = _save(tmp_path / "wide", model_config={"channels": 4, "hidden": 16})
    with pytest.raises(InvalidValue, match=r"average.*wide.*source's model.*hidden': 8"):
        export_checkpoint(paths[0], tmp_path / "bad", average=[other])
    extra = dict(states[1], extra=torch.zeros(1))
    model = {"channels": 4, "hidden": 8}
    odd = save_checkpoint(
        tmp_path / "odd", config={"family": FAMILY, "model": model}, weights=extra
    )
    with pytest.raises(InvalidValue, match=r"average.*odd.*source's tensors.*extra"):
        export_checkpoint(paths[0], tmp_path / "bad", average=[odd])
    assert not (tmp_path / "bad").exists()


def test_export_command(tmp_path, capsys):
    from pixloom.cli.main import main

    path = _save(tmp_path / "run")
    assert main(["export", str(path), str(tmp_path / "half")]) == 0
    assert f"{FAMILY}, weights float16" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    assert "no model named or at" in capsys.readouterr().err
    assert main(["export", "espcn-x2", str(tmp_path / "shipped")]) == 0  # a shipped name
    assert "espcn, weights float16" in capsys.readouterr().out
    other = _save(tmp_path / "run2")
    assert main(["export", str(path), str(tmp_path / "soup"), "--average", str(other)]) == 0
    assert "mean of 2 checkpoints" in capsys.readouterr().out
