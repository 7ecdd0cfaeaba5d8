"""Safe loading of weights files: RELIABILITY.md C1-C5, each with a file the test crafts."""

import io
import json
import os
import pickle
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pixloom.errors import UnsafeFileError
from pixloom.io import safe_files
from pixloom.io.safe_files import detect_format, read_safetensors_header, read_tensor_file


class _Payload:
    """Unpickling this runs `touch canary`."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def _safetensors_bytes(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


# ----------------------------------------------------------------------------- C1


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("name", ["model.pt", "model.ckpt", "pytorch_model.bin"])
def test_c1_malicious_pickle_is_refused_and_never_runs(tmp_path, protocol, name):
    canary = tmp_path / "canary"
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"w": _Payload(canary)}, protocol=protocol))
    for allow_pickle in (False, True):  # weights_only=True refuses it even after opting in
        with pytest.raises(UnsafeFileError, match="refused"):
            read_tensor_file(path, allow_pickle=allow_pickle)
    assert not canary.exists()


def test_c1_malicious_torch_zip_is_refused_and_never_runs(tmp_path):
    canary = tmp_path / "canary"
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2), "evil": _Payload(canary)}, path)
    with pytest.raises(UnsafeFileError, match="never unpickles by default"):
        read_tensor_file(path)
    with pytest.raises(UnsafeFileError, match="weights_only"):
        read_tensor_file(path, allow_pickle=True)
    assert not canary.exists()


# ----------------------------------------------------------------------------- C2


def test_c2_pickle_renamed_safetensors_is_refused(tmp_path):
    canary = tmp_path / "canary"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(_Payload(canary), protocol=4))
    assert detect_format(path) == "pickle"
    with pytest.raises(UnsafeFileError, match="pickle"):
        read_tensor_file(path)
    assert not canary.exists()


def test_c2_format_comes_from_magic_bytes_not_extension(tmp_path):
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    save_file({"w": tensor}, str(tmp_path / "weights.pt"))
    np.save(tmp_path / "array.npy", tensor.numpy())
    os.replace(tmp_path / "array.npy", tmp_path / "array.safetensors")
    np.savez(tmp_path / "arrays.npz", w=tensor.numpy(), b=np.arange(3))
    os.replace(tmp_path / "arrays.npz", tmp_path / "arrays.bin")
    torch.save({"w": tensor}, tmp_path / "legacy.safetensors")
    assert detect_format(tmp_path / "weights.pt") == "safetensors"
    assert detect_format(tmp_path / "array.safetensors") == "npy"
    assert detect_format(tmp_path / "arrays.bin") == "zip"
    assert detect_format(tmp_path / "legacy.safetensors") == "zip"
    assert torch.equal(read_tensor_file(tmp_path / "weights.pt")["w"], tensor)
    assert torch.equal(read_tensor_file(tmp_path / "array.safetensors")["array"], tensor)
    loaded = read_tensor_file(tmp_path / "arrays.bin")
    assert torch.equal(loaded["w"], tensor) and loaded["b"].tolist() == [0, 1, 2]
    (tmp_path / "notes.safetensors").write_bytes(b"hello world, not weights")
    with pytest.raises(UnsafeFileError, match="unrecognized format"):
        read_tensor_file(tmp_path / "notes.safetensors")


def test_c2_npy_with_objects_or_lying_shape_is_refused(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError, match="object arrays"):
        read_tensor_file(tmp_path / "objects.npy")
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    (tmp_path / "huge.npy").write_bytes(buffer.getvalue() + b"\0" * 16)
    with pytest.raises(UnsafeFileError, match="needs 4000000000000 bytes"):
        read_tensor_file(tmp_path / "huge.npy")


# ----------------------------------------------------------------------------- C3


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"a": _entry(), "b": _entry(offsets=(4, 12))}, 12, "overlaps"),
        ({"a": _entry(offsets=(0, 8))}, 4, "outside"),
        ({"a": _entry(shape=(3,))}, 8, "needs 12"),
        ({"a": _entry(), "b": _entry(offsets=(12, 20))}, 20, "gap"),
        ({"a": _entry(dtype="PICKLE")}, 8, "unsupported dtype"),
        ({"a": _entry(shape=(-2,))}, 8, "invalid shape"),
        ({"a": _entry()}, 16, "cover 8 bytes"),
        ({"__metadata__": {"a": 1}, "a": _entry()}, 8, "__metadata__"),
    ],
)
def test_c3_bad_safetensors_headers_are_refused(tmp_path, header, data, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_safetensors_bytes(header, b"\0" * data))
    with pytest.raises(UnsafeFileError, match=match):
        read_tensor_file(path)


def test_c3_duplicate_keys_are_refused(tmp_path):
    raw = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}'
    (tmp_path / "dup.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    with pytest.raises(UnsafeFileError, match="duplicate key"):
        read_tensor_file(tmp_path / "dup.safetensors")


@pytest.mark.parametrize(
    ("length", "match"), [(2**40, "exceeds the 104857600 cap"), (4000, "runs past")]
)
def test_c3_huge_or_overlong_header_is_refused_quickly_without_allocating(tmp_path, length, match):
    path = tmp_path / "bomb.safetensors"
    path.write_bytes(_safetensors_bytes({"a": _entry()}, b"\0" * 8, length=length))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(UnsafeFileError, match=match):
        read_tensor_file(path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 2**20


def test_c3_valid_header_is_returned(tmp_path):
    save_file({"w": torch.zeros(2, 3, dtype=torch.bfloat16)}, str(tmp_path / "ok.safetensors"))
    header = read_safetensors_header(tmp_path / "ok.safetensors")
    assert header["w"] == {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}


# ----------------------------------------------------------------------------- C4


def _zip_with_zeros(path, member, size, extra=()):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in extra:
            archive.writestr(name, data)
        with archive.open(member, "w", force_zip64=True) as stream:
            chunk = b"\0" * 2**20
            for _ in range(size // len(chunk)):
                stream.write(chunk)


@pytest.mark.parametrize(
    ("name", "member", "extra"),
    [
        ("bomb.pt", "archive/data/0", [("archive/data.pkl", b"\x80\x02}q\x00.")]),
        ("bomb.npz", "w.npy", []),
    ],
)
def test_c4_zip_bomb_is_refused_before_reading(tmp_path, name, member, extra):
    path = tmp_path / name
    _zip_with_zeros(path, member, 32 * 2**20, extra)  # 32 MiB of zeros -> ~32 KiB on disk
    assert path.stat().st_size < 2**20
    for allow_pickle in (False, True):
        with pytest.raises(UnsafeFileError, match="zip bomb"):
            read_tensor_file(path, allow_pickle=allow_pickle)


def test_c4_lying_declared_size_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "small.npz"
    np.savez(path, w=np.zeros(4, dtype=np.float32))
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 20 : central + 28] = struct.pack("<II", 0xFFFFFFF0, 0xFFFFFFF0)  # sizes
    path.write_bytes(bytes(data))
    monkeypatch.setattr(safe_files, "_memory_budget", lambda: 2**30)
    with pytest.raises(UnsafeFileError, match="over the 1073741824-byte limit"):
        read_tensor_file(path)


# ----------------------------------------------------------------------------- C5


def test_c5_torch_files_need_an_explicit_opt_in(tmp_path, monkeypatch):
    tensor = torch.randn(3, 2)
    torch.save({"model": {"w": tensor}, "epoch": 3}, tmp_path / "model.pt")
    with pytest.raises(UnsafeFileError, match="allow_pickle=True"):
        read_tensor_file(tmp_path / "model.pt")
    loaded = read_tensor_file(tmp_path / "model.pt", allow_pickle=True)
    assert list(loaded) == ["model.w"] and torch.equal(loaded["model.w"], tensor)
    monkeypatch.setenv("PIXLOOM_ALLOW_PICKLE", "1")
    assert torch.equal(read_tensor_file(tmp_path / "model.pt")["model.w"], tensor)


def test_c5_weights_only_is_always_used(tmp_path, monkeypatch):
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    monkeypatch.setattr(torch, "load", spy)
    read_tensor_file(tmp_path / "model.pt", allow_pickle=True)
    assert calls == [True]


def test_c5_old_torch_is_refused_even_with_opt_in(tmp_path, monkeypatch):
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(UnsafeFileError, match="torch >= 2.6"):
        read_tensor_file(tmp_path / "model.pt", allow_pickle=True)
