"""Tiled inference: seam-free (<= 1/255 of the untiled output), weights partition unity."""

import numpy as np
import pytest
import torch

from pixloom.models.registry import build_model
from pixloom.pipelines.tiling import ramp, run_tiled, window_starts


def test_tiled_equals_untiled_within_one_level():
    net = build_model("edsr", {"scale": 2, "num_blocks": 16}).eval()  # random weights
    x = torch.rand(1, 3, 75, 61, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = run_tiled(net, x, scale=2, tile=None, overlap=8)
        tiled = run_tiled(net, x, scale=2, tile=32, overlap=8)
    assert whole.shape == tiled.shape == (1, 3, 150, 122)
    assert (whole - tiled).abs().max() <= 1 / 255


@pytest.mark.parametrize("length,window,stride", [(10, 16, 8), (50, 16, 8), (64, 24, 16)])
def test_windows_cover_everything(length, window, stride):
    starts = window_starts(length, window, stride)
    assert starts[0] == 0 and starts[-1] + min(window, length) == length
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_ramps_cross_fade_to_one():
    overlap, stride = 8, 16
    window = stride + 2 * overlap
    first = ramp(window, overlap, rise=False, fall=True)
    second = ramp(window, overlap, rise=True, fall=False)
    shared = first[stride:] + second[: window - stride]  # the 2*overlap band
    assert torch.allclose(shared, torch.ones_like(shared))
    assert first[-1] == 0 and second[0] == 0  # edge pixels (least context) count for nothing


def test_identity_network_is_reproduced_exactly():
    def nearest(batch):
        return batch.repeat_interleave(3, -1).repeat_interleave(3, -2)

    x = torch.rand(1, 3, 40, 53)
    out = run_tiled(nearest, x, scale=3, tile=16, overlap=4)
    assert torch.allclose(out, nearest(x), atol=1e-6)


def _test_image(height: int, width: int) -> np.ndarray:
    """Gradients, hard edges and fine texture: the content where bf16 rounding shows most."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([xx, yy, 1 - xx * yy], axis=-1)
    image[height // 3 : height // 2, width // 4 : width // 2] = (1.0, 0.95, 0.9)  # a bright block
    image += rng.normal(0, 0.04, image.shape)
    return image.clip(0, 1).astype(np.float32)


@pytest.mark.parametrize("model,scale", [("edsr-x2", 2), ("edsr-x4", 4)])
def test_shipped_model_tiles_seam_free_in_bf16(model, scale):
    """bf16 rounds differently per tile shape; the fp32 output layer and the default overlap
    (16, or less than half a small tile) keep the gap under 1/255."""
    from pixloom.pipelines.upscale import UpscalePipeline

    pipe = UpscalePipeline(model, scale=scale, precision="bf16")
    image = _test_image(70, 83)
    whole = pipe(image).arrays[0]
    for tile in (24, 40):
        tiled = pipe(image, tile=tile).arrays[0]  # overlap 11 at tile 24, 16 at tile 40
        assert abs(whole - tiled).max() <= 1 / 255, (tile, abs(whole - tiled).max() * 255)
