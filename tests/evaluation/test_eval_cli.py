"""`pixloom eval alignment|fid|sr` end to end on tiny oracles the tests save themselves."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixloom.cli.main import main
from pixloom.configs import config_to_dict
from pixloom.io.checkpoint import save_checkpoint
from pixloom.models.classifier import Classifier, ClassifierConfig
from pixloom.models.scene_parser import SceneParser, SceneParserConfig


@pytest.fixture(scope="module")
def tiny_shapes_oracle(tmp_path_factory):
    config = SceneParserConfig(resolution=16, widths=(8, 16), pooled_side=4, feature_dim=16)
    path = tmp_path_factory.mktemp("oracle") / "shapes-oracle"
    weights = SceneParser(config).state_dict()
    save_checkpoint(
        path, config={"family": "scene-parser", "model": config_to_dict(config)}, weights=weights
    )
    return path


@pytest.fixture(scope="module")
def tiny_digits_oracle(tmp_path_factory):
    config = ClassifierConfig(resolution=16, in_channels=3, num_classes=10, width=8, depth=2)
    path = tmp_path_factory.mktemp("oracle") / "digits-classifier"
    save_checkpoint(
        path,
        config={"family": "classifier", "model": config_to_dict(config)},
        weights=Classifier(config).state_dict(),
    )
    return path


def test_alignment_of_renders_writes_reports(tiny_shapes_oracle, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(
        [
            "eval",
            "alignment",
            "--prompts",
            "count",
            "--images-per-prompt",
            "1",
            "--oracle",
            str(tiny_shapes_oracle),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "renders:" in printed and "count" in printed
    report = json.loads(out.read_text())
    details = report["details"]
    assert details["renders"]["overall"]["images"] == 64
    assert details["protocol"]["oracle"].startswith("shapes-oracle")
    assert out.with_suffix(".html").read_text().count("<svg") >= 1


def test_alignment_scores_folder_images_by_their_metadata(tiny_shapes_oracle, tmp_path):
    from pixloom.evaluation.alignment import load_prompts, render_record
    from pixloom.io.images import save_png

    records = load_prompts("heldout")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, record in enumerate(records):
        save_png(
            render_record(record, 0, 32),
            folder / f"{i:03d}.png",
            metadata={"prompt": record["prompt"]},
        )
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                "alignment",
                "--prompts",
                "heldout",
                "--images",
                str(folder),
                "--images-per-prompt",
                "1",
                "--oracle",
                str(tiny_shapes_oracle),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["details"]["generated"]["overall"]["images"] == len(records)


def test_alignment_refuses_unknown_suite(tiny_shapes_oracle, capsys):
    assert (
        main(["eval", "alignment", "--prompts", "colours", "--oracle", str(tiny_shapes_oracle)])
        == 2
    )
    assert "prompts='colours' is invalid" in capsys.readouterr().err


def test_fid_reports_floor_with_protocol(tiny_digits_oracle, tmp_path, capsys):
    out = tmp_path / "fid.json"
    assert (
        main(
            [
                "eval",
                "fid",
                "--data",
                "digits",
                "-n",
                "40",
                "--oracle",
                str(tiny_digits_oracle),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    figures = {f["name"]: f for f in json.loads(out.read_text())["figures"]}
    assert {
        "floor_fid",
        "floor_kid",
        "floor_precision",
        "floor_recall",
        "floor_inception_score",
    } <= set(figures)
    assert figures["floor_fid"]["protocol"]["num_real"] == 40
    assert figures["floor_fid"]["protocol"]["feature_network"].startswith("digits-classifier")
    assert "floor_fid" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # identical fakes: a flat covariance
def test_class_accuracy_of_a_generator_against_its_captions(tiny_digits_oracle):
    from pixloom.data.registry import load_dataset
    from pixloom.evaluation.distribution import DistributionRequest, evaluate_distribution
    from pixloom.metrics.oracles import load_oracle

    oracle = load_oracle(str(tiny_digits_oracle))
    blank = Image.new("RGB", (32, 32))
    asked = []

    def generate(captions, seeds):
        asked.extend(zip(captions, seeds))
        return [blank] * len(captions)

    request = DistributionRequest(data="digits", model="blank", num_images=40, seed=3)
    report = evaluate_distribution(request, oracle, generate)
    figures = {figure.name: figure for figure in report.figures}
    test = load_dataset("digits", split="test")
    assert asked == [(test[i]["caption"], 3 + i) for i in range(40)]
    # every image is the same blank one, so it is right exactly for the items of its class
    predicted = int(oracle.probabilities(torch.zeros(1, 3, 32, 32) - 1).argmax())
    expected = sum(int(test[i]["label"]) == predicted for i in range(40)) / 40
    assert figures["class_accuracy"].value == pytest.approx(expected)
    low, high = figures["class_accuracy"].interval
    assert low <= expected <= high
    assert 0 <= figures["floor_class_accuracy"].value <= 1


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_class_conditional_generators_are_asked_for_labels(tiny_digits_oracle, tiny_shapes_oracle):
    from pixloom.data.registry import load_dataset
    from pixloom.errors import InvalidValue
    from pixloom.evaluation.distribution import DistributionRequest, evaluate_distribution
    from pixloom.metrics.oracles import load_oracle

    asked = []

    def generate(prompts, seeds):
        asked.extend(prompts)
        return [Image.new("RGB", (32, 32))] * len(prompts)

    request = DistributionRequest(data="digits", model="m", num_images=20, prompts="labels")
    report = evaluate_distribution(request, load_oracle(str(tiny_digits_oracle)), generate)
    test = load_dataset("digits", split="test")
    assert asked == [str(int(test[i]["label"])) for i in range(20)]
    assert "class_accuracy" in {figure.name for figure in report.figures}
    shapes = DistributionRequest(data="shapes", model="m", num_images=20, prompts="labels")
    with pytest.raises(InvalidValue, match="prompts.*shapes has no classes"):
        evaluate_distribution(shapes, load_oracle(str(tiny_shapes_oracle)), generate)
    with pytest.raises(InvalidValue, match="prompts.*'captions' or 'labels'"):
        DistributionRequest(prompts="words")


def test_fid_refuses_more_samples_than_the_split(tiny_digits_oracle, capsys):
    assert (
        main(
            ["eval", "fid", "--data", "digits", "-n", "100000", "--oracle", str(tiny_digits_oracle)]
        )
        == 2
    )
    assert "lower -n" in capsys.readouterr().err


def test_sr_eval_bicubic_matches_the_protocol(tmp_path, capsys):
    rng = np.random.default_rng(0)
    hr = tmp_path / "hr"
    hr.mkdir()
    for i in range(2):
        base = rng.random((12, 12, 3))
        image = np.kron(base, np.ones((4, 4, 1)))  # smooth-ish 48x48
        Image.fromarray((image * 255).astype(np.uint8)).save(hr / f"{i}.png")
    out = tmp_path / "sr.json"
    assert main(["eval", "sr", "--hr", str(hr), "--scale", "2", "--out", str(out)]) == 0
    means = json.loads(out.read_text())["details"]["mean"]
    assert means["bicubic (pixloom upscale)"]["psnr_y"] == pytest.approx(
        means["bicubic"]["psnr_y"], abs=1e-6
    )


def test_sr_eval_needs_an_existing_folder(tmp_path, capsys):
    assert main(["eval", "sr", "--hr", str(tmp_path / "missing"), "--scale", "2"]) == 2
    assert "hr=" in capsys.readouterr().err


def test_oracle_accuracy_runs(tiny_shapes_oracle):
    from pixloom.evaluation.oracle_accuracy import scene_parser_accuracy
    from pixloom.metrics.oracles import load_oracle

    result = scene_parser_accuracy(
        load_oracle(str(tiny_shapes_oracle)), resolution=32, count=8, artifacts=True
    )
    assert set(result) >= {"shape", "color", "size", "position", "count", "scene"}
    assert 0 <= result["scene"] <= 1


def test_scene_parser_task_trains_a_step():
    from pixloom.data.registry import load_dataset
    from pixloom.training.task import get_task

    dataset = load_dataset("shapes", resolution=16)
    task = get_task("scene-parser")(
        {"widths": [8, 16], "pooled_side": 4, "feature_dim": 16, "resolution": 16}, dataset.info
    )
    batch = {key: torch.stack([dataset[i][key] for i in range(4)]) for key in ("image", "target")}
    loss, stats = task.loss("parse", batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and 0 <= stats["color"] <= 1
    assert task.export_config()["family"] == "scene-parser"


def test_run_log_is_found_for_run_checkpoints(tmp_path):
    from pixloom.evaluation.runs import find_run_log

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "checkpoints" / "step-0000010").mkdir(parents=True)
    (run / "log.jsonl").write_text('{"step": 10, "g/loss": 1.0}\n')
    assert find_run_log(str(run / "model")) == run / "log.jsonl"
    assert find_run_log(str(run / "checkpoints" / "step-0000010")) == run / "log.jsonl"
    assert find_run_log("bicubic") is None and find_run_log(None) is None
