"""Conditional BatchNorm in dcgan, BatchNorm re-estimation for EMA weights, the mode-seeking
term of the gan task, and `pixloom demo` on a tiny dcgan."""

import argparse

import pytest
import torch
import torch.nn as nn

from pixloom.configs import config_from_dict
from pixloom.data.registry import DatasetInfo
from pixloom.io.checkpoint import save_checkpoint
from pixloom.models.registry import build_model
from pixloom.text.builtin import build_vocabulary
from pixloom.training.ema import recalibrate_batch_norm
from pixloom.training.tasks.gan import GanTask, GanTaskOptions

SPEC = {"name": "builtin", "vocab": build_vocabulary(["a red circle", "three green stars"]),
        "dim": 16, "layers": 1, "heads": 2, "max_length": 12}  # fmt: skip
DCGAN = {"resolution": 16, "z_dim": 8, "width": 4, "max_width": 8, "text_encoder": SPEC}


def test_recalibration_gives_the_exact_statistics_of_the_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)).eval()
    batches = [torch.randn(4, 2, 5, 5) * 3 + 1 for _ in range(3)]
    assert recalibrate_batch_norm(net, lambda: [net(x) for x in batches])
    features = net[0](torch.cat(batches)).detach()  # equal batch sizes: the plain mean
    assert torch.allclose(net[1].running_mean, features.mean((0, 2, 3)), atol=1e-5)
    assert not net.training and net[1].momentum == 0.1
    assert not recalibrate_batch_norm(nn.Linear(2, 2), lambda: None)


def test_text_changes_the_dcgan_image_through_every_norm():
    torch.manual_seed(0)
    generator = build_model("dcgan", DCGAN)
    with torch.no_grad():
        for norm in generator.norms:  # the affine maps start at zero; make them matter
            norm.affine.weight.normal_()
    generator.eval()
    z = torch.randn(1, 8)
    encode = generator.text_encoder.encode
    red = generator(z, None, encode(["a red circle"]))
    stars = generator(z, None, encode(["three green stars"]))
    assert red.shape == (1, 3, 16, 16) and not torch.allclose(red, stars)


def _task(**options):
    info = DatasetInfo(name="shapes", resolution=16, has_captions=True)
    options = {"model": "dcgan", "model_config": {"z_dim": 8, "width": 4, "max_width": 8},
               "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2},
               "vocab_captions": 50, "calibration_batches": 1, **options}  # fmt: skip
    return GanTask(config_from_dict(GanTaskOptions, options), info)


def test_mode_seeking_term_is_reported_and_differentiable():
    task = _task(diversity_weight=1.0)
    batch = {"image": torch.zeros(4, 3, 16, 16), "caption": ["a red circle"] * 4}
    loss, metrics = task.loss("g", batch, 0)
    loss.backward()
    assert metrics["diversity"] > 0 and torch.isfinite(loss)
    assert "diversity" not in _task().loss("g", batch, 0)[1]


def test_prepare_inference_is_deterministic_and_sets_statistics():
    task = _task()
    first, second = (build_model("dcgan", task.model_config) for _ in range(2))
    second.load_state_dict(first.state_dict())
    task.prepare_inference(first)
    task.prepare_inference(second)
    norm = first.norms[0].norm
    assert not first.training and norm.running_var.ne(1).any()
    assert torch.equal(norm.running_mean, second.norms[0].norm.running_mean)


@pytest.mark.parametrize("value", [-1.0])
def test_bad_diversity_weight_names_the_field(value):
    from pixloom.errors import InvalidValue

    with pytest.raises(InvalidValue, match="diversity_weight"):
        _task(diversity_weight=value)


def test_demo_writes_images_and_a_grid(tmp_path, capsys):
    from pixloom.cli import demo
    from pixloom.io.images import read_png_metadata
    from pixloom.pipelines.text_to_image import demo_prompts

    torch.manual_seed(0)
    model = tmp_path / "tiny-dcgan"
    save_checkpoint(model, config={"family": "dcgan", "model": DCGAN},
                    weights=build_model("dcgan", DCGAN).state_dict())  # fmt: skip
    out = tmp_path / "outputs"
    assert demo.run(argparse.Namespace(out=out, model=str(model))) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == len(demo_prompts()) * demo.IMAGES_PER_PROMPT + 1
    assert (out / "demo-grid.png").exists()
    assert read_png_metadata(pngs[0])["model"] == "tiny-dcgan"
    assert "grid:" in capsys.readouterr().out
