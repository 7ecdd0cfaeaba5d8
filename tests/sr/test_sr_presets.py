"""The shipped SR presets: task options parse and patch sizes fit the scale."""

from pathlib import Path

import pytest
import yaml

from pixloom.configs import config_from_dict
from pixloom.training.tasks.sr import SrTaskOptions

PRESETS = sorted((Path(__file__).parents[2] / "pixloom" / "presets").glob("sr-*.yaml"))


def test_presets_exist():
    assert {p.stem for p in PRESETS} >= {
        "sr-edsr-x2",
        "sr-edsr-x4",
        "sr-espcn-x4",
        "sr-rrdb-x2",
        "sr-rrdb-x4",
        "sr-rrdb-x4-stage2",
        "sr-rrdb-x4-real",
        "sr-esrgan-x4-real",
        "sr-edsr-x4-from-x2",
        "sr-edsr-x4-from-x2-stage2",
        "sr-edsr-x4-from-x2-stage3",
    }


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_task_options_are_valid(path):
    preset = yaml.safe_load(path.read_text())
    options = config_from_dict(SrTaskOptions, preset["task_options"], where="task_options")
    assert preset["task"] == "sr" and preset["resolution"] % options.scale == 0
    assert preset["data_options"]["mode"] == "random_crop"  # native pixels, never resized


def test_rrdb_presets_train_on_bicubic_with_l1_and_stage2_continues_stage1():
    def load(name):
        return yaml.safe_load((PRESETS[0].parent / f"{name}.yaml").read_text())

    first, second = load("sr-rrdb-x4"), load("sr-rrdb-x4-stage2")
    for preset in (load("sr-rrdb-x2"), first, second):
        options = preset["task_options"]
        assert (options["model"], options["degradation"], options["pixel_loss"]) == (
            "rrdb", "bicubic", "l1")  # fmt: skip
    assert second["task_options"]["init_from"].startswith(f"{first['out']}/")
    assert second["task_options"]["model_config"] == first["task_options"]["model_config"]


X4_CHAIN = (  # the presets run one after the other to make the shipped edsr-x4
    "sr-edsr-x4-from-x2",
    "sr-edsr-x4-from-x2-stage2",
    "sr-edsr-x4-from-x2-stage3",
    "sr-edsr-x4-deep",
    "sr-edsr-x4-deep-stage2",
    "sr-edsr-x4-deep-stage3",
    "sr-edsr-x4-deep-stage4",
    "sr-edsr-x4-deep-stage5",
)


def test_shipped_x4_is_the_last_stage_of_a_chain_from_the_shipped_x2():
    import json

    from pixloom.models.loading import shipped_models

    stages = [yaml.safe_load((PRESETS[0].parent / f"{name}.yaml").read_text()) for name in X4_CHAIN]
    assert stages[0]["task_options"]["init_from"] in shipped_models()
    for before, after in zip(stages, stages[1:]):  # each starts from its predecessor's run
        assert after["task_options"]["init_from"].startswith(f"{before['out']}/")
    assert stages[2]["task_options"]["pixel_loss"] == "l2"
    shipped = json.loads(
        (PRESETS[0].parents[1] / "weights" / "edsr-x4" / "config.json").read_text()
    )
    trained = shipped["training"]
    for key in ("data", "data_options", "resolution", "task_options", "steps", "seed", "out"):
        assert trained[key] == stages[-1][key], key
