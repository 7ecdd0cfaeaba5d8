"""Upscale a file or a folder of files into an output folder (the `pixloom upscale` job).

Outputs are PNGs named after their inputs (photo.jpg -> OUT/photo.png), written only inside
the output folder and never over an existing file unless `overwrite` (RELIABILITY R3). The
input's pixloom PNG metadata is kept with the upscale step appended to its chain (G2).
Inputs read as 16-bit are written as 16-bit PNGs (colour type 0/2/4/6, depth 16); PIL cannot
write 16-bit RGB, so those files are encoded here with zlib.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixloom.errors import DataError, ImageError, InvalidValue, PixloomError
from pixloom.io.images import (
    METADATA_KEY,
    append_step,
    load_image_array,
    read_png_metadata,
    save_png,
)
from pixloom.pipelines.upscale import UpscalePipeline, UpscaleRequest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass
class UpscaleSummary:
    """What an upscale job wrote and which inputs it skipped (with the reason)."""

    written: list[Path]
    skipped: list[tuple[str, str]]


def list_inputs(source: Path) -> list[Path]:
    """The image file itself, or the image files directly inside a folder (sorted)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InvalidValue("input", str(source), "an existing image file or folder")
    files = sorted(
        p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(f"input folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def plan_outputs(files: list[Path], out: Path, overwrite: bool) -> dict[Path, Path]:
    """input -> out/STEM.png; refuses clashing stems and existing files unless overwrite."""
    targets: dict[Path, Path] = {}
    seen: dict[str, Path] = {}
    for file in files:
        name = Path(file.name).stem + ".png"  # a bare name: nothing can escape `out`
        if name in seen:
            raise InvalidValue(
                "input", str(file), f"a unique name; {seen[name].name} also becomes {name}"
            )
        seen[name] = file
        target = out / name
        if target.exists() and not overwrite:
            raise InvalidValue(
                "overwrite", False, f"True to replace {target}, or another --out folder"
            )
        targets[file] = target
    return targets


def source_traits(path: Path) -> tuple[bool, bool]:
    """(16-bit, grayscale) of an image file, read from its header only."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
        depth, colour_type = head[24], head[25]
        return depth == 16, colour_type in (0, 4)
    try:
        with Image.open(path) as image:  # lazy: reads the header, decodes no pixels
            mode = image.mode
    except (OSError, ValueError) as error:
        raise ImageError(f"{path}: cannot read the image header ({error})") from None
    return mode.startswith("I;16") or mode == "I", mode in _GRAY_MODES


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png16(array: np.ndarray, metadata: dict | None) -> bytes:
    """PNG bytes of a float HxWxC array (C = 1..4) at 16 bits per sample, metadata as iTXt."""
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    samples = np.round(array.clip(0, 1) * 65535).astype(">u2").reshape(height, -1)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), samples.view(np.uint8)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", header)]
    if metadata is not None:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode("utf-8")
        chunks.append(_png_chunk(b"iTXt", METADATA_KEY.encode() + b"\0\0\0\0\0" + text))
    chunks.append(_png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)))  # filter 0 per row
    return _PNG_SIGNATURE + b"".join(chunks) + _png_chunk(b"IEND", b"")


def write_new_file(path: Path, data: bytes, overwrite: bool) -> None:
    """Write atomically (temp + fsync + rename); without overwrite never replace a file."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # fails if the file appeared meanwhile
            except FileExistsError:
                raise InvalidValue("overwrite", False, f"True to replace {path}") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _input_metadata(path: Path) -> dict | None:
    """The pixloom metadata of a PNG input (None for other formats or none written)."""
    with open(path, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return None
    return read_png_metadata(path)


def upscale_file(
    pipe: UpscalePipeline, request: UpscaleRequest, source: Path, target: Path
) -> Path:
    """Upscale one file to `target`, keeping alpha, grayscale, 16-bit depth and metadata."""
    sixteen_bit, gray = source_traits(source)
    array = load_image_array(source, keep_alpha=True)  # (H, W, 3 or 4) in [0, 1]
    if gray:  # three equal channels: keep one (plus alpha)
        array = np.concatenate([array[..., :1], array[..., 3:]], axis=2)
    result = pipe(
        array,
        tile=request.tile,
        tile_overlap=request.tile_overlap,
        outscale=request.outscale,
        self_ensemble=request.self_ensemble,
    )
    step = {**result.metadata[0], "source": source.name, "request": dataclasses.asdict(request)}
    metadata = append_step(_input_metadata(source), step)
    if sixteen_bit:
        write_new_file(target, encode_png16(result.arrays[0], metadata), request.overwrite)
    else:
        save_png(result.images[0], target, metadata=metadata, overwrite=request.overwrite)
    return target


def upscale_files(request: UpscaleRequest, pipe: UpscalePipeline | None = None) -> UpscaleSummary:
    """Run an upscale request over its file or folder; unreadable files are skipped and listed."""
    source = Path(request.input)
    files = list_inputs(source)
    out = Path(request.out)
    targets = plan_outputs(files, out, request.overwrite)
    if pipe is None:
        pipe = UpscalePipeline(
            request.model, scale=request.scale, device=request.device, precision=request.precision
        )
    out.mkdir(parents=True, exist_ok=True)
    summary = UpscaleSummary([], [])
    for file, target in targets.items():
        try:
            summary.written.append(upscale_file(pipe, request, file, target))
        except ImageError as error:  # a bad file in a folder must not stop the others
            if source.is_file():
                raise
            summary.skipped.append((str(file), str(error)))
    if not summary.written:
        raise PixloomError(f"no image could be upscaled: {summary.skipped}")
    return summary
