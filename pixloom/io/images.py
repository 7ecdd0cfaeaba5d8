"""The one hardened image decoder of pixloom, and PNG files that carry their metadata.

Every image pixloom reads goes through `decode_image` or `load_image_array`:
- the pixel count is checked from the header before any pixel is decoded (RELIABILITY I1);
- the format is decided by content and must be in ALLOWED_FORMATS (I2);
- EXIF orientation 2-8 is applied exactly once (I4);
- every mode becomes RGB (or RGBA with keep_alpha) without clipping; 16-bit data keeps its
  precision in `load_image_array` (I5);
- corrupt or truncated files raise ImageError naming the file and the reason.

Alpha handling (I5): unless `keep_alpha=True`, an image with transparency is composited over
black, i.e. each colour channel is multiplied by alpha. With `keep_alpha=True` the alpha
channel is returned untouched as a fourth channel (RGBA); images without alpha stay RGB.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from pixloom.errors import ImageError, InvalidValue

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "PIXLOOM_MAX_PIXELS"
METADATA_KEY = "pixloom"  # PNG iTXt chunk holding the JSON metadata
PARAMETERS_KEY = "parameters"  # human-readable summary, as other tools write it

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_ORIENTATION_TAG = 0x0112
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def resolve_max_pixels(max_pixels: int | None = None) -> int:
    """The pixel cap: the argument, else env PIXLOOM_MAX_PIXELS, else 64 MP."""
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV)
        if text is None:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(text)
        except ValueError:
            raise InvalidValue(MAX_PIXELS_ENV, text, "a positive integer pixel count") from None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise InvalidValue("max_pixels", max_pixels, "a positive integer pixel count")
    return max_pixels


def _read_source(source: str | Path | bytes) -> tuple[bytes, str]:
    """(file bytes, name for messages) of a path or in-memory bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from None


def _check_pixels(size: tuple[int, int], limit: int, name: str) -> None:
    width, height = size
    if width * height > limit:
        raise ImageError(
            f"{name}: {width}x{height} = {width * height} pixels exceeds the cap of {limit} "
            f"(raise it with max_pixels= or {MAX_PIXELS_ENV})"
        )


def _open_checked(data: bytes, name: str, limit: int) -> Image.Image:
    """Open from bytes by content, refuse disallowed formats and bombs, decode frame 0."""
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name}: refused as a decompression bomb ({error})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            f"{name}: not a supported image; allowed formats: {', '.join(ALLOWED_FORMATS)}"
        ) from None
    except _PIL_ERRORS as error:
        raise ImageError(f"{name}: corrupt image header ({error})") from None
    _check_pixels(image.size, limit, name)
    try:
        image.seek(0)  # GIF/TIFF: the first frame only
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name}: refused as a decompression bomb ({error})") from None
    except _PIL_ERRORS as error:
        raise ImageError(f"{name}: corrupt or truncated image ({error})") from None
    return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except _PIL_ERRORS:
        return 1


def _orient(image: Image.Image, name: str) -> Image.Image:
    """Apply EXIF orientation once; the result carries no orientation tag."""
    if _orientation(image) == 1:
        return image
    try:
        return ImageOps.exif_transpose(image)
    except _PIL_ERRORS as error:
        raise ImageError(f"{name}: cannot apply EXIF orientation ({error})") from None


def _to_float(image: Image.Image, name: str) -> np.ndarray:
    """float32 HxWxC in [0,1] (C = 3, or 4 when the image has alpha), no clipping."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(image).astype(np.float32)
        if gray.min() < 0 or gray.max() > 65535:
            raise ImageError(f"{name}: mode {mode} values outside 0-65535 are not supported")
        return np.repeat((gray / 65535.0)[..., None], 3, axis=2)
    if mode == "F":
        gray = np.asarray(image, dtype=np.float32)
        if not np.isfinite(gray).all() or gray.min() < 0 or gray.max() > 1:
            raise ImageError(f"{name}: float images must hold finite values in [0, 1]")
        return np.repeat(gray[..., None], 3, axis=2)
    has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info)
    if mode in ("RGBa", "La"):  # premultiplied: undo it through PIL's own conversion
        image = image.convert("RGBA")
    elif mode != ("RGBA" if has_alpha else "RGB"):
        image = image.convert("RGBA" if has_alpha else "RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def _finish_alpha(array: np.ndarray, keep_alpha: bool) -> np.ndarray:
    """Composite over black unless keep_alpha; RGB images stay RGB."""
    if array.shape[2] == 4 and not keep_alpha:
        return np.ascontiguousarray(array[..., :3] * array[..., 3:4])
    return array


def _png16_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, colour type, interlace) of a 16-bit colour PNG, else None."""
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth == 16 and color_type in (2, 4, 6):
        return width, height, color_type, interlace
    return None


def _unfilter_rows(raw: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG scanline filters (PNG spec section 9); raw is (H, 1 + stride) uint8."""
    height, stride = raw.shape[0], raw.shape[1] - 1
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: running sum per byte lane, wrapping mod 256
            row = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            row = line + previous
        elif kind in (3, 4):
            row = _unfilter_sequential(int(kind), line.tolist(), previous.tolist(), bpp)
        else:
            raise ValueError(f"unknown PNG filter type {kind} in row {y}")
        out[y] = row
        previous = out[y]
    return out


def _unfilter_sequential(kind: int, line: list, above: list, bpp: int) -> np.ndarray:
    """Average (3) and Paeth (4) filters depend on the byte to the left: undo them in order."""
    row = [0] * len(line)
    for i, value in enumerate(line):
        left = row[i - bpp] if i >= bpp else 0
        up = above[i]
        if kind == 3:
            row[i] = (value + ((left + up) >> 1)) & 0xFF
            continue
        upper_left = above[i - bpp] if i >= bpp else 0
        p = left + up - upper_left
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
        predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else upper_left)
        row[i] = (value + predictor) & 0xFF
    return np.array(row, dtype=np.uint8)


def _decode_png16(data: bytes, header: tuple[int, int, int, int], name: str) -> np.ndarray:
    """Decode a non-interlaced 16-bit colour PNG (Pillow would reduce it to 8 bits)."""
    width, height, color_type, _ = header
    channels = {2: 3, 4: 2, 6: 4}[color_type]
    bpp = 2 * channels
    expected = height * (1 + width * bpp)
    chunks, position = [], 8
    try:
        while position + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[position : position + 8])
            if kind == b"IDAT":
                chunks.append(data[position + 8 : position + 8 + length])
            if kind == b"IEND":
                break
            position += 12 + length
        inflater = zlib.decompressobj()
        raw = inflater.decompress(b"".join(chunks), expected)  # never inflate past the image
        if len(raw) != expected:
            raise ValueError(f"image data holds {len(raw)} bytes, expected {expected}")
        rows = _unfilter_rows(np.frombuffer(raw, np.uint8).reshape(height, 1 + width * bpp), bpp)
    except _PIL_ERRORS as error:
        raise ImageError(f"{name}: corrupt or truncated 16-bit PNG ({error})") from None
    values = rows.view(">u2").reshape(height, width, channels).astype(np.float32) / 65535.0
    if channels == 2:  # gray + alpha -> RGBA
        values = np.concatenate([np.repeat(values[..., :1], 3, axis=2), values[..., 1:]], 2)
    return values


def _orient_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 2-8 to an HxWxC array (the same maps as ImageOps.exif_transpose)."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    if orientation not in transforms:
        return array
    return np.ascontiguousarray(transforms[orientation](array))


def load_image_array(
    source: str | Path | bytes, *, keep_alpha: bool = False, max_pixels: int | None = None
) -> np.ndarray:
    """Decode to float32 HxWxC in [0,1] (C=3, or 4 with keep_alpha), keeping 16-bit precision.

    Alpha is composited over black unless keep_alpha (see the module docstring).
    """
    limit = resolve_max_pixels(max_pixels)
    data, name = _read_source(source)
    header = _png16_header(data)
    if header is not None and header[3] == 0:
        _check_pixels(header[:2], limit, name)
        array = _decode_png16(data, header, name)
        try:
            orientation = _orientation(Image.open(io.BytesIO(data), formats=("PNG",)))
        except _PIL_ERRORS:
            orientation = 1
        array = _orient_array(array, orientation)
    else:
        array = _to_float(_orient(_open_checked(data, name, limit), name), name)
    return _finish_alpha(array, keep_alpha)


def decode_image(
    source: str | Path | bytes, *, keep_alpha: bool = False, max_pixels: int | None = None
) -> Image.Image:
    """Decode to an 8-bit PIL image: RGB, or RGBA when keep_alpha and the image has alpha.

    Alpha is composited over black unless keep_alpha; 16-bit data is rounded, never clipped.
    """
    limit = resolve_max_pixels(max_pixels)
    data, name = _read_source(source)
    image = _orient(_open_checked(data, name, limit), name)
    if image.mode == "RGB" or (keep_alpha and image.mode == "RGBA"):
        return image
    array = _finish_alpha(_to_float(image, name), keep_alpha)
    pixels = np.round(array * 255.0).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGBA" if pixels.shape[2] == 4 else "RGB")


def _parameters_text(metadata: dict[str, Any]) -> str:
    """A human-readable one-line-per-field summary (prompt first) for other tools."""
    lines = [str(metadata["prompt"])] if "prompt" in metadata else []
    fields = [
        f"{key}: {value}"
        for key, value in metadata.items()
        if key != "prompt" and isinstance(value, (str, int, float, bool))
    ]
    if fields:
        lines.append(", ".join(fields))
    return "\n".join(lines)


def save_png(
    image: Image.Image,
    path: str | Path,
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a PNG with metadata as JSON in an iTXt chunk "pixloom"; refuse to overwrite (R3)."""
    path = Path(path)
    if not overwrite and path.exists():
        raise InvalidValue("path", str(path), "a file that does not exist yet (or overwrite=True)")
    info = PngImagePlugin.PngInfo()
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidValue("metadata", metadata, "a JSON-serializable dict or None")
        try:
            text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise InvalidValue("metadata", metadata, f"JSON-serializable ({error})") from None
        info.add_itxt(METADATA_KEY, text)
        info.add_itxt(PARAMETERS_KEY, _parameters_text(metadata))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            image.save(file, format="PNG", pnginfo=info)
            file.flush()
            os.fsync(file.fileno())
        if overwrite:
            os.replace(temp_name, path)
        else:  # link fails if the file appeared meanwhile: never clobber it
            try:
                os.link(temp_name, path)
            except FileExistsError:
                raise InvalidValue("path", str(path), "a file that does not exist yet") from None
            os.unlink(temp_name)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return path


def read_png_metadata(path: str | Path) -> dict[str, Any] | None:
    """The "pixloom" JSON metadata of a PNG written by save_png, or None when it has none."""
    data, name = _read_source(path)
    if not data.startswith(_PNG_SIGNATURE):
        raise ImageError(f"{name}: not a PNG file")
    try:  # opening reads the chunks before the pixels only; pixels are never decoded here
        image = Image.open(io.BytesIO(data), formats=("PNG",))
        text = image.info.get(METADATA_KEY)
    except Image.DecompressionBombError:
        text = _scan_png_text(data, METADATA_KEY)
    except _PIL_ERRORS as error:
        raise ImageError(f"{name}: corrupt PNG ({error})") from None
    if text is None:
        return None
    try:
        metadata = json.loads(str(text))
    except json.JSONDecodeError as error:
        raise ImageError(
            f"{name}: the {METADATA_KEY!r} chunk is not valid JSON ({error})"
        ) from None
    if not isinstance(metadata, dict):
        raise ImageError(f"{name}: the {METADATA_KEY!r} chunk is not a JSON object")
    return metadata


def _scan_png_text(data: bytes, key: str) -> str | None:
    """Find an uncompressed iTXt/tEXt chunk by key without PIL (used for huge images)."""
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if kind in (b"tEXt", b"iTXt") and body.startswith(key.encode("latin-1") + b"\0"):
            rest = body[len(key) + 1 :]
            if kind == b"tEXt":
                return rest.decode("latin-1")
            if rest[:1] == b"\0":  # uncompressed iTXt: flag, method, language\0, keyword\0
                _, _, tail = rest[2:].partition(b"\0")
                return tail.partition(b"\0")[2].decode("utf-8")
        if kind == b"IEND":
            break
        position += 12 + length
    return None


def append_step(metadata: dict[str, Any] | None, step: dict[str, Any]) -> dict[str, Any]:
    """A copy of metadata with `step` appended to its "chain" list (G2: steps accumulate)."""
    if not isinstance(step, dict):
        raise InvalidValue("step", step, "a dict describing the processing step")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidValue("metadata", metadata, "a dict or None")
    result = dict(metadata or {})
    chain = result.get("chain", [])
    if not isinstance(chain, list):
        raise InvalidValue("metadata.chain", chain, "a list of step dicts")
    result["chain"] = [*chain, dict(step)]
    return result
