"""The super-resolution evaluation protocol of the SR literature, with bicubic beside it.

For every HR image in a folder (e.g. Set5): crop to a multiple of `scale` from the top-left
corner, downscale with PIL bicubic, upscale with the method under test, and score PSNR and
SSIM on RGB and on BT.601 Y with `scale` border pixels cropped. The same run always scores
PIL bicubic upscaling as the baseline, so a method's gain is read off one table.

Note: the papers' tables (e.g. SwinIR Table 2) downscale with MATLAB's imresize; PIL's
antialiased bicubic is close but not identical, which is why bicubic is rerun here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from pixloom.errors import DataError, InvalidValue, require
from pixloom.metrics.quality import image_to_array, psnr, ssim

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
METRIC_NAMES = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def score_pair(reference: Image.Image, test: Image.Image, *, border: int) -> dict[str, float]:
    """PSNR and SSIM on RGB and on Y between two same-size RGB images, border pixels cropped."""
    ref, out = image_to_array(reference), image_to_array(test)
    return {
        "psnr_rgb": psnr(ref, out, border=border),
        "ssim_rgb": ssim(ref, out, border=border),
        "psnr_y": psnr(ref, out, border=border, on_y=True),
        "ssim_y": ssim(ref, out, border=border, on_y=True),
    }


def bicubic_upscale(image: Image.Image, scale: int) -> Image.Image:
    """The baseline: PIL bicubic interpolation by an integer factor."""
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.BICUBIC)


def hr_files(hr_dir: Path) -> list[Path]:
    """The image files directly inside hr_dir, sorted by name; refuses an empty folder."""
    if not hr_dir.is_dir():
        raise DataError(f"hr_dir {hr_dir} is not a directory")
    files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"hr_dir {hr_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def protocol_pair(hr: Image.Image, scale: int) -> tuple[Image.Image, Image.Image]:
    """(HR cropped top-left to a multiple of scale, its PIL bicubic downscale): the LR input."""
    width, height = hr.width - hr.width % scale, hr.height - hr.height % scale
    hr = hr.crop((0, 0, width, height))
    return hr, hr.resize((width // scale, height // scale), Image.Resampling.BICUBIC)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric mean over images."""
    return {name: sum(row[name] for row in rows) / len(rows) for name in METRIC_NAMES}


def _upscale_checked(upscale, low: Image.Image, scale: int, expected: tuple[int, int], name: str):
    """Run the method under test and refuse an output of the wrong size or mode."""
    result = upscale(low, scale)
    if not isinstance(result, Image.Image) or result.size != expected or result.mode != "RGB":
        shown = (getattr(result, "mode", None), getattr(result, "size", None))
        raise InvalidValue(
            f"upscale ({name}) output", shown, f"an RGB PIL image of size {expected}"
        )
    return result


def evaluate_sr(
    upscale: Callable[[Image.Image, int], Image.Image],
    hr_dir: str | Path,
    scale: int,
    *,
    name: str,
) -> dict:
    """Score an upscaler on a folder of HR images against bicubic in the same run.

    Args:
        upscale: (low-resolution RGB image, scale) -> RGB image exactly `scale` times larger.
        hr_dir: folder of high-resolution images (read with pixloom.io.images.decode_image).
        scale: integer upscale factor; also the border cropped before scoring.
        name: the method's name in the result.

    Returns:
        {"protocol": {...}, "images": [{"file", name: metrics, "bicubic": metrics}],
         "mean": {name: metrics, "bicubic": metrics}} with metrics = psnr/ssim on rgb and y.
    """
    from pixloom.io.images import decode_image  # io layer; imported when a folder is read

    require(isinstance(scale, int) and 2 <= scale <= 8, "scale", scale, "an integer in [2, 8]")
    require(bool(name) and name != "bicubic", "name", name, "a non-empty name other than 'bicubic'")
    rows = []
    for path in hr_files(Path(hr_dir)):
        image = decode_image(path)
        require(
            min(image.size) // scale >= 11,  # the LR side of protocol_pair's crop
            "hr_dir image",
            f"{path.name} {image.width}x{image.height}",
            f"at least {11 * scale}x{11 * scale} pixels at scale {scale}",
        )
        hr, low = protocol_pair(image, scale)
        output = _upscale_checked(upscale, low, scale, hr.size, name)
        rows.append(
            {
                "file": path.name,
                name: score_pair(hr, output, border=scale),
                "bicubic": score_pair(hr, bicubic_upscale(low, scale), border=scale),
            }
        )
    return {
        "protocol": {
            "hr_dir": str(hr_dir),
            "num_images": len(rows),
            "scale": scale,
            "hr_crop": "top-left crop to a multiple of scale",
            "downscale": "PIL bicubic (antialiased)",
            "border": scale,
            "y_channel": "BT.601, 16-235",
            "ssim": "Wang et al. 2004, 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03",
            "baseline": "PIL bicubic upscale",
        },
        "images": rows,
        "mean": {
            name: _mean([row[name] for row in rows]),
            "bicubic": _mean([row["bicubic"] for row in rows]),
        },
    }
