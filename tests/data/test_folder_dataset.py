"""folder:PATH datasets: caption conventions, labels, splits, and bad input (I3, I6)."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from pixloom.data.registry import load_dataset
from pixloom.errors import DataError, InvalidValue


def _image(path, color=(200, 30, 30), size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_metadata_jsonl_captions_and_class_labels(tmp_path):
    _image(tmp_path / "cats" / "a.png")
    _image(tmp_path / "dogs" / "b.jpg", color=(0, 0, 255))
    lines = [
        {"file_name": "cats/a.png", "text": "a red cat"},
        {"file_name": "dogs/b.jpg", "text": "a blue dog"},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    dataset = load_dataset(f"folder:{tmp_path}", resolution=8)
    assert dataset.info.class_names == ("cats", "dogs") and dataset.info.has_captions
    items = [dataset[i] for i in range(len(dataset))]
    assert [(x["caption"], x["label"]) for x in items] == [("a red cat", 0), ("a blue dog", 1)]
    assert items[0]["image"].shape == (3, 8, 8)
    assert items[0]["image"][0].mean() > 0.5 and items[1]["image"][2].mean() > 0.9


def test_metadata_csv_txt_captions_and_splits(tmp_path):
    _image(tmp_path / "train" / "x.png")
    (tmp_path / "train" / "metadata.csv").write_text('file_name,text\nx.png,"a square, red"\n')
    _image(tmp_path / "test" / "y.png")
    (tmp_path / "test" / "y.txt").write_text("caption from a text file\n", encoding="utf-8")
    assert load_dataset(f"folder:{tmp_path}", resolution=8)[0]["caption"] == "a square, red"
    test = load_dataset(f"folder:{tmp_path}", split="test", resolution=8)
    assert test[0]["caption"] == "caption from a text file" and test[0]["label"] == -1
    flat = tmp_path / "flat"
    _image(flat / "z.png", size=(40, 20))
    with pytest.raises(InvalidValue, match="split"):
        load_dataset(f"folder:{flat}", split="test")
    cropped = load_dataset(f"folder:{flat}", mode="random_crop", resolution=16)
    assert cropped[0]["image"].shape == (3, 16, 16)


def test_i3_corrupt_file_skipped_reported_and_training_continues(tmp_path, caplog):
    _image(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(data[:40])
    (tmp_path / "fake.jpg").write_text("not an image")
    dataset = load_dataset(f"folder:{tmp_path}", resolution=8)
    with caplog.at_level(logging.WARNING):
        items = [dataset[i] for i in range(len(dataset))]
    assert all(item["image"].shape == (3, 8, 8) for item in items)
    skipped = dict(dataset.skipped)
    assert set(skipped) == {str(tmp_path / "bad.png"), str(tmp_path / "fake.jpg")}
    assert "bad.png" in caplog.text and "skipped 2 file(s)" in dataset.skip_summary()
    checked = load_dataset(f"folder:{tmp_path}", resolution=8, check_files=True)
    assert len(checked) == 1 and len(checked.skipped) == 2
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "bad.png").write_bytes(data[:40])
    with pytest.raises(DataError, match="no image could be decoded"):
        load_dataset(f"folder:{only_bad}", resolution=8)[0]


def test_i1_bomb_in_folder_is_skipped(tmp_path):
    _image(tmp_path / "good.png")
    _image(tmp_path / "big.png", size=(200, 200))
    dataset = load_dataset(f"folder:{tmp_path}", resolution=8, max_pixels=10_000)
    assert dataset[0]["image"].shape == (3, 8, 8)
    assert "exceeds the cap" in dict(dataset.skipped)[str(tmp_path / "big.png")]


def test_i6_empty_and_imageless_folders(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty"):
        load_dataset(f"folder:{empty}")
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "readme.md").write_text("hi")
    with pytest.raises(DataError, match="no images among 1 files"):
        load_dataset(f"folder:{texts}")


def test_i6_captions_naming_missing_images_and_bad_encodings(tmp_path, caplog):
    _image(tmp_path / "a.png")
    records = [
        {"file_name": "a.png", "text": "present"},
        {"file_name": "gone.png", "text": "absent"},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in records))
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(f"folder:{tmp_path}", resolution=8)
    assert len(dataset) == 1 and dataset[0]["caption"] == "present"
    assert "gone.png" in caplog.text and "gone.png" in dataset.skip_summary()
    (tmp_path / "metadata.jsonl").write_bytes(b'{"file_name": "a.png", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"metadata.jsonl: not UTF-8 text \(byte"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png"}\n')
    with pytest.raises(DataError, match="line 1"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "metadata.jsonl").unlink()
    _image(tmp_path / "b.png")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe broken")
    dataset = load_dataset(f"folder:{tmp_path}", resolution=8)
    assert [p.name for p in dataset.files] == ["a.png"]
    assert "not UTF-8" in dict(dataset.skipped)[str(tmp_path / "b.png")]


def test_sixteen_bit_folder_images_keep_range(tmp_path):
    values = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    tmp_path.mkdir(exist_ok=True)
    Image.fromarray(values).save(tmp_path / "deep.png")
    item = load_dataset(f"folder:{tmp_path}", resolution=8)[0]
    assert item["image"].min() == -1.0 and item["image"].max() == 1.0


def test_decoded_images_are_cached_within_the_budget(tmp_path, monkeypatch):
    import torch

    import pixloom.data.folder as folder_module

    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    calls = []
    real = folder_module.load_image_array
    monkeypatch.setattr(
        folder_module, "load_image_array", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    cached = load_dataset(f"folder:{tmp_path}", resolution=16, mode="random_crop")
    first = cached[0]["image"].clone()
    cached.set_epoch(1)
    again = cached[0]["image"]
    assert len(calls) == 1  # decoded once, cropped every time
    assert first.shape == again.shape == (3, 16, 16)
    assert torch.equal(again, cached[0]["image"])  # the cached pixels are not changed by use
    uncached = load_dataset(f"folder:{tmp_path}", resolution=16, cache_mb=0)
    uncached[1]
    uncached[1]
    assert len(calls) == 3


def test_random_crop_scale_shows_the_images_smaller_and_rejects_bad_ranges(tmp_path):
    stripes = np.zeros((40, 60, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: a native crop keeps them, a 2x shrink averages them
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    native = load_dataset(f"folder:{tmp_path}", mode="random_crop", resolution=16)[0]["image"]
    halved = load_dataset(f"folder:{tmp_path}", mode="random_crop", resolution=16, scale=[2, 2])
    shrunk = halved[0]["image"]
    assert native.std() > 0.9 and shrunk.shape == (3, 16, 16) and shrunk.std() < 0.1
    capped = load_dataset(f"folder:{tmp_path}", mode="random_crop", resolution=16, scale=[1, 9])
    assert capped[0]["image"].shape == (3, 16, 16)  # the window is capped at the 40-pixel side
    for scale in ([0.5, 1], [2, 1], [1]):
        with pytest.raises(InvalidValue, match="scale"):
            load_dataset(f"folder:{tmp_path}", mode="random_crop", resolution=16, scale=scale)
    with pytest.raises(InvalidValue, match="random_crop"):
        load_dataset(f"folder:{tmp_path}", resolution=16, scale=[1, 2])


def test_area_sampling_draws_large_images_as_often_as_their_pixels(tmp_path):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a_small.png")
    noise = np.random.default_rng(0).integers(1, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "b_large.png")  # 6 times the small one's area
    (tmp_path / "c_broken.png").write_bytes(b"not a png")
    by_image = load_dataset(f"folder:{tmp_path}", mode="random_crop", resolution=16)
    by_area = load_dataset(f"folder:{tmp_path}", mode="random_crop", resolution=16, sample="area")
    assert len(by_image) == 3 and len(by_area) == 1 + 6 + 1
    assert by_area.items == [0, 1, 1, 1, 1, 1, 1, 2]
    large = [by_area[i]["image"] for i in range(1, 7)]
    assert all(float(image.min()) > -1.0 for image in large)  # all six crop b_large (no black)
    assert len({image.numpy().tobytes() for image in large}) == 6  # each item its own crop
    assert by_area[7]["image"].shape == (3, 16, 16)  # the broken file is skipped, not a crash
    assert (by_image[1]["image"] == by_area[1]["image"]).all()  # item 1: the same seed
    with pytest.raises(InvalidValue, match="sample"):
        load_dataset(f"folder:{tmp_path}", mode="random_crop", resolution=16, sample="pixels")
    with pytest.raises(InvalidValue, match="random_crop"):
        load_dataset(f"folder:{tmp_path}", resolution=16, sample="area")
