"""The text-conditioned tokenizer decoder: config, decode contract, fine-tune, export, evals."""

import pytest
import torch

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.errors import InvalidValue
from pixloom.models.registry import build_model
from pixloom.models.vq import VqConfig
from pixloom.text.builtin import build_vocabulary

VOCAB = build_vocabulary(["a red circle", "two blue squares", "a green star above a square"])
TEXT = {"name": "builtin", "vocab": VOCAB, "dim": 16, "layers": 1, "heads": 2, "max_length": 12}
VQ = {"resolution": 16, "downsample": 4, "channels": 8, "codebook_size": 16, "code_dim": 4}
FULL = config_to_dict(config_from_dict(VqConfig, VQ))  # as a trained checkpoint stores it


def _tokenizer(**fields):
    torch.manual_seed(0)
    return build_model("vq", {**VQ, **fields}).eval()


def test_config_refuses_other_encoders_and_bad_heads():
    with pytest.raises(InvalidValue) as error:
        _tokenizer(text_encoder={"name": "minilm"})
    assert error.value.field == "model.text_encoder"
    with pytest.raises(InvalidValue) as error:
        _tokenizer(text_encoder=TEXT, text_heads=3)  # the decoder's first width is 16
    assert error.value.field == "model.text_heads"


def test_a_conditioned_decoder_needs_one_prompt_per_image_and_reads_it():
    from pixloom.models.vq import Upsample

    tokenizer = _tokenizer(text_encoder=TEXT)
    upsamplings = [
        i for i, layer in enumerate(tokenizer.decoder.net) if isinstance(layer, Upsample)
    ]
    assert tokenizer.text_conditioned  # at the token grid and after the first upsampling:
    assert set(tokenizer.decoder.cross) == {"1", str(upsamplings[0])}
    for block in tokenizer.decoder.cross.values():  # nonzero outputs, so prompts matter
        torch.nn.init.normal_(block.out.weight, std=0.5)
    codes = torch.randint(0, 16, (2, 4, 4))
    with pytest.raises(InvalidValue, match="one prompt per image") as error:
        tokenizer.decode(codes)
    assert error.value.field == "prompts"
    with pytest.raises(InvalidValue, match="one prompt per image"):
        tokenizer.decode(codes, ["a red circle"])
    red = tokenizer.decode(codes, ["a red circle"] * 2)
    blue = tokenizer.decode(codes, ["two blue squares"] * 2)
    assert red.shape == (2, 3, 16, 16) and not torch.allclose(red, blue)
    assert tokenizer.decode(codes, ["", "an unknown word"]).isfinite().all()  # R2: [CLS]/[UNK]
    plain = _tokenizer()
    assert not plain.text_conditioned  # an unconditioned decoder ignores prompts
    assert torch.equal(plain.decode(codes), plain.decode(codes, ["a red circle"] * 2))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from pixloom.io.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("vq") / "plain"
    save_checkpoint(path, config={"family": "vq", "model": FULL}, weights=_tokenizer().state_dict())
    return path


@pytest.fixture(scope="module")
def conditioned(source, tmp_path_factory, tiny_vq_run):
    """Six decoder-only steps that add a text-conditioned decoder -> (TrainResult, out)."""
    options = {"init_from": str(source), "decoder_only": True, "text_encoder": "builtin",
               "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2}, "lr": 3e-3,
               "vocab_captions": 64, "adversarial_weight": 0.0}  # fmt: skip
    return tiny_vq_run(tmp_path_factory.mktemp("vq") / "text", options, steps=6, log_every=1,
                       sample_every=6, ema_decay=0.5)  # fmt: skip


def test_fine_tune_adds_the_prompt_and_keeps_every_code(source, conditioned):
    from pixloom.io.checkpoint import load_checkpoint

    result, out = conditioned
    before, after = load_checkpoint(source), load_checkpoint(result.model)
    spec = after.model_config["text_encoder"]
    assert spec["name"] == "builtin" and {"red", "circle", "blue"} <= set(spec["vocab"])
    assert after.model_config == {**FULL, "text_encoder": spec}  # only the prompt is new
    for name, tensor in after.weights.items():
        if name.startswith(("decoder.", "text_encoder.")):
            continue
        assert torch.equal(tensor, before.weights[name]), name  # encoder, codebook, counters
    assert any(n.startswith("text_encoder.") for n in after.weights)
    moved = [
        n for n in after.weights if n.startswith("decoder.cross.") and n.endswith("out.weight")
    ]
    assert moved and all(after.weights[n].abs().max() > 0 for n in moved)  # it learned to attend
    assert (out / "samples" / "step-0000006.png").exists()  # previews decode with captions


def test_the_added_layers_start_as_the_identity(source):
    from types import SimpleNamespace

    from pixloom.models.loading import load_model
    from pixloom.training.tasks.vq import make_vq_task

    task = make_vq_task({"init_from": str(source), "decoder_only": True, "vocab_captions": 32,
                         "text_encoder": "builtin"},
                        SimpleNamespace(name="shapes", resolution=16, has_captions=True))  # fmt: skip
    plain, _ = load_model(source)
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    codes = plain.encode(images).indices
    assert torch.equal(task.tokenizer.eval().encode(images).indices, codes)
    decoded = task.tokenizer.decode(codes, ["a red circle", "", "two blue squares"])
    assert torch.allclose(decoded, plain.decode(codes), atol=1e-6)


@pytest.mark.parametrize(
    "options,field",
    [
        ({"text_encoder": "minilm"}, "task_options.text_encoder"),
        ({"model_config": {"text_encoder": TEXT}}, "task_options.model_config.text_encoder"),
        ({"text_encoder": "builtin", "prompt_dropout": 1.0}, "task_options.prompt_dropout"),
        ({"code_noise": 0.1}, "task_options.code_noise"),  # needs decoder_only
        ({"init_from": "x", "decoder_only": True, "code_noise": 1.0}, "task_options.code_noise"),
    ],
)
def test_bad_text_options_name_the_field(options, field):
    from types import SimpleNamespace

    from pixloom.training.tasks.vq import make_vq_task

    with pytest.raises(InvalidValue) as error:
        make_vq_task(options, SimpleNamespace(name="shapes", resolution=16, has_captions=True))
    assert error.value.field == field


def test_a_dataset_without_captions_is_refused_by_a_conditioned_decoder(conditioned):
    from pixloom.training.tasks.vq import make_vq_task

    task = make_vq_task({"init_from": str(conditioned[0].model), "decoder_only": True},
                        type("Info", (), {"name": "digits", "resolution": 16})())  # fmt: skip
    with pytest.raises(InvalidValue, match="captioned dataset"):
        task.loss("ae", {"image": torch.zeros(2, 3, 16, 16)}, 0)


def test_export_puts_the_conditioned_decoder_into_a_token_model(source, conditioned, tmp_path):
    import pixloom
    from pixloom.io.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint

    spec = {"name": "builtin", **{k: v for k, v in TEXT.items() if k != "name"}}
    config = {"vocab": 16, "grid_size": 4, "dim": 32, "depth": 1, "heads": 2,
              "max_text_tokens": 6, "text_encoder": spec, "tokenizer": FULL}  # fmt: skip
    torch.manual_seed(1)
    model = build_model("token-ar", config)
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("tokenizer.")}
    plain = load_checkpoint(source).weights
    weights |= {f"tokenizer.{n}": t for n, t in plain.items()}  # the tokenizer it was trained on
    held = save_checkpoint(tmp_path / "ar", config={"family": "token-ar", "model": config},
                           weights=weights)  # fmt: skip
    out = export_checkpoint(held, tmp_path / "out", dtype="float32",
                            tokenizer=conditioned[0].model)  # fmt: skip
    exported = load_checkpoint(out)
    assert exported.model_config["tokenizer"]["text_encoder"]["name"] == "builtin"
    new = load_checkpoint(conditioned[0].model).weights
    for name, tensor in new.items():
        assert torch.equal(exported.weights[f"tokenizer.{name}"], tensor), name
    pipe = pixloom.load(out, device="cpu")
    assert pipe.model.tokenizer.text_conditioned
    first = pipe("a red circle", num_images=2, seed=0, precision="fp32")
    again = pipe("a red circle", num_images=1, seed=1, precision="fp32")
    assert first.images[1].tobytes() == again.images[0].tobytes()  # replays image by image


def test_round_trip_and_reconstruction_pass_each_image_s_prompt():
    from types import SimpleNamespace

    from PIL import Image

    from pixloom.evaluation.alignment import round_trip
    from pixloom.evaluation.reconstruction import _reconstruct_all

    seen = []

    def decode(codes, prompts):
        seen.append(list(prompts))
        return codes

    recorder = SimpleNamespace(encode=lambda x: SimpleNamespace(indices=x), decode=decode)
    groups = [[Image.new("RGB", (8, 8))] * n for n in (2, 1)]
    round_trip(recorder, groups, ["first", "second"], batch=2)
    assert seen == [["first", "first"], ["second"]]

    seen.clear()
    dataset = [{"image": torch.zeros(3, 8, 8), "caption": f"caption {i}"} for i in range(3)]
    oracle = SimpleNamespace(features=lambda x: torch.zeros(len(x), 2))
    _reconstruct_all(recorder, dataset, 3, oracle, torch.device("cpu"))
    assert seen == [["caption 0", "caption 1", "caption 2"]]


def test_text_preset_starts_from_the_tokenizer_shapes_ar_was_trained_with():
    from pixloom.configs import config_from_dict
    from pixloom.data.registry import DatasetInfo
    from pixloom.models.loading import load_image_tokenizer, resolve_checkpoint
    from pixloom.training.config import TrainConfig
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.vq import VqTask, VqTaskOptions

    config = config_from_dict(TrainConfig, load_preset("shapes-vq-text"))
    options = config_from_dict(VqTaskOptions, config.task_options, where="task_options")
    # the run whose tokenizer (encoder, codebook, decoder) shapes-ar shipped with before
    assert options.init_from == load_preset("shapes-ar-continue4")["out"]
    assert options.decoder_only and options.text_encoder == "builtin"
    # That run is not in a fresh clone; shapes-ar holds the same encoder and codebook.
    options.init_from = "shapes-ar"
    info = DatasetInfo(name=config.data, resolution=config.resolution, has_captions=True)
    task = VqTask(options, info)
    shipped, _, _ = load_image_tokenizer(resolve_checkpoint("shapes-ar"))
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(task.tokenizer.encode(images).indices, shipped.encode(images).indices)
    assert "star" in task.tokenizer.text_encoder.config.vocab


def test_text_decoder_stages_continue_each_other():
    from pixloom.configs import config_from_dict
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.vq import VqTaskOptions

    stages = [
        load_preset(name) for name in ("shapes-vq-text", "shapes-vq-text2", "shapes-vq-text3")
    ]
    options = [
        config_from_dict(VqTaskOptions, stage["task_options"], where="task_options")
        for stage in stages
    ]
    for before, option in zip(stages, options[1:]):
        assert option.init_from == f"{before['out']}/model" and option.decoder_only
        assert option.lr <= before["task_options"]["lr"]
    assert [option.code_noise for option in options] == [0.0, 0.0, 0.1]


def test_both_shipped_token_models_decode_with_the_prompt_reading_decoder():
    import json

    from pixloom.models.loading import load_image_tokenizer, resolve_checkpoint
    from pixloom.weights import weights_root

    configs = [json.loads((weights_root() / n / "config.json").read_text())
               for n in ("shapes-ar", "shapes-maskgit")]  # fmt: skip
    assert configs[0]["model"]["tokenizer"] == configs[1]["model"]["tokenizer"]
    # both were exported again since (best_of, then a critic, shapes-ar then the grounded
    # critic): the decoder's record is the earliest export in each file's lineage
    decoders = []
    for config in configs:
        storage = config["storage"]
        while "tokenizer_sha256" not in storage:
            storage = storage["source_storage"]
        decoders.append(storage)
    assert decoders[0]["tokenizer_sha256"] == decoders[1]["tokenizer_sha256"]
    tokenizer, config, _ = load_image_tokenizer(resolve_checkpoint("shapes-ar"))
    assert tokenizer.text_conditioned and config["text_encoder"]["name"] == "builtin"
    codes = tokenizer.encode(torch.rand(2, 3, 32, 32) * 2 - 1).indices
    with pytest.raises(InvalidValue, match="one prompt per image"):
        tokenizer.decode(codes)
    images = tokenizer.decode(codes, ["a small red star", "two blue squares"])
    assert images.shape == (2, 3, 32, 32)
