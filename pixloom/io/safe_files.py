"""Reading weights files without running code or exhausting memory (RELIABILITY.md C1-C5).

The format is decided by the first bytes, never by the extension. Safetensors headers are
validated here before the safetensors library sees the file (C3); zip containers (.npz,
PyTorch >= 1.6 files) have their declared sizes and compression ratios checked before any
member is read (C4); pickles are refused unless the caller opts in, and then go through
`torch.load(weights_only=True)` on torch >= 2.6 only (C1, C5; CVE-2025-32434 broke
weights_only before 2.6). The size/overlap rules mirror safetensors' own format spec.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from pixloom.errors import InvalidValue, UnsafeFileError

ALLOW_PICKLE_ENV = "PIXLOOM_ALLOW_PICKLE"
MAX_SAFETENSORS_HEADER = 100 * 2**20  # bytes; real headers are kilobytes
MAX_ZIP_ENTRIES = 100_000
MAX_ZIP_RATIO = 100  # uncompressed / compressed, checked for members above RATIO_FLOOR
ZIP_RATIO_FLOOR = 16 * 2**20
MAX_NPY_HEADER = 10_000

# safetensors dtype name -> bytes per element
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def _refuse(path: Path, reason: str) -> UnsafeFileError:
    return UnsafeFileError(f"refused {path}: {reason}")


def detect_format(path: str | Path) -> str:
    """The file's format from its magic bytes: safetensors, zip, pickle or npy."""
    path = Path(path)
    if not path.is_file():
        raise InvalidValue("path", str(path), "an existing file")
    with open(path, "rb") as file:
        head = file.read(9)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise _refuse(
        path,
        f"unrecognized format (first bytes {head[:8]!r}); supported: safetensors, .npy, .npz, "
        "and PyTorch files with allow_pickle=True. The extension is never trusted.",
    )


def _parse_json_object(raw: bytes, path: Path, what: str) -> dict:
    """json.loads that refuses duplicate keys, non-objects and pathological nesting."""

    def no_duplicates(pairs: list) -> dict:
        result = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _refuse(path, f"{what} is not valid JSON ({str(error)[:120]})") from None
    if not isinstance(value, dict):
        raise _refuse(path, f"{what} must be a JSON object")
    return value


def _check_tensor_entry(name: str, entry: Any, data_size: int, path: Path) -> tuple[int, int]:
    """Validate one header entry; return its (begin, end) data offsets."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _refuse(path, f"tensor {name!r} needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in SAFETENSORS_DTYPES:
        raise _refuse(path, f"tensor {name!r} has unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _refuse(path, f"tensor {name!r} has an invalid shape {shape!r:.80}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise _refuse(path, f"tensor {name!r} has invalid data_offsets {offsets!r:.80}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise _refuse(
            path, f"tensor {name!r} offsets [{begin}, {end}] run outside the {data_size}-byte data"
        )
    expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
    if end - begin != expected:
        raise _refuse(
            path,
            f"tensor {name!r} spans {end - begin} bytes but {dtype} x {shape} needs {expected}",
        )
    return begin, end


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """The validated header of a safetensors file: {name: {dtype, shape, data_offsets}, ...}.

    Refuses (UnsafeFileError) a header longer than the file or MAX_SAFETENSORS_HEADER, and
    tensors whose byte ranges overlap, leave gaps, run out of bounds or disagree with
    dtype x shape, reading nothing but the 8-byte length and the header itself.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise _refuse(path, f"{size} bytes is too short for a safetensors file")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > MAX_SAFETENSORS_HEADER:
            raise _refuse(
                path, f"header of {header_size} bytes exceeds the {MAX_SAFETENSORS_HEADER} cap"
            )
        if 8 + header_size > size:
            raise _refuse(path, f"header of {header_size} bytes runs past the {size}-byte file")
        header = _parse_json_object(file.read(header_size), path, "safetensors header")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _refuse(path, "__metadata__ must map strings to strings")
    data_size = size - 8 - header_size
    spans = sorted(
        (_check_tensor_entry(name, entry, data_size, path), name)
        for name, entry in header.items()
        if name != "__metadata__"
    )
    position = 0
    for (begin, end), name in spans:
        if begin != position:
            problem = "overlaps the previous tensor" if begin < position else "leaves a gap"
            raise _refuse(
                path, f"tensor {name!r} at offset {begin} {problem} (expected {position})"
            )
        position = end
    if position != data_size:
        raise _refuse(path, f"tensors cover {position} bytes but the data holds {data_size}")
    return header


def _memory_budget() -> int:
    """Half the physical memory (bytes), the most a single weights file may expand to."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


def check_zip(path: str | Path, *, max_total_bytes: int | None = None) -> list[zipfile.ZipInfo]:
    """Members of a zip whose declared sizes and ratios are safe to read (C4), else refuse.

    A member may expand by at most MAX_ZIP_RATIO once above ZIP_RATIO_FLOOR bytes, and all
    members together at most `max_total_bytes` (default: half the physical memory).
    """
    path = Path(path)
    limit = _memory_budget() if max_total_bytes is None else max_total_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise _refuse(path, f"corrupt zip container ({error})") from None
    if len(members) > MAX_ZIP_ENTRIES:
        raise _refuse(path, f"{len(members)} zip members exceed the {MAX_ZIP_ENTRIES} cap")
    total = 0
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > ZIP_RATIO_FLOOR and ratio > MAX_ZIP_RATIO:
            raise _refuse(
                path,
                f"zip member {member.filename!r} expands {ratio:.0f}x to {member.file_size} "
                f"bytes (cap {MAX_ZIP_RATIO}x): a zip bomb",
            )
        total += member.file_size
    if total > limit:
        raise _refuse(path, f"zip members expand to {total} bytes, over the {limit}-byte limit")
    return members


def _read_npy_stream(stream: IO[bytes], payload_size: int, path: Path, name: str) -> np.ndarray:
    """One .npy array from `stream` after checking its header against `payload_size` bytes."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                stream, max_header_size=MAX_NPY_HEADER
            )
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                stream, max_header_size=MAX_NPY_HEADER
            )
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as error:
        raise _refuse(path, f"{name}: invalid .npy header ({str(error)[:120]})") from None
    if dtype.hasobject:
        raise _refuse(path, f"{name}: object arrays need pickle and are never loaded")
    header_size = stream.tell()
    expected = math.prod(shape) * dtype.itemsize
    if payload_size - header_size != expected:
        raise _refuse(
            path,
            f"{name}: shape {shape} of {dtype} needs {expected} bytes, "
            f"the file holds {payload_size - header_size}",
        )
    data = stream.read(expected)
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape))
    return array.reshape(shape, order="F" if fortran else "C").copy()


def _to_tensor(array: np.ndarray, path: Path, name: str) -> torch.Tensor:
    try:
        return torch.from_numpy(np.array(array, order="C"))  # keeps 0-d arrays 0-d
    except TypeError:
        raise _refuse(path, f"{name}: numpy dtype {array.dtype} has no torch equivalent") from None


def _read_zip_tensors(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """An .npz (every member .npy) or a PyTorch zip file (needs allow_pickle)."""
    members = check_zip(path)
    if members and all(m.filename.endswith(".npy") for m in members):
        tensors = {}
        with zipfile.ZipFile(path) as archive:
            for member in members:
                with archive.open(member) as stream:
                    array = _read_npy_stream(stream, member.file_size, path, member.filename)
                tensors[member.filename[: -len(".npy")]] = _to_tensor(array, path, member.filename)
        return tensors
    if any(m.filename.endswith("data.pkl") for m in members):
        return _torch_load(path, allow_pickle)
    raise _refuse(path, "a zip that is neither an .npz nor a PyTorch file")


def _pickle_allowed(allow_pickle: bool) -> bool:
    return allow_pickle or os.environ.get(ALLOW_PICKLE_ENV, "") in ("1", "true", "yes")


def _torch_load(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=True), only with an explicit opt-in on torch >= 2.6 (C5)."""
    if not _pickle_allowed(allow_pickle):
        raise _refuse(
            path,
            "a PyTorch pickle file could run code when loaded; pixloom never unpickles by "
            f"default. If you trust it, pass allow_pickle=True or set {ALLOW_PICKLE_ENV}=1 "
            "(loaded with torch.load(weights_only=True)), or convert it to safetensors.",
        )
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 6):
        raise _refuse(
            path, f"pickle loading needs torch >= 2.6 (CVE-2025-32434), have {major}.{minor}"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except Exception as error:  # weights_only refusals arrive as UnpicklingError or RuntimeError
        raise _refuse(
            path, f"torch.load(weights_only=True) refused it: {str(error)[:200]}"
        ) from None
    return _collect_tensors(loaded, "", path)


def _collect_tensors(value: Any, prefix: str, path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a nested dict (keys joined with '.'); other leaves (epoch, ...) are not tensors."""
    if isinstance(value, torch.Tensor):
        return {prefix or "tensor": value}
    tensors: dict[str, torch.Tensor] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            tensors.update(_collect_tensors(item, f"{prefix}.{key}" if prefix else str(key), path))
    return tensors


def read_tensor_file(path: str | Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of any supported weights file (safetensors, .npy, .npz; PyTorch with opt-in).

    Args:
        path: the file; its format comes from its magic bytes, never its extension.
        allow_pickle: let PyTorch pickle files through torch.load(weights_only=True)
            (also enabled by PIXLOOM_ALLOW_PICKLE=1). Never needed for pixloom's own files.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == "safetensors":
        read_safetensors_header(path)
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if kind == "npy":
        with open(path, "rb") as stream:
            array = _read_npy_stream(stream, path.stat().st_size, path, path.name)
        return {path.stem: _to_tensor(array, path, path.name)}
    if kind == "zip":
        return _read_zip_tensors(path, allow_pickle)
    return _torch_load(path, allow_pickle)  # a raw (legacy) pickle
