"""Device and precision resolution."""

import pytest
import torch

from pixloom.devices import autocast, memory_format, resolve_device, resolve_precision
from pixloom.errors import InvalidValue


def test_auto_device_is_cpu_without_cuda():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"


def test_bad_device_and_precision_are_named():
    with pytest.raises(InvalidValue, match="device"):
        resolve_device("tpu:9")
    with pytest.raises(InvalidValue, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_bf16_autocast_matches_fp32_closely():
    net = torch.nn.Conv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 16, 16)
    reference = net(x)
    with autocast(torch.device("cpu"), "bf16"):
        low = net(x.to(memory_format=memory_format("bf16")))
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), reference, atol=0.05, rtol=0.05)
