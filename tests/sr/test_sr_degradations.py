"""Degradations: deterministic per seed, right sizes, bicubic equal to PIL's filter."""

import numpy as np
import pytest
import torch
from PIL import Image

from pixloom.data.degradations import (
    RealDegradationConfig,
    bicubic_downscale,
    degrade_real,
    make_lr,
)
from pixloom.errors import InvalidValue


def _hr(size=32):
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_real_degradation_is_deterministic_per_seed(scale):
    hr = _hr(24)
    first, again = degrade_real(hr, scale, seed=5), degrade_real(hr, scale, seed=5)
    assert first.shape == (3, 24 // scale, 24 // scale)
    assert torch.equal(first, again)
    assert not torch.equal(first, degrade_real(hr, scale, seed=6))
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal((first * 255).round() / 255, first)  # 8-bit like a real LR image


def test_global_rng_does_not_matter():
    hr = _hr()
    torch.manual_seed(1)
    np.random.seed(1)
    first = degrade_real(hr, 4, seed=3)
    torch.manual_seed(2)
    np.random.seed(2)
    assert torch.equal(first, degrade_real(hr, 4, seed=3))


def test_make_lr_batches_and_checks_seeds():
    hr = torch.rand(2, 3, 16, 16)
    assert make_lr(hr, 2, kind="real", seeds=[1, 2]).shape == (2, 3, 8, 8)
    with pytest.raises(InvalidValue, match="seeds"):
        make_lr(hr, 2, kind="real", seeds=[1])
    with pytest.raises(InvalidValue, match="degradation"):
        make_lr(hr, 2, kind="blurry")


def test_bicubic_matches_pil():
    pixels = np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    ours = bicubic_downscale(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255, 4)
    pil = np.asarray(Image.fromarray(pixels).resize((9, 6), Image.Resampling.BICUBIC))
    ours = (ours.permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(ours - pil).max() <= 1


def test_bicubic_refuses_indivisible_size():
    with pytest.raises(InvalidValue, match="scale=3"):
        bicubic_downscale(torch.rand(3, 10, 10), 3)


def test_config_validation_names_the_field():
    with pytest.raises(InvalidValue, match="resize_probs"):
        RealDegradationConfig(resize_probs=(0.5, 0.5, 0.5))


def test_make_lr_real_batch_matches_one_image_at_a_time(monkeypatch):
    """The batch is degraded on a thread pool; each image must still follow its own seed."""
    import pixloom.data.degradations as degradations

    monkeypatch.setattr(degradations.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(degradations.torch, "get_num_threads", lambda: 1)  # 4 idle cores
    hr = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seeds = [11, 12, 13, 14]
    batch = make_lr(hr, 4, kind="real", seeds=seeds)
    alone = torch.stack([degrade_real(image, 4, seed) for image, seed in zip(hr, seeds)])
    assert torch.equal(batch, alone)


def test_make_lr_real_uses_threads_only_beside_torch_threads(monkeypatch):
    """Threads help only on cores torch leaves idle; on a 2-core machine they would fight."""
    import pixloom.data.degradations as degradations

    used = []
    monkeypatch.setattr(degradations.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(degradations.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(degradations, "ThreadPoolExecutor", lambda **kw: used.append(kw))
    make_lr(torch.rand(2, 3, 16, 16), 2, kind="real", seeds=[1, 2])
    assert used == []
