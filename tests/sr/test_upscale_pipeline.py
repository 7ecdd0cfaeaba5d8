"""The upscale pipeline: sizes, alpha, grayscale, 16-bit, outscale, checkpoints, bf16."""

import numpy as np
import pytest
import torch
from PIL import Image

from pixloom.configs import config_to_dict
from pixloom.errors import CheckpointError, InvalidValue
from pixloom.io.checkpoint import save_checkpoint
from pixloom.models.registry import build_model
from pixloom.models.sr import EdsrConfig
from pixloom.pipelines.upscale import UpscalePipeline, from_checkpoint

RNG = np.random.default_rng(0)


def _tiny_edsr(scale=2):
    return build_model("edsr", {"scale": scale, "features": 8, "num_blocks": 2})


@pytest.mark.parametrize("model", ["nearest", "bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_baselines_give_scaled_size(model, scale):
    image = Image.fromarray(RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    result = UpscalePipeline(model, scale=scale)(image)
    assert result.images[0].size == (13 * scale, 9 * scale) and result.images[0].mode == "RGB"


def test_bicubic_baseline_equals_pil():
    image = Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    ours = np.asarray(UpscalePipeline("bicubic", scale=3)(image).images[0]).astype(int)
    pil = np.asarray(image.resize((30, 36), Image.Resampling.BICUBIC)).astype(int)
    assert np.abs(ours - pil).max() <= 1


@pytest.mark.parametrize("outscale,size", [(1.5, (15, 9)), (3.5, (35, 21)), (0.5, (5, 3))])
def test_outscale_sets_the_final_size(outscale, size):
    image = np.zeros((6, 10, 3), np.uint8)
    result = UpscalePipeline(_tiny_edsr(), precision="fp32")(image, outscale=outscale)
    assert result.images[0].size == size and result.arrays[0].shape[:2] == size[::-1]


def test_alpha_is_kept_and_upscaled_separately():
    rgba = RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    rgba[:, :4, 3] = 0  # left half transparent
    rgba[:, 4:, 3] = 255
    result = UpscalePipeline(_tiny_edsr(), precision="fp32")(Image.fromarray(rgba), tile=16)
    out = np.asarray(result.images[0])
    assert result.images[0].mode == "RGBA" and out.shape == (16, 16, 4)
    assert (out[:, :6, 3] == 0).all() and (out[:, 10:, 3] == 255).all()


def test_grayscale_stays_grayscale():
    gray = Image.fromarray(RNG.integers(0, 256, (7, 9), dtype=np.uint8))
    result = UpscalePipeline(_tiny_edsr(), precision="fp32")(gray)
    assert result.images[0].mode == "L" and result.images[0].size == (18, 14)
    gray_alpha = np.stack([np.full((4, 4), 9, np.uint8), np.full((4, 4), 200, np.uint8)], -1)
    result = UpscalePipeline("bicubic", scale=2)(gray_alpha)
    assert result.images[0].mode == "LA" and result.arrays[0].shape == (8, 8, 2)


def test_sixteen_bit_precision_survives():
    ramp = (np.linspace(0, 1, 64 * 64).reshape(64, 64) * 65535).astype(np.uint16)
    result = UpscalePipeline("bilinear", scale=2)(Image.fromarray(ramp))
    levels = np.unique(np.round(result.arrays[0] * 65535))
    assert result.arrays[0].shape == (128, 128, 1) and len(levels) > 1000  # far beyond 8 bits


def test_checkpoint_directory_and_factory(tmp_path):
    net = _tiny_edsr(scale=3)
    config = {
        "family": "edsr",
        "model": config_to_dict(EdsrConfig(scale=3, features=8, num_blocks=2)),
    }
    path = save_checkpoint(tmp_path / "edsr", config=config, weights=net.state_dict())
    image = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    loaded = UpscalePipeline(str(path), precision="fp32")
    expected = UpscalePipeline(net, precision="fp32")(image).arrays[0]
    result = loaded(image)
    assert np.allclose(result.arrays[0], expected, atol=1e-6)
    assert result.metadata[0]["model_sha256"] and result.metadata[0]["scale"] == 3
    with pytest.raises(InvalidValue, match="scale=2"):
        UpscalePipeline(str(path), scale=2)
    assert (
        from_checkpoint(net, loaded_checkpoint(path)).sha256 == result.metadata[0]["model_sha256"]
    )


def loaded_checkpoint(path):
    from pixloom.io.checkpoint import load_checkpoint

    return load_checkpoint(path)


def test_non_sr_checkpoint_and_bad_weights_are_refused(tmp_path):
    net = _tiny_edsr()
    config = {
        "family": "edsr",
        "model": config_to_dict(EdsrConfig(scale=2, features=8, num_blocks=2)),
    }
    weights = {k: v for k, v in net.state_dict().items() if k != "tail.bias"}
    path = save_checkpoint(tmp_path / "broken", config=config, weights=weights)
    with pytest.raises(CheckpointError, match="tail.bias"):
        UpscalePipeline(str(path))
    with pytest.raises(InvalidValue, match="model='no-such-model'"):
        UpscalePipeline("no-such-model", scale=2)


def test_bf16_and_fp32_agree():
    net = _tiny_edsr()
    image = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    fp32 = UpscalePipeline(net, precision="fp32")(image).arrays[0]
    bf16 = UpscalePipeline(net, precision="bf16")(image).arrays[0]
    assert np.abs(fp32 - bf16).mean() < 0.02 and np.isfinite(bf16).all()


def test_image_validation_names_the_field():
    pipe = UpscalePipeline("bicubic", scale=2)
    with pytest.raises(InvalidValue, match="image"):
        pipe(np.full((4, 4, 3), 2.0, np.float32))
    with pytest.raises(InvalidValue, match="tile=8"):
        pipe(np.zeros((4, 4, 3), np.uint8), tile=8)
    with pytest.raises(InvalidValue, match="scale"):
        UpscalePipeline("bicubic")
    torch.manual_seed(0)


def test_pixloom_load_returns_an_upscaler(tmp_path, monkeypatch):
    import pixloom
    from pixloom import api

    for family in ("espcn", "edsr", "rrdb"):  # the entries pixloom.api.PIPELINES should hold
        monkeypatch.setitem(api.PIPELINES, family, "pixloom.pipelines.upscale:from_checkpoint")
    config = {
        "family": "edsr",
        "model": config_to_dict(EdsrConfig(scale=4, features=8, num_blocks=2)),
    }
    path = save_checkpoint(tmp_path / "edsr-x4", config=config, weights=_tiny_edsr(4).state_dict())
    result = pixloom.load(str(path))(Image.new("RGB", (5, 4)))
    assert result.images[0].size == (20, 16) and result.metadata[0]["model"] == "edsr-x4"


def test_output_pixel_cap(monkeypatch):
    monkeypatch.setenv("PIXLOOM_MAX_PIXELS", "1000")
    pipe = UpscalePipeline("bicubic", scale=4)
    assert pipe(np.zeros((7, 7, 3), np.uint8)).images[0].size == (28, 28)  # 784 pixels
    with pytest.raises(InvalidValue, match="scale=4"):
        pipe(np.zeros((8, 8, 3), np.uint8))  # 1024 pixels
    with pytest.raises(InvalidValue, match="outscale=5"):
        pipe(np.zeros((7, 7, 3), np.uint8), outscale=5)


def test_dihedral_mean_keeps_an_equivariant_network_and_maps_outputs_back():
    from pixloom.pipelines.upscale import dihedral_mean

    x = torch.rand(1, 3, 5, 7)
    nearest = lambda batch: batch.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    assert torch.allclose(dihedral_mean(nearest)(x), nearest(x))
    # a network that is not equivariant (it reads the top-left pixel) is averaged, not kept
    corner = lambda batch: nearest(batch) * 0 + batch[..., :1, :1]  # noqa: E731
    averaged = dihedral_mean(corner)(x)
    assert averaged.shape == (1, 3, 10, 14) and not torch.allclose(averaged, corner(x))


def test_self_ensemble_runs_tiled_and_is_recorded():
    image = RNG.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    pipe = UpscalePipeline(_tiny_edsr(), precision="fp32")
    plain = pipe(image).arrays[0]
    whole = pipe(image, self_ensemble=True)
    tiled = pipe(image, self_ensemble=True, tile=16, tile_overlap=4)
    assert whole.arrays[0].shape == plain.shape == (40, 56, 3)
    assert np.abs(whole.arrays[0] - tiled.arrays[0]).max() <= 1 / 255
    assert not np.allclose(whole.arrays[0], plain)
    assert (
        whole.metadata[0]["self_ensemble"] is True
        and pipe(image).metadata[0]["self_ensemble"] is False
    )
