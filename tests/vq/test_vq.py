"""The image tokenizer: quantizer round trips, straight-through gradients, dead-code restart,
shapes, config refusals, a tiny training run through the engine, and `pixloom eval tokenizer`."""

import json

import pytest
import torch

from pixloom.configs import config_to_dict
from pixloom.errors import InvalidValue
from pixloom.models.quantizers import FiniteScalarQuantizer, VectorQuantizer
from pixloom.models.registry import build_model

TINY = {"channels": 8, "codebook_size": 32, "code_dim": 4}


def test_vector_quantizer_lookup_round_trip():
    quantizer = VectorQuantizer(16, 4).eval()
    quantized = quantizer.quantize(torch.randn(2, 4, 3, 5))
    assert quantized.indices.shape == (2, 3, 5) and quantized.indices.dtype == torch.int64
    assert quantized.z.shape == (2, 4, 3, 5)
    assert torch.allclose(quantizer.lookup(quantized.indices), quantized.z, atol=1e-6)
    assert quantized.loss.dim() == 0 and quantized.loss > 0
    with pytest.raises(InvalidValue, match="indices"):
        quantizer.lookup(quantized.indices.int())


def test_fsq_indices_are_a_bijection_over_all_codes():
    quantizer = FiniteScalarQuantizer([8, 5, 5, 5])
    assert quantizer.codebook_size == 1000
    every = torch.arange(1000).reshape(1, 10, 100)
    codes = quantizer.lookup(every)  # (1, 4, 10, 100)
    assert codes.abs().max() <= 1
    assert torch.unique(codes.permute(0, 2, 3, 1).reshape(-1, 4), dim=0).shape[0] == 1000
    quantized = quantizer.quantize((torch.rand(1, 4, 200, 250) * 2 - 1) * 1.5)
    assert torch.equal(torch.unique(quantized.indices), torch.arange(1000))
    assert torch.equal(quantizer.lookup(quantized.indices), quantized.z)
    assert float(quantized.loss) == 0.0


@pytest.mark.parametrize("kind", ["vq", "fsq"])
def test_straight_through_gradients_reach_the_encoder(kind):
    tokenizer = build_model("vq", {**TINY, "resolution": 16, "quantizer": kind})
    quantized = tokenizer.encode(torch.rand(2, 3, 16, 16) * 2 - 1)
    (tokenizer.decode_latents(quantized.z).square().mean() + quantized.loss).backward()
    first = tokenizer.encoder.net[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    if kind == "vq":
        assert tokenizer.quantizer.codebook.grad.abs().sum() > 0


def test_dead_code_restart_revives_unused_codes():
    quantizer = VectorQuantizer(8, 2, restart_after=2)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[1.0, 0.0]] + [[-1.0, 0.0]] * 7))
    latents = torch.tensor([1.0, 0.2]).view(1, 2, 1, 1) + 0.1 * torch.randn(4, 2, 3, 3)
    quantizer.eval().quantize(latents)  # eval: no bookkeeping, nothing restarted
    assert int(quantizer.unused_calls.sum()) == 0
    quantizer.train()
    assert set(quantizer.quantize(latents).indices.unique().tolist()) == {0}
    quantizer.quantize(latents)  # codes 1..7 now unused for 2 calls: restarted
    codes = quantizer.codes()
    assert (codes[1:] @ torch.tensor([1.0, 0.2]) > 0.8).all()  # moved onto the latents
    assert int(quantizer.unused_calls.sum()) == 0
    assert len(quantizer.quantize(latents).indices.unique()) > 1


@pytest.mark.parametrize("downsample", [2, 4, 8])
@pytest.mark.parametrize("resolution", [32, 64])
def test_encode_decode_shapes(downsample, resolution):
    tokenizer = build_model(
        "vq", {**TINY, "resolution": resolution, "downsample": downsample}
    ).eval()
    side = resolution // downsample
    images = torch.rand(2, 3, resolution, resolution) * 2 - 1
    quantized = tokenizer.encode(images)
    assert tokenizer.grid_size == side and tokenizer.codebook_size == 32
    assert quantized.indices.shape == (2, side, side) and quantized.z.shape == (2, 4, side, side)
    decoded = tokenizer.decode(quantized.indices)
    assert decoded.shape == images.shape and decoded.abs().max() <= 1
    assert tokenizer(images, None, None).shape == images.shape


def test_fsq_tokenizer_and_bad_configs_are_refused():
    tokenizer = build_model("vq", {"channels": 8, "quantizer": "fsq", "fsq_levels": [5, 3]})
    assert tokenizer.codebook_size == 15
    with pytest.raises(InvalidValue, match="model.downsample"):
        build_model("vq", {"downsample": 3})
    with pytest.raises(InvalidValue, match="channel_mult"):
        build_model("vq", {"downsample": 8, "channel_mult": [1, 2]})
    with pytest.raises(InvalidValue, match="quantizer"):
        build_model("vq", {"quantizer": "rvq"})
    with pytest.raises(InvalidValue, match="indices"):
        tokenizer.decode(torch.full((1, 8, 8), 15))
    with pytest.raises(InvalidValue, match="img"):
        tokenizer.encode(torch.zeros(1, 3, 30, 30))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_vq_run):
    options = {"model_config": TINY, "lr": 3e-3, "adversarial_start": 20}
    return tiny_vq_run(tmp_path_factory.mktemp("vq") / "run", options, steps=30, log_every=1,
                       sample_every=30, ema_decay=0.9)  # fmt: skip


def test_training_reduces_loss_and_checkpoint_loads(trained):
    from pixloom.models.loading import load_model

    result, out = trained
    assert result.step == 30 and result.model is not None
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    l1 = [r["ae/l1"] for r in records if "ae/l1" in r]
    assert sum(l1[-5:]) / 5 < 0.8 * sum(l1[:5]) / 5
    assert all(0 < r["ae/codebook_usage"] <= 1 for r in records if "ae/codebook_usage" in r)
    assert records[5]["d/loss"] == 0.0 and "ae/adversarial" in records[-1]  # starts at 20
    assert (out / "samples" / "step-0000030.png").exists()
    tokenizer, checkpoint = load_model(result.model)
    assert checkpoint.family == "vq" and tokenizer.grid_size == 4
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    assert tokenizer.decode(tokenizer.encode(images).indices).shape == images.shape


def _save_tiny_oracle(path):
    from pixloom.io.checkpoint import save_checkpoint
    from pixloom.models.scene_parser import SceneParser, SceneParserConfig

    oracle = SceneParserConfig(resolution=16, widths=(8, 16), pooled_side=4, feature_dim=16)
    save_checkpoint(path, config={"family": "scene-parser", "model": config_to_dict(oracle)},
                    weights=SceneParser(oracle).state_dict())  # fmt: skip
    return path


def test_eval_tokenizer_cli(trained, tmp_path, capsys):
    from pixloom.cli.main import main

    _save_tiny_oracle(tmp_path / "oracle")
    out = tmp_path / "report.json"
    code = main(["eval", "tokenizer", "--model", str(trained[0].model), "--data", "shapes",
                 "-n", "24", "--oracle", str(tmp_path / "oracle"), "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "psnr" in printed and "codebook_usage" in printed
    report = json.loads(out.read_text())
    figures = {figure["name"]: figure["value"] for figure in report["figures"]}
    assert 5 < figures["psnr"] < 60 and figures["fid"] >= 0
    assert 0 < figures["codebook_usage"] <= 1 and 1 <= figures["perplexity"] <= 32
    assert 0 <= figures["scene_agreement"] <= 1  # the shapes oracle parses scenes


def test_alignment_scores_renders_through_a_tokenizer(trained, tmp_path, capsys):
    from pixloom.cli.main import main
    from pixloom.io.checkpoint import load_checkpoint

    oracle, out = _save_tiny_oracle(tmp_path / "oracle"), tmp_path / "report.json"
    code = main(["eval", "alignment", "--prompts", "single", "--images-per-prompt", "1",
                 "--resolution", "16", "--tokenizer", str(trained[0].model),
                 "--oracle", str(oracle), "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "renders_through_tokenizer:" in capsys.readouterr().out
    report = json.loads(out.read_text())
    details = report["details"]
    assert details["renders_through_tokenizer"]["overall"]["images"] == 64
    assert details["protocol"]["tokenizer"]["sha256"] == load_checkpoint(trained[0].model).sha256
    names = [figure["name"] for figure in report["figures"]]
    assert "alignment_renders_through_tokenizer_overall" in names


def test_round_trip_keeps_each_prompt_s_images_together():
    from types import SimpleNamespace

    from PIL import Image

    from pixloom.evaluation.alignment import round_trip

    identity = SimpleNamespace(encode=lambda x: SimpleNamespace(indices=x), decode=lambda x, p: x)
    groups = [[Image.new("RGB", (8, 8), (10 * i, 20 * j, 30)) for j in range(n)]
              for i, n in enumerate((2, 1, 3))]  # fmt: skip
    back = round_trip(
        identity, groups, ["a", "b", "c"], batch=4
    )  # a batch splits the second group from the third
    assert [len(group) for group in back] == [2, 1, 3]
    for before, after in zip(groups, back):
        assert [image.tobytes() for image in before] == [image.tobytes() for image in after]


def test_a_token_model_names_its_own_tokenizer_and_other_families_are_refused(tmp_path):
    from pixloom.models.loading import load_image_tokenizer, resolve_checkpoint

    tokenizer, config, checkpoint = load_image_tokenizer(resolve_checkpoint("shapes-ar"))
    assert checkpoint.family == "token-ar" and config["codebook_size"] == 512
    assert tokenizer.encode(torch.zeros(1, 3, 32, 32)).indices.shape == (1, 8, 8)
    with pytest.raises(InvalidValue, match="tokenizer=.*not family 'scene-parser'"):
        load_image_tokenizer(_save_tiny_oracle(tmp_path / "oracle"))


def test_scene_agreement_counts_reconstructions_read_as_their_originals():
    from types import SimpleNamespace

    from pixloom.evaluation.reconstruction import _reconstruct_all

    class Oracle:  # reads one object whose colour is the sign of the image's mean
        def features(self, images):
            return images.flatten(1)[:, :4]

        def parse(self, images):
            return [[SimpleNamespace(shape="circle", color="red" if float(x.mean()) > 0 else "blue",
                                     size="small", position="center")] for x in images]  # fmt: skip

    images = torch.cat([torch.full((3, 3, 8, 8), 0.5), torch.full((1, 3, 8, 8), -0.5)])
    dataset = [{"image": image} for image in images]
    flip_first = SimpleNamespace(
        encode=lambda x: SimpleNamespace(indices=x),
        decode=lambda x, prompts: torch.cat(
            [-x[:1], x[1:]]
        ),  # the first reconstruction changes colour
    )
    measured = _reconstruct_all(flip_first, dataset, 4, Oracle(), torch.device("cpu"))
    assert measured["agree"] == [False, True, True, True]


@pytest.mark.parametrize(
    "name", ["shapes-vq", "digits-vq", "shapes-vq4096", "shapes-vq16", "shapes-vq16-flat"]
)
def test_presets_parse_and_build(name):
    from pixloom.configs import config_from_dict
    from pixloom.data.registry import DatasetInfo
    from pixloom.training.config import TrainConfig
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.vq import VqTask, VqTaskOptions

    config = config_from_dict(TrainConfig, load_preset(name))
    options = config_from_dict(VqTaskOptions, config.task_options, where="task_options")
    task = VqTask(options, DatasetInfo(name=config.data, resolution=config.resolution))
    assert config.task == "vq" and task.tokenizer.grid_size == (16 if "vq16" in name else 8)
    assert [phase.name for phase in task.phases()] == ["ae", "d"]


def test_decoder_preset_fine_tunes_the_shapes_tokenizer_decoder_alone():
    from pixloom.configs import config_from_dict
    from pixloom.training.config import TrainConfig
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.vq import VqTaskOptions

    config = config_from_dict(TrainConfig, load_preset("shapes-vq-decoder"))
    options = config_from_dict(VqTaskOptions, config.task_options, where="task_options")
    assert options.decoder_only and options.init_from == load_preset("shapes-vq")["out"]
    assert options.adversarial_weight == 0 and config.resolution == 32
    second = config_from_dict(TrainConfig, load_preset("shapes-vq-decoder2"))
    again = config_from_dict(VqTaskOptions, second.task_options, where="task_options")
    assert again.decoder_only and again.init_from == config.out and again.lr < options.lr


def test_decoder_only_fine_tune_keeps_every_code(trained, tmp_path, tiny_vq_run):
    from pixloom.io.checkpoint import load_checkpoint

    source = trained[0].model
    options = {"init_from": str(source), "decoder_only": True, "lr": 3e-3,
               "adversarial_weight": 0.0}  # fmt: skip
    result, _ = tiny_vq_run(tmp_path / "ft", options, steps=6, ema_decay=0.5)
    before, after = load_checkpoint(source), load_checkpoint(result.model)
    assert after.model_config == before.model_config
    for name, tensor in after.weights.items():
        if name.startswith("decoder."):
            continue
        assert torch.equal(tensor, before.weights[name]), name  # encoder, codebook, counters
    assert any(
        not torch.equal(after.weights[n], before.weights[n])
        for n in after.weights
        if n.startswith("decoder.")
    )


@pytest.mark.parametrize(
    "options,field",
    [
        ({"decoder_only": True}, "task_options.decoder_only"),
        (
            {"init_from": "SOURCE", "model_config": {"codebook_size": 64}},
            "task_options.model_config.codebook_size",
        ),
        ({"init_from": "SOURCE", "model_config": {}, "resolution": 32}, "resolution"),
    ],
)
def test_fine_tune_options_are_checked_against_the_source(trained, options, field):
    from types import SimpleNamespace

    from pixloom.training.tasks.vq import make_vq_task

    options = dict(options)
    resolution = options.pop("resolution", 16)
    if options.get("init_from") == "SOURCE":
        options["init_from"] = str(trained[0].model)
    with pytest.raises(InvalidValue) as error:
        make_vq_task(options, SimpleNamespace(resolution=resolution))
    assert error.value.field == field


def test_decoder3_preset_starts_from_the_tokenizer_shapes_ar_was_trained_with():
    from pixloom.configs import config_from_dict
    from pixloom.data.registry import DatasetInfo
    from pixloom.models.loading import load_image_tokenizer, resolve_checkpoint
    from pixloom.training.config import TrainConfig
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.vq import VqTask, VqTaskOptions

    config = config_from_dict(TrainConfig, load_preset("shapes-vq-decoder3"))
    options = config_from_dict(VqTaskOptions, config.task_options, where="task_options")
    assert options.decoder_only and options.init_from == load_preset("shapes-ar-continue4")["out"]
    assert options.adversarial_weight > 0 and options.adversarial_start == 0
    options.init_from = "shapes-ar"  # the same encoder and codebook, in a fresh clone too
    task = VqTask(options, DatasetInfo(name=config.data, resolution=config.resolution))
    shipped, _, _ = load_image_tokenizer(resolve_checkpoint("shapes-ar"))
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(task.tokenizer.encode(images).indices, shipped.encode(images).indices)
