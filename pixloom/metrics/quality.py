"""Full-reference image quality: PSNR and SSIM on RGB or on the BT.601 luma channel.

Inputs are numpy arrays [H, W, 3] (or [H, W]) with values in [0, 1], e.g. from
`image_to_array`. Both metrics work on the 0-255 scale in float64, the convention of
the super-resolution literature (Y in 16-235 from ITU-R BT.601, `border` pixels cropped
on every side, usually the upscale factor), so figures compare with published tables.
"""

from __future__ import annotations

import math

import numpy as np

from pixloom.errors import require

# SSIM constants and window of Wang et al. 2004, "Image Quality Assessment: From Error
# Visibility to Structural Similarity": 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0
# ITU-R BT.601 luma weights of R, G, B in [0, 1] on the 16-235 scale (Y = 16 + weights . RGB).
BT601_LUMA = (65.481, 128.553, 24.966)


def image_to_array(image) -> np.ndarray:
    """A PIL image (RGB, L or 16-bit grey) -> float64 [H, W, 3] in [0, 1], keeping 16-bit precision."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image, dtype=np.float64) / 65535.0  # [H, W]
        return np.repeat(grey[..., None], 3, axis=-1)
    require(
        image.mode in ("RGB", "L"),
        "image.mode",
        image.mode,
        "RGB, L or 16-bit grey (decode with pixloom.io.images.decode_image, which gives RGB)",
    )
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 16-235 scale: Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in [0, 1]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    require(rgb.ndim == 3 and rgb.shape[-1] == 3, "image", rgb.shape, "an RGB array [H, W, 3]")
    return 16.0 + rgb @ np.array(BT601_LUMA)  # [H, W]


def _prepare(reference, test, *, border: int, on_y: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair, convert to Y or keep RGB, scale to 0-255 and crop the border -> [h, w, c]."""
    reference = np.asarray(reference, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    require(
        reference.shape == test.shape,
        "test",
        test.shape,
        f"the reference's shape {reference.shape} (resize before comparing)",
    )
    require(reference.ndim in (2, 3), "reference", reference.shape, "[H, W] or [H, W, C]")
    require(border >= 0, "border", border, "an integer >= 0")
    height, width = reference.shape[:2]
    require(
        2 * border < min(height, width),
        "border",
        border,
        f"less than half the image size ({height}x{width})",
    )
    for field, array in (("reference", reference), ("test", test)):
        low, high = float(array.min()), float(array.max())
        require(
            low >= -1e-6 and high <= 1 + 1e-6,
            field,
            f"values in [{low:.4g}, {high:.4g}]",
            "values in [0, 1]",
        )
    if on_y:
        reference, test = rgb_to_y(reference), rgb_to_y(test)
    else:
        reference, test = reference * DATA_RANGE, test * DATA_RANGE
    if reference.ndim == 2:
        reference, test = reference[..., None], test[..., None]
    if border:
        reference = reference[border:-border, border:-border]
        test = test[border:-border, border:-border]
    return reference, test


def psnr(reference, test, *, border: int = 0, on_y: bool = False) -> float:
    """Peak signal-to-noise ratio in dB (peak 255), float64; inf for identical images."""
    reference, test = _prepare(reference, test, border=border, on_y=on_y)
    mse = float(np.mean((reference - test) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


def _gaussian_window() -> np.ndarray:
    """Normalized 1-D Gaussian taps [11] (sigma 1.5); the 2-D window is their outer product."""
    offsets = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
    taps = np.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return taps / taps.sum()


def _filter_valid(channel: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filtering of [H, W] -> [H - 10, W - 10]."""
    rows = np.lib.stride_tricks.sliding_window_view(channel, len(taps), axis=0) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, len(taps), axis=1) @ taps


def _ssim_channel(x: np.ndarray, y: np.ndarray, taps: np.ndarray) -> float:
    """Mean SSIM of one channel pair [H, W] over every full window position."""
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x**2
    var_y = _filter_valid(y * y, taps) - mu_y**2
    cov_xy = _filter_valid(x * y, taps) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(numerator / denominator))


def ssim(reference, test, *, border: int = 0, on_y: bool = False) -> float:
    """Structural similarity (Wang et al. 2004), Gaussian window, averaged over channels.

    Statistics are taken over every window that lies fully inside the (border-cropped)
    image, which equals scikit-image's structural_similarity(gaussian_weights=True,
    use_sample_covariance=False, data_range=255) and BasicSR's calculate_ssim.
    """
    reference, test = _prepare(reference, test, border=border, on_y=on_y)
    height, width = reference.shape[:2]
    require(
        min(height, width) >= SSIM_WINDOW,
        "reference",
        f"{height}x{width} after cropping the border",
        f"at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels for the SSIM window",
    )
    taps = _gaussian_window()
    channels = reference.shape[2]
    return (
        sum(_ssim_channel(reference[..., c], test[..., c], taps) for c in range(channels))
        / channels
    )
