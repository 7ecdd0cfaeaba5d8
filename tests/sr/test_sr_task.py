"""The "sr" training task: losses on a tiny batch, deterministic pairs, an engine round trip."""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pixloom.errors import CheckpointError, InvalidValue
from pixloom.metrics.quality import rgb_to_y
from pixloom.pipelines.upscale import UpscalePipeline
from pixloom.training.config import TrainConfig
from pixloom.training.engine import train
from pixloom.training.tasks.sr import make_sr_task

TINY_EDSR = {"model": "edsr", "model_config": {"features": 8, "num_blocks": 1}}


def _batch(size=12, count=2):
    images = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(0))
    return {"image": images * 2 - 1, "index": torch.arange(count) + 3}


@pytest.mark.parametrize("degradation", ["bicubic", "real"])
def test_l1_loss_on_tiny_batch(degradation):
    task = make_sr_task(
        {**TINY_EDSR, "scale": 2, "degradation": degradation}, SimpleNamespace(resolution=12)
    )
    (phase,) = task.phases()
    loss, metrics = task.loss(phase.name, _batch(), step=0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and metrics["psnr"] > 0
    assert task.export_config() == {
        "family": "edsr",
        "model": {"scale": 2, "channels": 3, "features": 8, "num_blocks": 1, "res_scale": 1.0},
    }


def test_l2_pixel_loss_is_the_mean_squared_error():
    options = {**TINY_EDSR, "scale": 2, "pixel_loss": "l2"}
    task = make_sr_task(options, SimpleNamespace(resolution=12))
    loss, metrics = task.loss("g", _batch(), step=0)
    lr, hr = task.make_pair(_batch(), step=0)
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(task.generator(lr).float(), hr)
    assert torch.allclose(loss, expected) and not torch.allclose(loss, torch.tensor(metrics["l1"]))


def test_luma_weight_adds_the_mean_squared_error_of_bt601_luma():
    options = {**TINY_EDSR, "scale": 2, "pixel_loss": "l2", "luma_weight": 4.0}
    task = make_sr_task(options, SimpleNamespace(resolution=12))
    loss, _ = task.loss("g", _batch(), step=0)
    lr, hr = task.make_pair(_batch(), step=0)
    with torch.no_grad():
        sr = task.generator(lr).float()

    # the metric's own luma (numpy, 16-235 scale), brought to the 0-1 scale without its offset
    def luma(images):  # [B, 3, H, W] -> the rows of every image stacked, [B * H, W]
        return (
            rgb_to_y(images.permute(0, 2, 3, 1).reshape(-1, images.shape[-1], 3).numpy()) - 16
        ) / 255

    y_sr, y_hr = luma(sr), luma(hr)
    expected = torch.nn.functional.mse_loss(sr, hr) + 4.0 * float(np.mean((y_sr - y_hr) ** 2))
    assert torch.allclose(loss, expected.float(), rtol=1e-5)


def test_pairs_are_deterministic_in_step_and_index():
    options = {**TINY_EDSR, "scale": 3, "degradation": "real"}
    task = make_sr_task(options, SimpleNamespace(resolution=12))
    lr, hr = task.make_pair(_batch(), step=4)
    fresh = make_sr_task(options, SimpleNamespace(resolution=12))  # no cache: recomputed
    again, _ = fresh.make_pair(_batch(), step=4)
    other, _ = task.make_pair(_batch(), step=5)
    assert lr.shape == (2, 3, 4, 4) and hr.shape == (2, 3, 12, 12)
    assert torch.equal(lr, again) and not torch.equal(lr, other)


def test_adversarial_variant_has_two_phases():
    options = {
        "model": "rrdb",
        "scale": 4,
        "adversarial": True,
        "model_config": {"features": 8, "growth": 4, "num_blocks": 1},
        "discriminator": {"features": 8, "num_layers": 2},
    }
    task = make_sr_task(options, SimpleNamespace(resolution=16))
    assert [p.name for p in task.phases()] == ["g", "d"]
    assert set(task.modules()) == {"generator", "discriminator"}
    for phase in task.phases():
        loss, metrics = task.loss(phase.name, _batch(16), step=0)
        assert torch.isfinite(loss)
    assert "gan" in metrics or phase.name == "d"


@pytest.mark.parametrize(
    "options,field",
    [
        ({"scale": 5}, "task_options.scale"),
        ({"colour": 1}, "task_options.colour"),
        ({"pixel_loss": "l3"}, "task_options.pixel_loss"),
        ({"luma_weight": -1.0}, "task_options.luma_weight"),
        ({"model_config": {"scale": 2}}, "task_options.model_config.scale"),
    ],
)
def test_bad_options_name_the_field(options, field):
    with pytest.raises(InvalidValue) as error:
        make_sr_task(options, SimpleNamespace(resolution=12))
    assert error.value.field == field


def test_resolution_must_be_a_multiple_of_scale():
    with pytest.raises(InvalidValue, match="resolution=10"):
        make_sr_task({**TINY_EDSR, "scale": 4}, SimpleNamespace(resolution=10))


@dataclass(frozen=True)
class PatchInfo:
    name: str = "patches"
    resolution: int = 12
    channels: int = 3
    num_classes: int = 0
    class_names: tuple = ()
    has_captions: bool = False


class Patches(torch.utils.data.Dataset):
    """Eight smooth 12x12 HR patches."""

    info = PatchInfo()

    def __init__(self):
        grid = torch.linspace(0, 1, 12)
        self.images = [
            (torch.outer(grid, grid) * (i + 1) / 8).expand(3, 12, 12) * 2 - 1 for i in range(8)
        ]

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "caption": "", "label": -1, "index": index}


ADVERSARIAL_RRDB = {
    "model": "rrdb",
    "model_config": {"features": 8, "growth": 4, "num_blocks": 1},
    "adversarial": True,
    "discriminator": {"features": 8, "num_layers": 2},
}


def _tiny_x2_run(out, options, *, steps, **fields) -> TrainConfig:
    """A CPU fp32 x2 training config on the Patches dataset, checkpointed at the end."""
    fields = {"checkpoint_every": steps, **fields}
    return TrainConfig(task="sr", data="patches", resolution=12, steps=steps, batch_size=4,
                       task_options={**options, "scale": 2, "lr": 1e-3}, precision="fp32",
                       device="cpu", out=str(out), tensorboard=False, progress=False,
                       **fields)  # fmt: skip


@pytest.mark.parametrize("options", [TINY_EDSR, ADVERSARIAL_RRDB], ids=["edsr", "esrgan"])
def test_engine_trains_and_the_model_upscales(tmp_path, options):
    result = train(
        _tiny_x2_run(tmp_path / "run", options, steps=3, ema_warmup=1), dataset=Patches()
    )
    assert result.model is not None and np.isfinite(result.metrics["g/loss"])
    pipe = UpscalePipeline(str(result.model), precision="fp32")
    out = pipe(np.zeros((5, 7, 3), np.uint8))
    assert out.images[0].size == (14, 10) and pipe.sha256


def test_init_from_a_smaller_scale_loads_all_but_the_upsampler(tmp_path):
    from pixloom.io.checkpoint import save_checkpoint
    from pixloom.training.tasks.sr import load_generator_weights

    x2 = make_sr_task({**TINY_EDSR, "scale": 2}, SimpleNamespace(resolution=12))
    path = save_checkpoint(
        tmp_path / "x2", config=x2.export_config(), weights=x2.generator.state_dict()
    )
    x4 = make_sr_task(
        {**TINY_EDSR, "scale": 4, "init_from": str(path)}, SimpleNamespace(resolution=12)
    )
    assert torch.equal(x4.generator.head.weight, x2.generator.head.weight)
    assert all(name.startswith("upsample") for name in x4.fresh)
    espcn = make_sr_task({"model": "espcn", "scale": 4}, SimpleNamespace(resolution=12))
    with pytest.raises(InvalidValue, match="init_from"):
        load_generator_weights(espcn.generator, "espcn", str(path))


def test_init_from_a_shallower_edsr_grows_it_as_the_same_function(tmp_path):
    from pixloom.io.checkpoint import save_checkpoint

    shallow = make_sr_task({**TINY_EDSR, "scale": 2}, SimpleNamespace(resolution=12))
    path = save_checkpoint(
        tmp_path / "shallow", config=shallow.export_config(), weights=shallow.generator.state_dict()
    )
    deep = {"model": "edsr", "model_config": {"features": 8, "num_blocks": 3}, "scale": 2}
    grown = make_sr_task({**deep, "init_from": str(path)}, SimpleNamespace(resolution=12))
    lr = torch.rand(1, 3, 9, 7)
    assert torch.equal(grown.generator(lr), shallow.generator(lr))  # added blocks: identities
    assert grown.fresh == [f"body.{i}.conv1.{p}" for i in (1, 2) for p in ("bias", "weight")]
    assert torch.equal(grown.generator.body[3].weight, shallow.generator.body[1].weight)
    deep_path = save_checkpoint(
        tmp_path / "deep", config=grown.export_config(), weights=grown.generator.state_dict()
    )
    with pytest.raises(InvalidValue, match="num_blocks=1 .* 3 blocks of the init_from"):
        make_sr_task({**TINY_EDSR, "scale": 2, "init_from": str(deep_path)},
                     SimpleNamespace(resolution=12))  # fmt: skip


def test_init_from_takes_a_shipped_model_name():
    from pixloom.io.checkpoint import load_checkpoint
    from pixloom.models.loading import resolve_checkpoint

    task = make_sr_task(
        {"model": "edsr", "scale": 4, "init_from": "edsr-x2"}, SimpleNamespace(resolution=12)
    )
    shipped = load_checkpoint(resolve_checkpoint("edsr-x2")).weights
    assert torch.equal(task.generator.head.weight, shipped["head.weight"].float())
    assert task.fresh and all(name.startswith("upsample") for name in task.fresh)
    with pytest.raises(CheckpointError, match=r"task_options.init_from: .*edsr-x2, edsr-x4"):
        make_sr_task({"model": "edsr", "init_from": "edsr-x9"}, SimpleNamespace(resolution=12))


def test_init_from_takes_a_run_directory_or_its_latest_pointer(tmp_path):
    import shutil

    result = train(_tiny_x2_run(tmp_path / "run", TINY_EDSR, steps=2, checkpoint_every=1),
                   dataset=Patches())  # fmt: skip
    x4 = {**TINY_EDSR, "scale": 4}
    finished = make_sr_task(
        {**x4, "init_from": str(tmp_path / "run")}, SimpleNamespace(resolution=12)
    )
    shutil.rmtree(result.model)  # an interrupted run: its latest step checkpoint is taken
    pointer = tmp_path / "run" / "latest"
    interrupted = make_sr_task({**x4, "init_from": str(pointer)}, SimpleNamespace(resolution=12))
    assert torch.equal(finished.generator.head.weight, interrupted.generator.head.weight)
    assert all(name.startswith("upsample") for name in interrupted.fresh)
