"""The SHAPES.md scoring rule, the built-in suites and the oracle wrapper."""

import json

import pytest
import torch

from pixloom.data.shapes.suites import SUITE_NAMES, build_suite, read_prompt_file, suite_path
from pixloom.errors import DataError
from pixloom.metrics.alignment import image_matches, judge_image, summarize_alignment
from pixloom.metrics.shapes_oracle import ParsedObject, ShapesOracle
from pixloom.models.scene_parser import SceneParser, SceneParserConfig


def obj(shape, color, size="small", position="center", center=(0.5, 0.5)):
    return ParsedObject(shape, color, size, position, center, 1.0)


RELATION = {
    "prompt": "a red circle to the left of a blue square",
    "objects": [{"shape": "circle", "color": "red"}, {"shape": "square", "color": "blue"}],
    "relations": [{"type": "left_of", "a": 0, "b": 1}],
    "category": "relation",
}


def test_relation_needs_matching_and_centres():
    left, right = (0.2, 0.5), (0.8, 0.5)
    assert image_matches(
        [obj("square", "blue", center=right), obj("circle", "red", center=left)], RELATION
    )
    assert not image_matches(
        [obj("square", "blue", center=left), obj("circle", "red", center=right)], RELATION
    )
    assert not image_matches(
        [obj("circle", "blue", center=left), obj("square", "red", center=right)], RELATION
    )


def test_count_must_be_exact_and_free_attributes_are_free():
    record = {
        "prompt": "two red stars",
        "objects": [{"shape": "star", "color": "red"}] * 2,
        "category": "count",
    }
    assert image_matches([obj("star", "red", "small"), obj("star", "red", "large")], record)
    assert not image_matches([obj("star", "red")] * 3, record)
    assert not image_matches([obj("star", "red")], record)


def test_failed_images_are_given_the_first_reason_that_applies():
    left, right = (0.2, 0.5), (0.8, 0.5)
    red_circle, blue_square = obj("circle", "red", center=left), obj("square", "blue", center=right)
    assert judge_image([red_circle, blue_square], RELATION) == "correct"
    assert judge_image([red_circle], RELATION) == "count"
    moved = [obj("circle", "red", center=right), obj("square", "blue", center=left)]
    assert judge_image(moved, RELATION) == "relation"
    swapped = [obj("circle", "blue", center=left), obj("square", "red", center=right)]
    assert judge_image(swapped, RELATION) == "binding"
    assert judge_image([red_circle, obj("star", "blue", center=right)], RELATION) == "shape"
    both = [red_circle, obj("star", "green", center=right)]
    assert judge_image(both, RELATION) == "shape+color"
    two_stars = {"prompt": "two red stars", "objects": [{"shape": "star", "color": "red"}] * 2}
    assert judge_image([obj("star", "red"), obj("circle", "red")], two_stars) == "shape"


def test_summary_has_wilson_intervals():
    records = [RELATION, {**RELATION, "category": "other"}]
    summary = summarize_alignment(records, [["correct", "count"], ["correct", "correct"]])
    assert summary["categories"]["relation"]["accuracy"] == 0.5
    assert summary["categories"]["relation"]["failures"] == {"count": 1}
    assert summary["categories"]["other"]["failures"] == {}
    low, high = summary["categories"]["other"]["ci95"]
    assert 0.3 < low < 1.0 and high == 1.0
    assert summary["overall"]["images"] == 4 and summary["images_per_prompt"] == 2


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_shipped_suites_match_their_builder(name):
    records = read_prompt_file(suite_path(name))
    assert records == build_suite(name)
    assert {record["category"] for record in records} == {name}


def test_paraphrase_words_never_appear_in_training_captions():
    from pixloom.data.registry import load_dataset

    dataset = load_dataset("shapes", split="train", resolution=16)
    vocabulary = {word for i in range(2000) for word in dataset.caption(i).split()}
    for record in build_suite("paraphrase"):
        novel = (
            set(record["prompt"].split())
            - vocabulary
            - {"a", "an", "picture", "of", "here", "dark", "background", "plus", "sign", "on"}
        )
        assert novel, record["prompt"]


def test_bad_prompt_file_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps(RELATION)
        + "\n"
        + json.dumps({"prompt": "x", "objects": [{"shape": "hexagon"}]})
        + "\n"
    )
    with pytest.raises(Exception, match=r"p.jsonl:2.objects\[0\].shape"):
        read_prompt_file(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="UTF-8"):
        read_prompt_file(path)


def test_oracle_wrapper_resizes_and_parses():
    oracle = ShapesOracle(
        SceneParser(SceneParserConfig(resolution=32, widths=(8, 16), feature_dim=16))
    )
    images = torch.rand(2, 3, 48, 48) * 2 - 1
    assert oracle.features(images).shape == (2, 16)
    probabilities = oracle.probabilities(images)
    assert torch.allclose(probabilities.sum(1), torch.ones(2))
    scenes = oracle.parse(images)
    assert len(scenes) == 2 and all(isinstance(o, ParsedObject) for scene in scenes for o in scene)
