"""PSNR and SSIM on RGB and BT.601 Y, checked against scikit-image and hand formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pixloom.errors import InvalidValue
from pixloom.metrics.quality import image_to_array, psnr, rgb_to_y, ssim


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:37, 0:45] / 40.0
    reference = np.stack([np.sin(3 * x) ** 2, y, (x + y) / 2], axis=-1).clip(0, 1)
    test = (reference + rng.normal(0, 0.05, reference.shape)).clip(0, 1)
    return reference, test


def _skimage_ssim(a: np.ndarray, b: np.ndarray, **options) -> float:
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        **options,
    )


def test_ssim_matches_skimage_on_rgb_and_y_with_border(pair):
    reference, test = pair
    expected_rgb = _skimage_ssim(reference * 255, test * 255, channel_axis=-1)
    assert ssim(reference, test) == pytest.approx(expected_rgb, abs=1e-4)
    cropped = (slice(3, -3), slice(3, -3))
    expected_y = _skimage_ssim(rgb_to_y(reference)[cropped], rgb_to_y(test)[cropped])
    assert ssim(reference, test, border=3, on_y=True) == pytest.approx(expected_y, abs=1e-4)


def test_psnr_matches_skimage_and_the_definition(pair):
    reference, test = pair
    expected = peak_signal_noise_ratio(reference * 255, test * 255, data_range=255)
    assert psnr(reference, test) == pytest.approx(expected, abs=1e-9)
    y_ref, y_test = rgb_to_y(reference)[2:-2, 2:-2], rgb_to_y(test)[2:-2, 2:-2]
    by_hand = 10 * math.log10(255**2 / np.mean((y_ref - y_test) ** 2))
    assert psnr(reference, test, border=2, on_y=True) == pytest.approx(by_hand, abs=1e-9)


def test_luma_range_and_identical_images():
    black, white = np.zeros((12, 12, 3)), np.ones((12, 12, 3))
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0)
    assert psnr(white, white) == math.inf
    assert ssim(white, white) == pytest.approx(1.0)


def test_image_to_array_keeps_16_bit_precision():
    grey = Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16))
    assert image_to_array(grey)[0, 0, 0] == pytest.approx(1000 / 65535)
    rgb = Image.fromarray(np.full((4, 4, 3), 255, dtype=np.uint8))
    assert image_to_array(rgb).max() == 1.0
    with pytest.raises(InvalidValue, match="image.mode"):
        image_to_array(Image.new("CMYK", (4, 4)))


def test_quality_refuses_bad_pairs(pair):
    reference, test = pair
    with pytest.raises(InvalidValue, match="test"):
        psnr(reference, test[:-1])
    with pytest.raises(InvalidValue, match=r"values in \[0, 1\]"):
        psnr(reference * 255, test * 255)
    with pytest.raises(InvalidValue, match="border"):
        ssim(reference, test, border=19)
    with pytest.raises(InvalidValue, match="SSIM window"):
        ssim(reference, test, border=14)
