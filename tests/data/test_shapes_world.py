"""The shapes world (SHAPES.md): determinism, splits, held-out pairs, captions, ground truth."""

import random
import re

import numpy as np
import pytest
import torch

from pixloom.data.registry import collate, load_dataset
from pixloom.data.shapes.captions import FUNCTION_WORDS, caption_scene, plural
from pixloom.data.shapes.dataset import scene_seed
from pixloom.data.shapes.prompts import prompt_record_to_scene, scene_to_prompt_record
from pixloom.data.shapes.render import noise_bank, render_scene
from pixloom.data.shapes.world import (
    COLORS,
    DEFAULT_HELDOUT_PAIRS,
    POSITIONS,
    SHAPES,
    SIZES,
    relation_holds,
)
from pixloom.errors import DataError, InvalidValue

VOCABULARY = (
    set(SHAPES)
    | {plural(s) for s in SHAPES}
    | set(COLORS)
    | set(SIZES)
    | {word for p in POSITIONS for word in p.split()}
    | {"left", "right", "above", "below"}
    | FUNCTION_WORDS
)
HELDOUT = {tuple(pair.split()) for pair in DEFAULT_HELDOUT_PAIRS}


def test_deterministic_per_split_and_index():
    first, second = load_dataset("shapes", resolution=16), load_dataset("shapes", resolution=16)
    for index in (0, 7, 99_999):
        a, b = first[index], second[index]
        assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"]
        assert first.scene(index) == second.scene(index)
    assert not torch.equal(first[1]["image"], first[2]["image"])


def test_splits_disjoint_and_sized_by_options():
    train = load_dataset("shapes", train_size=500, resolution=16)
    test = load_dataset("shapes", split="test", test_size=300, resolution=16)
    assert (len(train), len(test)) == (500, 300)
    train_seeds = {scene_seed(0, "train", i) for i in range(100_000)}
    assert train_seeds.isdisjoint(scene_seed(0, "test", i) for i in range(10_000))
    train_scenes = {train.scene(i) for i in range(500)}
    assert not train_scenes & {test.scene(i) for i in range(300)}
    with pytest.raises(InvalidValue, match="train_size"):
        load_dataset("shapes", train_size=0)


def test_heldout_pairs_never_in_train_images_or_captions():
    train = load_dataset("shapes", resolution=16)
    seen = set()
    for index in range(5000):
        scene = train.scene(index)
        pairs = {(obj.color, obj.shape) for obj in scene.objects}
        assert not pairs & HELDOUT, (index, pairs)
        seen |= pairs
        if index % 5 == 0:
            caption = train.caption(index, scene)
            for color, shape in HELDOUT:
                assert not re.search(rf"\b{color} (small |large )?{shape}", caption)
    assert len(seen) == len(COLORS) * len(SHAPES) - len(HELDOUT)
    test = load_dataset("shapes", split="test", resolution=16)
    test_pairs = {(o.color, o.shape) for i in range(3000) for o in test.scene(i).objects}
    assert test_pairs >= HELDOUT


def test_heldout_option_changes_the_list():
    train = load_dataset("shapes", heldout_pairs=["red circle"], resolution=16)
    pairs = {(o.color, o.shape) for i in range(2000) for o in train.scene(i).objects}
    assert ("red", "circle") not in pairs and ("yellow", "star") in pairs
    with pytest.raises(InvalidValue, match="heldout_pairs"):
        load_dataset("shapes", heldout_pairs=["crimson circle"])


def test_captions_use_only_canonical_words_and_vary():
    train = load_dataset("shapes", resolution=16)
    captions = set()
    for index in range(1500):
        caption = train.caption(index)
        assert set(caption.replace(",", "").split()) <= VOCABULARY, caption
        captions.add(caption)
    joined = " | ".join(captions)
    for phrase in ("there is", " corner", "at the top left", " and ", "left of", "three", " 2 "):
        assert phrase in joined, phrase
    train.set_epoch(1)
    assert sum(train.caption(i) != caption_scene_epoch0(i) for i in range(50)) > 10
    test = load_dataset("shapes", split="test", resolution=16)
    before = [test[i]["caption"] for i in range(20)]
    test.set_epoch(3)
    assert before == [test[i]["caption"] for i in range(20)]


def test_relation_captions_option_sets_how_often_a_relation_is_told():
    def captions(**options) -> list[str]:
        data = load_dataset("shapes", resolution=16, **options)
        return [data.caption(i) for i in range(400)]

    def relation_share(captions: list[str]) -> float:
        return sum(bool(re.search(r"left of|right of|above|below", c)) for c in captions) / 400

    default = captions()
    assert default == captions(relation_captions=0.5)  # the default draws as before
    assert relation_share(captions(relation_captions=0.0)) == 0
    assert relation_share(captions(relation_captions=0.9)) > relation_share(default) + 0.1
    with pytest.raises(InvalidValue, match="relation_captions.*a probability from 0 to 1"):
        load_dataset("shapes", resolution=16, relation_captions=1.5)


def caption_scene_epoch0(index: int) -> str:
    return load_dataset("shapes", resolution=16).caption(index)


def test_objects_inside_canvas_non_overlapping_with_true_positions():
    train = load_dataset("shapes", resolution=16)
    for index in range(2000):
        objects = train.scene(index).objects
        assert 1 <= len(objects) <= 3
        for obj in objects:
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            assert abs((x1 - x0) / SIZES[obj.size] - 0.875) < 0.1  # small ~1/6, large ~1/3
            column, row = min(int(obj.center[0] * 3), 2), min(int(obj.center[1] * 3), 2)
            assert POSITIONS[row * 3 + column] == obj.position
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                apart = a.box[2] <= b.box[0] or b.box[2] <= a.box[0]
                assert apart or a.box[3] <= b.box[1] or b.box[3] <= a.box[1]


def _nearest_color(pixel: np.ndarray) -> str:
    return min(COLORS, key=lambda name: float(np.sum((np.asarray(COLORS[name]) - pixel) ** 2)))


def test_ground_truth_agrees_with_pixels():
    test = load_dataset("shapes", split="test", resolution=64)
    for index in range(200):
        scene = test.scene(index)
        image = render_scene(scene, 64)
        covered = np.zeros((64, 64), bool)
        for obj in scene.objects:
            x, y = (int(v * 64) for v in obj.center)
            assert _nearest_color(image[y, x]) == obj.color, (index, obj)
            x0, y0, x1, y1 = (int(round(v * 64)) for v in obj.box)
            covered[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1] = True
        assert image[~covered].max() < 0.2  # dark background outside the boxes
    item = test[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1


def test_resolution_and_option_validation():
    for bad in (8, 300):
        with pytest.raises(InvalidValue, match="resolution"):
            load_dataset("shapes", resolution=bad)
    with pytest.raises(InvalidValue, match="shapes option.colour"):
        load_dataset("shapes", colour="red")
    with pytest.raises(InvalidValue, match="split"):
        load_dataset("shapes", split="validation")
    with pytest.raises(InvalidValue, match="dataset"):
        load_dataset("sprites")


def test_collate_batches_items():
    train = load_dataset("shapes", resolution=16)
    batch = collate([train[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 16, 16)
    assert len(batch["caption"]) == 4 and batch["label"].tolist() == [-1] * 4
    assert batch["index"].tolist() == [0, 1, 2, 3]


def test_prompt_records_round_trip():
    scene = load_dataset("shapes", split="test", resolution=16).scene(3)
    record = scene_to_prompt_record(scene, caption_scene(scene, random.Random(0)), "single")
    assert len(record["objects"]) == len(scene.objects) and record["category"] == "single"
    rebuilt = prompt_record_to_scene(record, random.Random(1))
    for want, got in zip(record["objects"], rebuilt.objects):
        assert all(getattr(got, key) == value for key, value in want.items())
    relation = {
        "prompt": "a small red circle to the left of a large blue square",
        "objects": [
            {"shape": "circle", "color": "red", "size": "small"},
            {"shape": "square", "color": "blue", "size": "large"},
        ],
        "relations": [{"type": "left_of", "a": 0, "b": 1}],
        "category": "relation",
    }
    for seed in range(20):
        a, b = prompt_record_to_scene(relation, random.Random(seed)).objects
        assert relation_holds(a, b, "left_of") and (a.color, b.shape) == ("red", "square")
    with pytest.raises(InvalidValue, match=r"objects\[0\].color"):
        prompt_record_to_scene({"prompt": "x", "objects": [{"color": "crimson"}]}, random.Random())
    contradiction = dict(
        relation,
        relations=[{"type": "left_of", "a": 0, "b": 1}, {"type": "right_of", "a": 0, "b": 1}],
    )
    with pytest.raises(DataError, match="no placement"):
        prompt_record_to_scene(contradiction, random.Random(0))


def test_collate_stacks_extra_tensor_keys():
    items = [
        {
            "image": torch.zeros(3, 4, 4),
            "caption": "",
            "label": 1,
            "index": i,
            "extra": torch.ones(2),
        }
        for i in range(3)
    ]
    batch = collate(items)
    assert batch["extra"].shape == (3, 2) and batch["label"].tolist() == [1, 1, 1]


def test_noise_false_renders_flat_backgrounds_and_leaves_the_objects():
    noisy = load_dataset("shapes", resolution=32, train_size=8)
    flat = load_dataset("shapes", resolution=32, train_size=8, noise=False)
    for index in range(4):
        scene = flat.scene(index)
        assert scene == noisy.scene(index) and flat.caption(index) == noisy.caption(index)
        rendered = torch.from_numpy(render_scene(scene, 32)).permute(2, 0, 1) * 2 - 1
        assert torch.equal(noisy[index]["image"], rendered)
        clean = flat[index]["image"].permute(1, 2, 0).numpy()
        background = np.isclose(clean, scene.background * 2 - 1, atol=1e-6).all(-1)
        assert background.mean() > 0.5  # one grey over most of the canvas, no texture
        noisy_background = noisy[index]["image"].permute(1, 2, 0).numpy()[background]
        assert noisy_background.std() > 0.01  # the default render has its texture there
        difference = render_scene(scene, 32) - render_scene(scene, 32, noise=False)
        assert np.abs(difference).max() <= np.abs(noise_bank(32)).max() + 1e-6  # only the texture
        assert (difference[~background] == 0).any()  # fully covered object pixels are equal
