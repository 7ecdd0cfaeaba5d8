"""Every registered dataset loads items of the agreed shape, range and type."""

import pytest
import torch

from pixloom.data.registry import dataset_names, load_dataset, options_fields
from pixloom.errors import InvalidValue


@pytest.mark.parametrize("name", ["shapes", "digits", "photos", "faces"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_items_have_the_agreed_form(name, split):
    dataset = load_dataset(name, split=split, resolution=16)
    assert dataset.info.resolution == 16 and dataset.info.channels == 3
    for index in (0, len(dataset) - 1):
        item = dataset[index]
        image = item["image"]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert -1.0 <= image.min() <= image.max() <= 1.0 and image.std() > 0
        assert isinstance(item["caption"], str) and item["index"] == index
        assert -1 <= item["label"] < max(dataset.info.num_classes, 1)
        assert bool(item["caption"]) == dataset.info.has_captions
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_registry_lists_every_dataset():
    assert dataset_names() == ["shapes", "digits", "photos", "faces", "folder:PATH"]
    assert "heldout_pairs" in options_fields("shapes")
    with pytest.raises(InvalidValue, match="takes no argument"):
        load_dataset("digits:/tmp")
    with pytest.raises(InvalidValue, match="folder:PATH"):
        load_dataset("folder:")


def test_digits_split_labels_and_captions():
    train, test = (
        load_dataset("digits", resolution=8),
        load_dataset("digits", split="test", resolution=8),
    )
    assert (len(train), len(test)) == (1438, 359)
    assert train.info.num_classes == 10 and train.info.class_names[7] == "7"
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    for index in range(30):
        item = train[index]
        label = item["label"]
        assert str(label) in item["caption"] or words[label] in item["caption"]
    assert len({train[i]["caption"].split()[0] for i in range(60)}) > 2
    with pytest.raises(InvalidValue, match="resolution"):
        load_dataset("digits", resolution=4)


def test_photos_crops_seeded_by_epoch_and_fixed_for_test():
    train = load_dataset("photos", resolution=32, length=24)
    first = train[3]["image"]
    assert torch.equal(first, load_dataset("photos", resolution=32, length=24)[3]["image"])
    train.set_epoch(1)
    assert not torch.equal(first, train[3]["image"])
    test = load_dataset("photos", split="test", resolution=32)
    before = test[5]["image"]
    test.set_epoch(4)
    assert torch.equal(before, test[5]["image"])
    train_names = {load_dataset("photos", resolution=16)[i]["caption"] for i in range(10)}
    assert "a photo of a cup of coffee" not in train_names
    zoomed = load_dataset("photos", resolution=16, scale=[2.0, 4.0])[0]["image"]
    assert zoomed.shape == (3, 16, 16)
    with pytest.raises(InvalidValue, match="scale"):
        load_dataset("photos", scale=[0.5, 1.0])
    with pytest.raises(InvalidValue, match="resolution"):
        load_dataset("photos", resolution=512)
