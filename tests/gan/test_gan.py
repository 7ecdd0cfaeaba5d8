"""GAN families, the gan task, truncation/mixing, DiffAugment and the text-to-image pipeline."""

import pytest
import torch

from pixloom.configs import config_to_dict
from pixloom.data.registry import DatasetInfo
from pixloom.models.registry import build_model
from pixloom.sampling.truncation import style_mix, truncate
from pixloom.text.builtin import build_vocabulary
from pixloom.training.augment import diff_augment
from pixloom.training.tasks.gan import GanTask, GanTaskOptions

VOCAB = build_vocabulary(["a red circle", "two blue squares", "a green star above a square"])
SPEC = {"name": "builtin", "vocab": VOCAB, "dim": 16, "layers": 1, "heads": 2, "max_length": 12}
TINY = {
    "mlp-gan": {"resolution": 16, "z_dim": 8, "hidden": 16, "layers": 1},
    "dcgan": {"resolution": 16, "z_dim": 8, "width": 4, "max_width": 8},
    "stylegan": {"resolution": 16, "z_dim": 8, "w_dim": 8, "mapping_layers": 1,
                 "channel_base": 64, "channel_max": 8, "attention_max_side": 8,
                 "attention_heads": 2},
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("conditional", [True, False])
def test_family_forward_backward_save_load(family, conditional, tmp_path):
    from pixloom.api import load_model
    from pixloom.io.checkpoint import save_checkpoint

    config = {**TINY[family], "text_encoder": SPEC if conditional else {}}
    generator = build_model(family, config)
    discriminator = build_model(f"{family}-discriminator", config)
    cond = generator.text_encoder.encode(["a red circle", "a blue star"]) if conditional else None
    images = generator(torch.randn(2, config["z_dim"]), None, cond)
    side = config["resolution"]
    assert images.shape == (2, 3, side, side) and torch.isfinite(images).all()
    logits = discriminator(images, None, cond)
    assert logits.shape == (2,)
    logits.sum().backward()
    grads = [p.grad for p in generator.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    save_checkpoint(tmp_path / "m", config={"family": family, "model": config},
                    weights=generator.state_dict())  # fmt: skip
    loaded, checkpoint = load_model(tmp_path / "m")
    assert checkpoint.family == family
    for name, tensor in generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_missing_condition_is_refused():
    from pixloom.errors import InvalidValue

    generator = build_model("mlp-gan", {**TINY["mlp-gan"], "text_encoder": SPEC})
    with pytest.raises(InvalidValue, match="cond"):
        generator(torch.randn(2, 8), None, None)


def test_bad_model_config_names_field():
    from pixloom.errors import InvalidValue

    with pytest.raises(InvalidValue, match="model.resolution"):
        build_model("stylegan", {"resolution": 24})


def test_truncation_and_style_mixing():
    w, center = torch.ones(2, 4), torch.zeros(1, 4)
    assert torch.allclose(truncate(w, center, 0.5), torch.full((2, 4), 0.5))
    a, b = torch.zeros(2, 3, 1), torch.ones(2, 3, 1)
    mixed = style_mix(a, b, torch.tensor([1, 3]))
    assert mixed[0, :, 0].tolist() == [0, 1, 1] and mixed[1, :, 0].tolist() == [0, 0, 0]


def test_diff_augment_shapes_and_gradients():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, "color,translation,cutout")
    assert y.shape == x.shape
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(diff_augment(x, ""), x)


def _task(family, **options):
    info = DatasetInfo(name="shapes", resolution=TINY[family]["resolution"], has_captions=True)
    options = {"model": family, "model_config": {k: v for k, v in TINY[family].items()
               if k != "resolution"}, "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2},
               "vocab_captions": 50, **options}  # fmt: skip
    from pixloom.configs import config_from_dict

    return GanTask(config_from_dict(GanTaskOptions, options), info)


@pytest.mark.parametrize("family", sorted(TINY))
def test_task_one_step_of_each_phase(family):
    task = _task(family, augment="translation", r1_interval=2)
    side = TINY[family]["resolution"]
    batch = {"image": torch.rand(4, 3, side, side) * 2 - 1,
             "caption": ["a red circle", "two blue squares", "a star", "a green star"]}  # fmt: skip
    assert [p.name for p in task.phases()] == ["g", "d", "r1"]
    for phase in ("g", "d", "r1"):
        loss, metrics = task.loss(phase, batch, 0)
        assert torch.isfinite(loss)
        loss.backward()
    assert task.export_config()["model"]["text_encoder"]["name"] == "builtin"
    images = task.sample_images(task.modules(), 0)
    assert len(images) == 4 and images[0].size == (side, side)


def test_unconditional_task_has_no_text():
    task = _task("dcgan", text_encoder="none")
    batch = {"image": torch.zeros(2, 3, 16, 16), "caption": ["", ""]}
    loss, _ = task.loss("d", batch, 0)
    assert torch.isfinite(loss) and task.export_config()["model"]["text_encoder"] == {}


def test_engine_trains_gan_steps(tmp_path):
    from pixloom.data.registry import load_dataset
    from pixloom.training.config import TrainConfig
    from pixloom.training.engine import train

    options = {"model": "mlp-gan", "model_config": {"z_dim": 8, "hidden": 16, "layers": 1},
               "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2}, "vocab_captions": 50,
               "r1_interval": 2}  # fmt: skip
    config = TrainConfig(task="gan", data="shapes", resolution=16, task_options=options,
                         steps=3, batch_size=4, out=str(tmp_path / "run"), progress=False,
                         tensorboard=False, sample_every=3, precision="fp32")  # fmt: skip
    dataset = load_dataset("shapes", resolution=16, train_size=64)
    result = train(config, dataset=dataset)
    assert result.step == 3 and result.model is not None
    assert (tmp_path / "run" / "samples" / "step-0000003.png").exists()
    assert config_to_dict(config)["task"] == "gan"


def test_class_conditional_task_learns_class_ids_as_one_word_prompts():
    from pixloom.configs import config_from_dict
    from pixloom.errors import InvalidValue

    info = DatasetInfo(name="digits", resolution=16, has_captions=True, num_classes=3)
    options = {"model": "dcgan", "model_config": {"z_dim": 8, "width": 8, "max_width": 16},
               "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2},
               "class_conditional": True}  # fmt: skip
    task = GanTask(config_from_dict(GanTaskOptions, options), info)
    vocab = task.export_config()["model"]["text_encoder"]["vocab"]
    assert {"0", "1", "2"} <= set(vocab) and "digit" not in vocab
    batch = {"image": torch.zeros(4, 3, 16, 16), "label": torch.tensor([0, 2, 1, 2]),
             "caption": ["the digit zero", "a 2", "one", "two"]}  # fmt: skip
    assert task.prompts(batch) == ["0", "2", "1", "2"]
    for phase in ("g", "d"):
        loss, _ = task.loss(phase, batch, 0)
        assert torch.isfinite(loss)
    assert task.preview_prompts == ["0", "2", "1", "2"]
    task.prepare_inference(task.generator)  # BatchNorm calibration on the class ids
    with pytest.raises(InvalidValue, match="text_encoder.*'builtin' when class_conditional"):
        config_from_dict(GanTaskOptions, {**options, "text_encoder": "none"})
    shapes = DatasetInfo(name="shapes", resolution=16, has_captions=True)
    with pytest.raises(InvalidValue, match="class_conditional.*shapes has no classes"):
        GanTask(config_from_dict(GanTaskOptions, options), shapes)


def test_builtin_encoder_learns_in_the_d_phase_only():
    """The G loss would teach a jointly trained encoder to hide the caption from D (every
    caption drawn alike); the encoder's gradients must come from the D phase alone."""
    task = _task("dcgan")
    modules, phases = task.modules(), {phase.name: phase for phase in task.phases()}
    assert modules["text_encoder"] is task.generator.text_encoder
    assert "text_encoder" in phases["d"].modules and "text_encoder" not in phases["g"].modules
    batch = {"image": torch.zeros(4, 3, 16, 16),
             "caption": ["a red circle", "a blue star", "two blue squares", "a green star"]}  # fmt: skip
    encoder = task.generator.text_encoder
    for phase, learns in (("g", False), ("d", True)):
        for module in modules.values():
            module.zero_grad(set_to_none=True)
        loss, _ = task.loss(phase, batch, 0)
        loss.backward()
        grads = [p.grad for p in encoder.parameters() if p.grad is not None]
        assert bool(grads and any(g.abs().sum() > 0 for g in grads)) == learns, phase


@pytest.mark.parametrize(
    "name",
    [
        "shapes-t2i",
        "shapes-t2i-attention",
        "shapes-t2i-critic",
        "shapes-t2i-mlp",
        "shapes-t2i-stylegan",
        "digits-gan",
        "faces-gan",
    ],
)
def test_gan_presets_parse_with_valid_model_configs(name):
    from pixloom.configs import config_from_dict
    from pixloom.models.registry import get_model_entry
    from pixloom.training.config import TrainConfig
    from pixloom.training.presets import load_preset

    config = config_from_dict(TrainConfig, load_preset(name))
    options = config_from_dict(GanTaskOptions, config.task_options, where="task_options")
    # the task fills in the encoder's spec; a stand-in of the same kind suffices here
    text = {"name": options.text_encoder, "dim": 8} if options.text_encoder != "none" else {}
    fields = {**options.model_config, "resolution": config.resolution, "text_encoder": text}
    model_config = config_from_dict(get_model_entry(options.model).config_cls, fields)
    assert config.task == "gan" and model_config.resolution == config.resolution


def test_dcgan_attention_reads_token_states_in_both_networks():
    """With attention_sides, G and D see the token states, not only the pooled vector:
    two embeddings with one pooled vector but different tokens give different outputs."""
    config = {**TINY["dcgan"], "text_encoder": SPEC, "attention_sides": [4, 8],
              "attention_heads": 2}  # fmt: skip
    torch.manual_seed(0)
    generator = build_model("dcgan", config).eval()
    discriminator = build_model("dcgan-discriminator", config).eval()
    for net in (generator, discriminator):
        assert sorted(net.attentions) == ["4", "8"]
        for layer in net.attentions.values():  # open the zero-initialized residual branches
            torch.nn.init.ones_(layer.gain)
    cond = generator.text_encoder.encode(["a red circle", "a red circle"])
    other = type(cond)(torch.randn_like(cond.tokens), cond.mask, cond.pooled)
    z = torch.randn(1, 8).expand(2, -1)
    with torch.no_grad():
        images = generator(z, None, cond)
        assert torch.equal(images[0], images[1])
        assert not torch.allclose(generator(z, None, other), images)
        assert not torch.allclose(discriminator(images, None, other),
                                  discriminator(images, None, cond))  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("attention_sides", [12], "model.attention_sides.*sides among"),
        ("attention_heads", 3, "model.attention_heads.*a divisor"),
    ],
)
def test_dcgan_bad_attention_config_names_field(field, value, match):
    from pixloom.errors import InvalidValue

    config = {**TINY["dcgan"], "text_encoder": SPEC, "attention_sides": [8], field: value}
    with pytest.raises(InvalidValue, match=match):
        build_model("dcgan", config)
    with pytest.raises(InvalidValue, match="model.attention_sides.*unconditional"):
        build_model("dcgan", {**TINY["dcgan"], "attention_sides": [8]})


def test_swap_words_exchanges_two_different_words():
    from pixloom.training.tasks.gan_losses import swap_words

    generator = torch.Generator().manual_seed(0)
    caption = "a red circle left of a blue square"
    for _ in range(20):
        swapped = swap_words(caption, generator)
        assert swapped != caption and sorted(swapped.split()) == sorted(caption.split())
        changed = [a != b for a, b in zip(swapped.split(), caption.split())]
        assert sum(changed) == 2
    assert swap_words("a a a") is None and swap_words("circle") is None and swap_words("") is None


def test_swap_term_scores_real_images_against_their_swapped_captions():
    """swap_weight adds softplus(D(real, swapped caption)) for the rows a swap changes;
    a caption no swap changes ("a a") gets no row."""
    from pixloom.training.tasks import gan_losses

    seen = []
    task = _task("dcgan", swap_weight=1.0, mismatch_weight=0.0)
    encode = task.generator.text_encoder.encode
    task.generator.text_encoder.encode = lambda captions: seen.append(captions) or encode(captions)
    batch = {
        "image": torch.rand(3, 3, 16, 16) * 2 - 1,
        "caption": ["a red circle", "a a", "a star"],
    }
    torch.manual_seed(0)
    loss, _ = task.loss("d", batch, 0)
    swapped = seen[-1]
    assert len(swapped) == 2 and all(s.split() != c.split() for s, c in
                                     zip(swapped, ["a red circle", "a star"]))  # fmt: skip
    assert sorted(swapped[1].split()) == ["a", "star"]
    loss.backward()
    assert torch.isfinite(loss)
    logits = torch.tensor([0.5, -1.0])
    base = gan_losses.discriminator_loss(torch.zeros(2), torch.zeros(2))
    with_swap = gan_losses.discriminator_loss(torch.zeros(2), torch.zeros(2),
                                              swap_logits=logits, swap_weight=2.0)  # fmt: skip
    expected = base + 2.0 * torch.nn.functional.softplus(logits).mean()
    assert torch.allclose(with_swap, expected)
