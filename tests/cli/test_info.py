"""`pixloom info`: checkpoints (text and --json), weights files, PNG metadata, errors."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from pixloom.cli import main as cli_main
from pixloom.io.checkpoint import save_checkpoint

CONFIG = {
    "family": "info_test",
    "model": {"width": 8},
    "dataset": "shapes",
    "provenance": {"recipe": "pixloom train info_test", "steps": 10},
}


@pytest.fixture(autouse=True)
def _only_info(monkeypatch):
    """Build the parser with the info verb alone, independent of the other verbs' modules."""
    monkeypatch.setattr(cli_main, "COMMANDS", {"info": "pixloom.cli.info"})


@pytest.fixture
def checkpoint(tmp_path):
    weights = {"a.weight": torch.zeros(8, 3), "a.bias": torch.zeros(8)}
    return save_checkpoint(
        tmp_path / "ck", config=CONFIG, weights=weights, training_state={"step": 10}
    )


def test_info_prints_a_checkpoint(checkpoint, capsys):
    assert cli_main.main(["info", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    assert "family:     info_test" in out
    assert manifest["files"]["model.safetensors"]["sha256"] in out and "(verified)" in out
    assert "parameters: 32 in 2 tensors" in out and "training state: yes" in out
    assert "model.safetensors" in out and "training/state.json" in out
    assert '"recipe": "pixloom train info_test"' in out and '"width": 8' in out


def test_info_json(checkpoint, capsys):
    assert cli_main.main(["info", str(checkpoint), "--json", "--no-verify"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "checkpoint" and info["family"] == "info_test"
    assert info["verified"] is False and info["parameters"] == 32
    assert info["provenance"] == CONFIG["provenance"]
    assert info["config"]["model"] == {"width": 8} and info["config"]["dataset"] == "shapes"
    assert set(info["files"]) == {
        "config.json",
        "model.safetensors",
        "training/state.safetensors",
        "training/state.json",
    }


def test_info_on_a_tampered_checkpoint_fails_in_one_line(checkpoint, capsys):
    (checkpoint / "manifest.json").unlink()
    assert cli_main.main(["info", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixloom info: error:") and "no manifest.json" in err
    assert len(err.strip().splitlines()) == 1


def test_info_on_a_weights_file(tmp_path, capsys):
    save_file({"w": torch.zeros(2, 3, dtype=torch.bfloat16)}, str(tmp_path / "w.bin"))
    assert cli_main.main(["info", str(tmp_path / "w.bin")]) == 0
    out = capsys.readouterr().out
    assert "safetensors" in out and "BF16" in out and "[2, 3]" in out


def test_info_on_a_png_prints_its_metadata(tmp_path, capsys):
    from pixloom.io.images import save_png

    metadata = {"prompt": "a red circle", "seed": 7, "model": {"sha256": "ab" * 32}}
    save_png(Image.new("RGB", (4, 4)), tmp_path / "out.png", metadata=metadata)
    assert cli_main.main(["info", str(tmp_path / "out.png"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "png" and info["metadata"] == metadata
    assert cli_main.main(["info", str(tmp_path / "out.png")]) == 0
    assert '"prompt": "a red circle"' in capsys.readouterr().out


def test_info_on_a_missing_path(tmp_path, capsys):
    assert cli_main.main(["info", str(tmp_path / "nothing")]) == 2
    assert "path=" in capsys.readouterr().err


def test_info_takes_a_shipped_model_name(capsys):
    assert cli_main.main(["info", "shapes-oracle", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "checkpoint" and info["path"].endswith("weights/shapes-oracle")
    assert cli_main.main(["info", "no-such-model"]) == 2
    assert "shipped model name (" in capsys.readouterr().err
