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


def test_x4_from_x2_stages_chain_from_the_shipped_x2():
    from pixloom.models.loading import shipped_models

    stages = [
        yaml.safe_load((PRESETS[0].parent / f"{name}.yaml").read_text())
        for name in ("sr-edsr-x4-from-x2", "sr-edsr-x4-from-x2-stage2", "sr-edsr-x4-from-x2-stage3")
    ]
    assert stages[0]["task_options"]["init_from"] in shipped_models()
    for before, after in zip(stages, stages[1:]):
        assert after["task_options"]["init_from"] == f"{before['out']}/model"
        assert after["task_options"]["lr"] < before["task_options"]["lr"]
    assert stages[-1]["task_options"]["pixel_loss"] == "l2"
