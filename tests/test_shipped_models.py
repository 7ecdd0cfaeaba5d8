"""Every checkpoint shipped in pixloom/weights: verified, small, described by a model card, and
buildable; the shipped token models draw an image from a prompt."""

from pathlib import Path

import numpy as np
import pytest

import pixloom
from pixloom.api import load_model
from pixloom.models.loading import resolve_checkpoint, shipped_models
from pixloom.weights import weights_root

CARDS = Path(__file__).resolve().parents[1] / "docs" / "models"
SHIPPED = shipped_models()


def test_the_expected_models_are_shipped():
    expected = {
        "shapes-t2i",
        "shapes-ar",
        "shapes-maskgit",
        "digits-gan",
        "digits-gan-class",
        "digits-ar",
        "edsr-x4",
    }
    assert expected <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_verifies_is_small_and_has_a_card(name):
    size = (weights_root() / name / "model.safetensors").stat().st_size
    assert size < 20 * 2**20, f"{name} is {size / 2**20:.1f} MiB"
    # every file's sha256 is checked against the manifest
    model, checkpoint = load_model(resolve_checkpoint(name))
    assert not model.training and checkpoint.family
    cards = [card for card in CARDS.glob("*.md") if f"`{name}`" in card.read_text()]
    assert cards, f"no model card in docs/models names `{name}`"


@pytest.mark.parametrize("name", ["shapes-ar", "shapes-maskgit"])
def test_shipped_token_models_draw_and_replay(name):
    pipe = pixloom.load(name)
    first = pipe("a red circle", num_images=1, seed=5, steps=2 if "maskgit" in name else None)
    again = pipe("a red circle", num_images=1, seed=5, steps=2 if "maskgit" in name else None)
    image = np.asarray(first.images[0])
    assert image.shape == (32, 32, 3) and image.std() > 0
    assert np.array_equal(image, np.asarray(again.images[0]))
