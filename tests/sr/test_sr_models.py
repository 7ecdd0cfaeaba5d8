"""SR networks: every family at every scale runs forward and backward on a tiny input."""

import pytest
import torch

from pixloom.errors import InvalidValue
from pixloom.models.registry import build_model, model_families

TINY = {
    "espcn": {"features": 8, "hidden": 4},
    "edsr": {"features": 8, "num_blocks": 2},
    "rrdb": {"features": 8, "growth": 4, "num_blocks": 1},
}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("family", sorted(TINY))
def test_forward_backward_shape_and_finite(family, scale):
    net = build_model(family, {**TINY[family], "scale": scale})
    x = torch.rand(2, 3, 7, 5, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 3, 7 * scale, 5 * scale)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_families_registered():
    assert {"espcn", "edsr", "rrdb", "sr_patch_discriminator"} <= set(model_families())


def test_discriminator_gives_patch_logits():
    net = build_model("sr_patch_discriminator", {"features": 8, "num_layers": 2})
    logits = net(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 1, 8, 8) and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", sorted(TINY))
def test_bad_scale_is_refused_by_name(family):
    with pytest.raises(InvalidValue, match="scale=5"):
        build_model(family, {"scale": 5})


def test_unknown_config_field_is_refused():
    with pytest.raises(InvalidValue, match="model.blocks"):
        build_model("edsr", {"blocks": 3})
