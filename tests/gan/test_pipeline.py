"""The text-to-image pipeline and `pixloom generate`: seeds, replay, validation, R3, G1."""

import dataclasses

import pytest
import torch

from pixloom.errors import InvalidValue, PixloomError
from pixloom.io.checkpoint import save_checkpoint
from pixloom.io.images import read_png_metadata
from pixloom.models.registry import build_model
from pixloom.pipelines.text_to_image import TextToImageRequest, generate_files, replay_request
from pixloom.text.builtin import build_vocabulary

SPEC = {"name": "builtin", "vocab": build_vocabulary(["a red circle", "a blue square"]),
        "dim": 16, "layers": 1, "heads": 2, "max_length": 12}  # fmt: skip
CONFIG = {"resolution": 16, "z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 64,
          "channel_max": 8, "attention_heads": 2, "text_encoder": SPEC}  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    generator = build_model("stylegan", CONFIG)
    with torch.no_grad():  # visible noise so const-noise handling is exercised
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.1)
    path = tmp_path_factory.mktemp("t2i") / "tiny-t2i"
    save_checkpoint(path, config={"family": "stylegan", "model": CONFIG},
                    weights=generator.state_dict())  # fmt: skip
    return path


@pytest.fixture(scope="module")
def pipe(model_dir):
    import pixloom

    return pixloom.load(model_dir)


def _equal(a, b):
    return a.tobytes() == b.tobytes()


@pytest.mark.parametrize("truncation", [None, 0.5])
def test_seeds_reproduce_image_by_image(pipe, truncation):
    batch = pipe("a red circle", num_images=3, seed=5, truncation=truncation)
    assert len(batch.images) == 3 and batch.images[0].size == (16, 16)
    for i in range(3):
        alone = pipe("a red circle", num_images=1, seed=5 + i, truncation=truncation)
        assert _equal(alone.images[0], batch.images[i])
    assert not _equal(batch.images[0], batch.images[1])
    assert batch.metadata[1]["seed"] == 6 and batch.metadata[1]["model"] == "tiny-t2i"


def test_awkward_prompts(pipe):
    for prompt in ["", "   ", "x " * 900, "赤い円", "a\x00red\ncircle"]:
        assert len(pipe(prompt, num_images=1).images) == 1


def test_files_replay_and_no_overwrite(pipe, model_dir, tmp_path):
    out = tmp_path / "out"
    request = TextToImageRequest("a red circle", num_images=2, seed=3, model=str(model_dir),
                                 out=str(out), grid=True)  # fmt: skip
    paths = generate_files(request, pipe)
    assert len(paths) == 3 and all(p.parent == out for p in paths)
    metadata = read_png_metadata(paths[1])
    assert metadata["seed"] == 4 and metadata["model_sha256"] == pipe.sha256
    assert metadata["chain"][0]["request"]["prompt"] == "a red circle"
    with pytest.raises(InvalidValue, match="overwrite"):
        generate_files(request, pipe)
    replay = TextToImageRequest(from_image=str(paths[1]), out=str(tmp_path / "replay"))
    (again,) = generate_files(replay_request(replay.from_image, replay), pipe)
    from PIL import Image

    assert _equal(Image.open(again), Image.open(paths[1]))
    by_path = TextToImageRequest(from_image=str(paths[1]), model=str(model_dir))
    assert replay_request(by_path.from_image, by_path).model == str(model_dir)
    assert generate_files(dataclasses.replace(request, overwrite=True), pipe)


def test_prompt_slug_cannot_escape_out(pipe, tmp_path):
    out = tmp_path / "out"
    (path,) = generate_files(TextToImageRequest("../../etc/passwd", out=str(out)), pipe)
    assert path.parent == out


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"num_images": 0}, "num_images"),
        ({"num_images": 10_000}, "num_images"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"truncation": 0}, "truncation"),
        ({"truncation": 1.5}, "truncation"),
        ({"prompt": "x" * 5000}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_request_validation_names_field(fields, name):
    values = {"prompt": "a red circle", **fields}
    with pytest.raises(InvalidValue, match=name):
        TextToImageRequest(**values)


def test_black_output_retried_then_reported(pipe, monkeypatch):
    calls = []

    def black(prompt, z, psi, precision, best_of=1):
        calls.append(precision)
        return torch.full((len(z), 3, 16, 16), -1.0)

    monkeypatch.setattr(pipe, "_run", black)
    monkeypatch.setattr(pipe, "precision", "bf16")
    with pytest.raises(PixloomError, match="all-black"):
        pipe("a red circle", num_images=2, seed=0)
    assert calls == ["bf16", "fp32"]


def test_nan_in_bf16_recovers_in_fp32(pipe, monkeypatch):
    original = pipe._run

    def flaky(prompt, z, psi, precision, best_of=1):
        images = original(prompt, z, psi, "fp32", best_of)
        return images * float("nan") if precision == "bf16" else images

    monkeypatch.setattr(pipe, "_run", flaky)
    result = pipe("a red circle", num_images=1, seed=0, precision="bf16")
    assert result.metadata[0]["chain"][0]["precision"] == "fp32"


def test_cli_generate(model_dir, tmp_path, capsys):
    from pixloom.cli.main import main

    out = tmp_path / "cli"
    code = main(["generate", "a blue square", "-n", "2", "--seed", "1", "--model", str(model_dir),
                 "--out", str(out)])  # fmt: skip
    assert code == 0 and len(capsys.readouterr().out.split()) == 2
    assert main(["generate", "a blue square", "-n", "0", "--model", str(model_dir)]) == 2
    assert "num_images" in capsys.readouterr().err
