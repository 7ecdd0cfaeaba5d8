"""The FID InceptionV3: layout of the pt_inception state dict, shapes, determinism, loading."""

from __future__ import annotations

import pytest
import torch

from pixloom.errors import CheckpointError, InvalidValue
from pixloom.metrics.features import ClassifierExtractor, extract
from pixloom.metrics.inception import (
    InceptionFeatures,
    InceptionV3,
    load_inception,
    load_inception_state,
)


@pytest.fixture(scope="module")
def network() -> InceptionV3:
    torch.manual_seed(0)
    return InceptionV3().eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture(scope="module")
def reference_features(network, images) -> torch.Tensor:
    return InceptionFeatures(network).features(images)


def test_state_dict_uses_pt_inception_names(network):
    state = network.state_dict()
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6b.branch7x7dbl_5.conv.weight"].shape == (192, 128, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.bn.running_var"].shape == (384,)
    assert state["fc.weight"].shape == (1008, 2048)
    assert not any(key.startswith("AuxLogits") for key in state)


def test_features_are_2048_d_deterministic_and_probabilities_sum_to_one(
    network, images, reference_features
):
    extractor = InceptionFeatures(network)
    assert isinstance(extractor, ClassifierExtractor) and extractor.resolution == 299
    assert reference_features.shape == (2, 2048) and torch.isfinite(reference_features).all()
    assert torch.equal(extractor.features(images), reference_features)
    probabilities = extract(extractor, [images[:1]], probabilities=True)
    assert probabilities.shape == (1, 1008)
    assert torch.allclose(probabilities.sum(1), torch.ones(1), atol=1e-5)


def test_extractor_refuses_images_outside_minus_one_one(network, images):
    with pytest.raises(InvalidValue, match=r"\[-1, 1\]"):
        InceptionFeatures(network).features(images * 3)


def test_load_from_safetensors_file_matches_original(network, images, reference_features, tmp_path):
    pytest.importorskip("pixloom.io.safe_files")
    from safetensors.torch import save_file

    path = tmp_path / "pt_inception.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    assert torch.equal(load_inception(path).features(images), reference_features)


def test_mismatched_state_dict_is_refused_with_the_tensor_named(network):
    state = dict(network.state_dict())
    del state["Mixed_5b.branch1x1.conv.weight"]
    with pytest.raises(CheckpointError, match="Mixed_5b.branch1x1.conv.weight"):
        load_inception_state(InceptionV3(), state, source="test")
    state = dict(network.state_dict())
    state["fc.weight"] = torch.zeros(1000, 2048)
    with pytest.raises(CheckpointError, match=r"fc.weight has shape \(1000, 2048\)"):
        load_inception_state(InceptionV3(), state, source="test")
