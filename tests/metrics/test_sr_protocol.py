"""The SR protocol on synthetic images; Set5 bicubic figures when the data is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixloom.errors import DataError, InvalidValue
from pixloom.metrics.sr_protocol import bicubic_upscale, evaluate_sr

SET5 = Path(__file__).resolve().parents[3] / "shared" / "data" / "set5"


@pytest.fixture
def hr_dir(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:53, 0:47]
    for index in range(2):
        pixels = np.stack([x * 5, y * 4, (x + y + 40 * index) % 256], axis=-1).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"image{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_evaluate_sr_scores_method_and_bicubic_side_by_side(hr_dir):
    result = evaluate_sr(bicubic_upscale, hr_dir, 2, name="same-as-bicubic")
    assert [row["file"] for row in result["images"]] == ["image0.png", "image1.png"]
    assert result["protocol"]["border"] == 2 and result["protocol"]["num_images"] == 2
    assert result["mean"]["same-as-bicubic"] == result["mean"]["bicubic"]
    assert set(result["mean"]["bicubic"]) == {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"}


def test_a_worse_method_scores_below_bicubic(hr_dir):
    def nearest(image: Image.Image, scale: int) -> Image.Image:
        size = (image.width * scale, image.height * scale)
        return image.resize(size, Image.Resampling.NEAREST)

    result = evaluate_sr(nearest, hr_dir, 3, name="nearest")
    assert result["mean"]["nearest"]["psnr_y"] < result["mean"]["bicubic"]["psnr_y"]


def test_evaluate_sr_refuses_wrong_output_and_empty_folder(hr_dir, tmp_path_factory):
    with pytest.raises(InvalidValue, match="upscale"):
        evaluate_sr(lambda image, scale: image, hr_dir, 2, name="identity")
    with pytest.raises(InvalidValue, match="scale"):
        evaluate_sr(bicubic_upscale, hr_dir, 1, name="x")
    with pytest.raises(DataError, match="no images"):
        evaluate_sr(bicubic_upscale, tmp_path_factory.mktemp("empty"), 2, name="x")


@pytest.mark.slow
@pytest.mark.skipif(not SET5.is_dir(), reason="Set5 not present at ../shared/data/set5")
@pytest.mark.parametrize("scale, expected_psnr_y", [(2, 33.67), (4, 28.43)])
def test_set5_bicubic_matches_published_protocol(scale, expected_psnr_y):
    result = evaluate_sr(bicubic_upscale, SET5, scale, name="pil-bicubic")
    assert result["mean"]["bicubic"]["psnr_y"] == pytest.approx(expected_psnr_y, abs=0.01)


def test_images_too_small_for_the_protocol_are_refused_by_name(tmp_path):
    """An LR side under 11 pixels (SSIM's window) is refused, naming the file and its size."""
    Image.fromarray(np.zeros((21, 40, 3), np.uint8)).save(tmp_path / "small.png")  # 21 // 2 = 10
    with pytest.raises(InvalidValue, match=r"small.png 40x21"):
        evaluate_sr(bicubic_upscale, tmp_path, 2, name="bicubic-again")
    Image.fromarray(np.zeros((22, 40, 3), np.uint8)).save(tmp_path / "small.png")
    assert evaluate_sr(bicubic_upscale, tmp_path, 2, name="bicubic-again")["images"]
