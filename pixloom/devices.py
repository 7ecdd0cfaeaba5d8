"""Device and precision selection: CUDA when present, bf16 + channels_last on capable CPUs.

On CPUs with AMX or AVX512-BF16, bf16 autocast with channels_last runs many times faster
than fp32; elsewhere pixloom stays in fp32. Master weights and losses stay fp32 either way.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from pixloom.errors import InvalidValue

PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU advertises AMX-BF16 or AVX512-BF16 (Linux /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map "auto" to CUDA when available, else CPU; validate anything else."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidValue("device", device, "'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValue("device", device, "CUDA is not available here; use 'cpu' or 'auto'")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """Map "auto" to bf16 on CUDA with bf16 support or on AMX/AVX512-BF16 CPUs, else fp32."""
    if precision not in PRECISIONS:
        raise InvalidValue("precision", precision, f"one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the device when precision is "bf16", else a no-op context."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(precision: str) -> torch.memory_format:
    """channels_last where bf16 kernels want it, contiguous otherwise."""
    return torch.channels_last if precision == "bf16" else torch.contiguous_format
