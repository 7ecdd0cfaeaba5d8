"""`pixloom train`: presets, flags and --option merge; bad input exits 2 with one line."""

from __future__ import annotations

import pytest

from pixloom.cli import main as cli_main
from pixloom.cli.train import build_config, parse_options


@pytest.fixture
def train_only(monkeypatch):
    monkeypatch.setattr(cli_main, "COMMANDS", {"train": "pixloom.cli.train"})


def _parse(argv):
    return cli_main.build_parser().parse_args(["train", *argv])


def test_preset_flags_and_options_merge(train_only, tmp_path):
    config = build_config(
        _parse(["--preset", "digits-classifier", "--steps", "7", "--option", "width=16"])
    )
    assert config.steps == 7 and config.data == "digits"
    assert config.task_options["width"] == 16 and config.task_options["augment"] is True
    preset = tmp_path / "mine.yaml"
    preset.write_text("task: classifier\nbatch_size: 4\n")
    assert build_config(_parse(["--preset", str(preset)])).batch_size == 4


def test_options_are_parsed_as_yaml():
    assert parse_options(["lr=1e-3", "augment=true", "name=x"]) == {
        "lr": 1e-3, "augment": True, "name": "x",
    }  # fmt: skip


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--steps", "0"], "steps"),
        (["--preset", "no-such-preset"], "preset"),
        (["--option", "noequals"], "option"),
        (["--grad-accum", "3", "--batch-size", "8"], "grad_accum"),
    ],
)
def test_bad_input_exits_2_naming_the_field(train_only, capsys, argv, field):
    assert cli_main.main(["train", *argv]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and field in error
