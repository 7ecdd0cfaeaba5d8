"""Hardened decoding (RELIABILITY I1, I2, I4, I5), PNG metadata (R3, G2) and grids."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from pixloom.errors import ImageError, InvalidValue
from pixloom.io import images
from pixloom.io.grid import make_grid
from pixloom.io.images import (
    append_step,
    decode_image,
    load_image_array,
    read_png_metadata,
    save_png,
)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _crafted_png(width: int, height: int, depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose header claims width x height but whose data is a few bytes (a bomb)."""
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    data = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def _filter_row(kind: int, row: bytes, above: bytes, bpp: int) -> bytes:
    """PNG filter encoding (spec section 9), written independently of the decoder."""
    out = bytearray()
    for i, value in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = above[i]
        c = above[i - bpp] if i >= bpp else 0
        if kind == 0:
            predictor = 0
        elif kind == 1:
            predictor = a
        elif kind == 2:
            predictor = b
        elif kind == 3:
            predictor = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out.append((value - predictor) & 0xFF)
    return bytes(out)


def _png16(values: np.ndarray, exif: bytes | None = None) -> bytes:
    """Encode uint16 HxWxC (C=3 or 4) as a 16-bit PNG, cycling through all five filters."""
    height, width, channels = values.shape
    color_type = {3: 2, 4: 6}[channels]
    bpp = 2 * channels
    rows = values.astype(">u2").reshape(height, -1).view(np.uint8)
    raw, above = bytearray(), bytes(width * bpp)
    for y in range(height):
        row = rows[y].tobytes()
        kind = y % 5
        raw += bytes([kind]) + _filter_row(kind, row, above, bpp)
        above = row
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    chunks = _chunk(b"IHDR", header)
    if exif is not None:
        chunks += _chunk(b"eXIf", exif)
    chunks += _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _asymmetric() -> Image.Image:
    """A 3x2 image whose 6 pixels all differ, so every orientation is distinguishable."""
    pixels = np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 14
    return Image.fromarray(pixels, mode="RGB")


# I1 ---------------------------------------------------------------------------------------


def test_i1_huge_png_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_crafted_png(20000, 20000))
    start = time.perf_counter()
    with pytest.raises(ImageError, match="bomb.png"):
        decode_image(path)
    with pytest.raises(ImageError, match="exceeds the cap|bomb"):
        load_image_array(path)
    assert time.perf_counter() - start < 2.0


def test_i1_sixteen_bit_bomb_refused_before_inflating():
    with pytest.raises(ImageError, match="exceeds the cap"):
        load_image_array(_crafted_png(20000, 20000, depth=16, color_type=6))


def test_i1_pil_own_bomb_error_is_an_image_error():
    # A cap above PIL's own limit: PIL refuses first, and that is mapped to ImageError.
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(_crafted_png(20000, 20000), max_pixels=10**10)


def test_i1_cap_configurable_by_argument_and_environment(monkeypatch):
    data = _encoded(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match="10000 pixels exceeds the cap of 5000"):
        decode_image(data, max_pixels=5000)
    monkeypatch.setenv("PIXLOOM_MAX_PIXELS", "5000")
    with pytest.raises(ImageError, match="cap of 5000"):
        load_image_array(data)
    monkeypatch.setenv("PIXLOOM_MAX_PIXELS", "lots")
    with pytest.raises(InvalidValue, match="PIXLOOM_MAX_PIXELS"):
        decode_image(data)
    with pytest.raises(InvalidValue, match="max_pixels"):
        decode_image(data, max_pixels=0)


# I2 ---------------------------------------------------------------------------------------


def test_i2_format_decided_by_content_and_allowlisted(tmp_path):
    disguised = tmp_path / "photo.jpg"
    disguised.write_bytes(_encoded(_asymmetric(), "PNG"))
    assert decode_image(disguised).size == (3, 2)
    for fmt in ("JPEG", "WEBP", "BMP", "TIFF"):
        assert decode_image(_encoded(_asymmetric(), fmt)).mode == "RGB"
    for fmt in ("ICO", "TGA", "PPM"):  # Pillow decodes these, pixloom does not
        with pytest.raises(ImageError, match="not a supported image"):
            decode_image(_encoded(Image.new("RGB", (16, 16)), fmt))
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match="notes.png"):
        decode_image(text)


def test_i2_gif_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    data = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(data).getpixel((0, 0)) == (255, 0, 0)


def test_corrupt_and_truncated_name_the_file(tmp_path):
    data = _encoded(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG"
    )
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png.*(truncated|corrupt)"):
        load_image_array(path)
    with pytest.raises(ImageError, match="no such file"):
        decode_image(tmp_path / "missing.png")
    broken16 = bytearray(_png16(np.zeros((4, 4, 3), np.uint16)))
    broken16[-20:-12] = b"\xff" * 8  # damage the compressed data
    with pytest.raises(ImageError, match="16-bit PNG"):
        load_image_array(bytes(broken16))


# I4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(2, 9))
def test_i4_exif_orientation_applied_exactly_once(orientation):
    original = _asymmetric()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encoded(original, "PNG", exif=exif.tobytes())
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }[orientation]
    expected = np.asarray(original.transpose(method))
    decoded = decode_image(data)
    assert np.array_equal(np.asarray(decoded), expected)
    assert decoded.getexif().get(0x0112, 1) == 1  # the tag is gone: never applied twice
    again = decode_image(_encoded(decoded, "PNG", exif=decoded.getexif().tobytes()))
    assert np.array_equal(np.asarray(again), expected)
    array = load_image_array(data)
    assert np.allclose(array, expected / 255.0)
    # The 16-bit path orients with its own code: it must agree with Pillow's.
    original16 = np.asarray(original).astype(np.uint16) * 257
    array16 = load_image_array(_png16(original16, exif=exif.tobytes()))
    assert np.allclose(array16, expected / 255.0)


# I5 ---------------------------------------------------------------------------------------


def test_i5_sixteen_bit_gray_keeps_precision_without_clipping():
    values = np.array([[0, 1, 32768, 65535]], dtype=np.uint16)
    data = _encoded(Image.fromarray(values), "PNG")
    array = load_image_array(data)
    assert array.shape == (1, 4, 3) and array.dtype == np.float32
    assert np.allclose(array[0, :, 0], values[0] / 65535.0, atol=1e-7)
    assert array[0, 1, 0] > 0  # 1/65535 survives: no 8-bit rounding
    assert list(np.asarray(decode_image(data))[0, :, 0]) == [0, 0, 128, 255]


def test_i5_sixteen_bit_color_png_all_filters():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 65536, size=(7, 5, 4), dtype=np.uint16)
    rgba = load_image_array(_png16(values), keep_alpha=True)
    assert np.allclose(rgba, values / 65535.0, atol=1e-7)
    rgb = load_image_array(_png16(values))
    assert np.allclose(rgb, values[..., :3] / 65535.0 * (values[..., 3:] / 65535.0), atol=1e-6)
    assert np.allclose(load_image_array(_png16(values[..., :3])), values[..., :3] / 65535.0)


def test_i5_alpha_composited_over_black_or_kept():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[1, :, 3] = 0, 255, 128
    data = _encoded(Image.fromarray(rgba, mode="RGBA"), "PNG")
    rgb = np.asarray(decode_image(data))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [200, 200, 200]
    assert rgb[1, 0, 0] == round(200 * 128 / 255)
    kept = decode_image(data, keep_alpha=True)
    assert kept.mode == "RGBA" and np.array_equal(np.asarray(kept), rgba)
    assert load_image_array(data, keep_alpha=True).shape == (2, 2, 4)
    la = Image.fromarray(rgba[..., [0, 3]], mode="LA")
    assert np.array_equal(np.asarray(decode_image(_encoded(la, "PNG"))), rgb)
    assert decode_image(_encoded(_asymmetric(), "PNG"), keep_alpha=True).mode == "RGB"


def test_i5_palette_transparency_and_cmyk():
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    data = _encoded(palette, "PNG", transparency=0)
    assert np.asarray(decode_image(data)).tolist() == [[[0, 0, 0], [0, 255, 0]]]
    assert decode_image(data, keep_alpha=True).getpixel((0, 0)) == (255, 0, 0, 0)
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    for fmt in ("JPEG", "TIFF"):
        red = decode_image(_encoded(cmyk, fmt))
        assert red.mode == "RGB"
        r, g, b = red.getpixel((1, 1))
        assert r > 240 and g < 15 and b < 15


# PNG metadata (R3, G2) and grids -----------------------------------------------------------


def test_png_metadata_round_trip_chain_and_no_overwrite(tmp_path):
    path = tmp_path / "out.png"
    metadata = append_step({"prompt": "two red circles", "seed": 7}, {"step": "generate"})
    save_png(_asymmetric(), path, metadata=metadata)
    assert read_png_metadata(path) == metadata
    assert "two red circles" in Image.open(path).info[images.PARAMETERS_KEY]
    with pytest.raises(InvalidValue, match="path"):
        save_png(_asymmetric(), path, metadata={})
    upscaled = append_step(read_png_metadata(path), {"step": "upscale", "scale": 2})
    save_png(_asymmetric(), path, metadata=upscaled, overwrite=True)
    chain = read_png_metadata(path)["chain"]
    assert [step["step"] for step in chain] == ["generate", "upscale"]
    plain = tmp_path / "plain.png"
    _asymmetric().save(plain)
    assert read_png_metadata(plain) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "plain.png"]
    with pytest.raises(InvalidValue, match="metadata"):
        save_png(_asymmetric(), tmp_path / "x.png", metadata={"bad": float("nan")})


def test_make_grid_layout_and_captions():
    tiles = [Image.new("RGB", (32, 32), (255, 0, 0)) for _ in range(5)]
    grid = make_grid(tiles, captions=["a caption that is long enough to wrap"] * 5, columns=3)
    assert grid.width == 3 * 36 + 4 and grid.height > 2 * 36
    assert make_grid(tiles).size == (3 * 36 + 4, 2 * 36 + 4)
    with pytest.raises(InvalidValue, match="captions"):
        make_grid(tiles, captions=["one"])
