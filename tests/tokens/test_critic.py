"""The image-text critic: caption edits, the network, its task, export into token models and
judging best_of drafts."""

import random

import pytest
import torch
import torch.nn.functional as F

from pixloom.data.shapes.negatives import EDITS, hard_negative
from pixloom.errors import InvalidValue
from pixloom.models.registry import build_model
from pixloom.pipelines.text_to_image import TextToImageRequest, generate_files, replay_request
from pixloom.text.builtin import build_vocabulary, split_words

VOCAB = build_vocabulary(["a red circle", "two blue squares", "a green star above a square"])
SPEC = {"name": "builtin", "vocab": VOCAB, "dim": 16, "layers": 1, "heads": 2, "max_length": 12}
VQ = {"resolution": 16, "downsample": 4, "channels": 8, "codebook_size": 16, "code_dim": 4}
TINY = {"vocab": 16, "grid_size": 4, "dim": 32, "depth": 2, "heads": 2, "max_text_tokens": 6}
CRITIC = {"text_encoder": SPEC, "resolution": 16, "widths": [8, 8], "dim": 16, "depth": 1,
          "heads": 2}  # fmt: skip


def _edit(name, caption, seed=0):
    out = EDITS[name](split_words(caption), random.Random(seed))
    return None if out is None else " ".join(out)


def test_each_edit_changes_what_the_caption_says():
    assert (
        _edit("swap_colors", "a red circle and a blue square") == "a blue circle and a red square"
    )
    assert _edit("swap_colors", "a red circle and a red square") is None  # nothing to swap
    assert _edit("swap_shapes", "two red circles and a blue square") == (
        "two red squares and a blue circle")  # fmt: skip
    assert _edit("flip", "a red circle to the left of a blue square") == (
        "a red circle to the right of a blue square")  # fmt: skip
    assert _edit("flip", "a red circle") is None
    assert _edit("flip_relation", "a small red circle is above a large blue square") == (
        "a small red circle is below a large blue square")  # fmt: skip
    assert _edit("flip_relation", "a red circle left of a blue square at the top left") == (
        "a red circle right of a blue square at the top left")  # fmt: skip
    assert _edit("flip_relation", "a red circle on the left and a blue square") is None
    colour = _edit("replace_color", "a red circle").split()
    assert colour[0] == "a" and colour[1] not in ("red",) and colour[2] == "circle"
    shape = _edit("replace_shape", "three red crosses").split()
    assert shape[:2] == ["three", "red"] and shape[2].endswith("s") and shape[2] != "crosses"
    for seed in range(20):  # counts change in both directions; the verb follows the noun
        one = _edit("recount", "there is a red circle", seed)
        assert one in ("there are two red circles", "there are three red circles")
        many = _edit("recount", "there are two red circles", seed)
        assert many in ("there is a red circle", "there are three red circles")
        assert _edit("recount", "3 small green stars", seed) in (
            "a small green star", "two small green stars")  # fmt: skip


def test_hard_negative_never_names_an_avoided_pair_and_gives_up_cleanly():
    avoid = frozenset({("yellow", "star"), ("red", "circle")})
    rng = random.Random(0)
    for _ in range(200):
        edited = hard_negative("a yellow circle and a red star", rng, avoid)
        assert edited is not None and edited != "a yellow circle and a red star"
        words = edited.split()
        assert not any((a, b) in avoid for a, b in zip(words, words[1:]))
    assert hard_negative("hello there", rng) is None
    assert hard_negative("", rng) is None


def test_edit_weights_choose_which_edits_are_tried_first():

    caption = "a red circle to the left of a blue square"
    only_swaps = {name: 0 for name in EDITS} | {"swap_colors": 1, "swap_shapes": 1}
    rng = random.Random(0)
    drawn = {hard_negative(caption, rng, weights=only_swaps) for _ in range(100)}
    assert drawn == {"a blue circle to the left of a red square",
                     "a red square to the left of a blue circle"}  # fmt: skip
    assert hard_negative("a red circle", rng, weights=only_swaps) is None  # no swap applies
    no_flips = [hard_negative(caption, rng, weights={"flip": 0}) for _ in range(200)]
    assert not any("right" in edited for edited in no_flips)
    favoured = [hard_negative(caption, rng, weights={"swap_colors": 20}) for _ in range(200)]
    assert favoured.count("a blue circle to the left of a red square") > 150
    reversed_ = "a red circle to the right of a blue square"
    opted_in = [hard_negative(caption, rng, weights={"flip_relation": 20}) for _ in range(200)]
    assert opted_in.count(reversed_) > 150


def test_opt_in_edits_leave_the_draws_of_earlier_recipes_unchanged():
    from pixloom.data.shapes.negatives import OPT_IN_EDITS

    # a caption only an opt-in edit applies to: nothing, unless edit_weights names it
    only_relation = {name: 0 for name in EDITS if name not in OPT_IN_EDITS}
    assert hard_negative("a circle above a square", random.Random(0), weights=only_relation) is None
    assert hard_negative("a circle above a square", random.Random(0),
                         weights={**only_relation, "flip_relation": 1}) == "a circle below a square"  # fmt: skip
    # the unweighted and weighted orders of the edits that were there before, draw for draw
    captions = ["a red circle to the left of a blue square", "two green stars at the top",
                "a small cyan cross above a large white diamond"]  # fmt: skip
    for weights in (None, {"swap_colors": 2, "swap_shapes": 2}):
        rng, reference = random.Random(3), random.Random(3)
        for caption in captions * 20:
            expected = _reference_hard_negative(caption, reference, weights)
            assert hard_negative(caption, rng, weights=weights) == expected


def _reference_hard_negative(caption, rng, weights):
    """hard_negative as it was before any opt-in edit existed (the six edits only)."""
    words, names = split_words(caption), [n for n in EDITS if n != "flip_relation"]
    if weights is None:
        rng.shuffle(names)
    else:
        keys = {n: rng.random() ** (1 / w) for n in names if (w := weights.get(n, 1.0)) > 0}
        names = sorted(keys, key=keys.get, reverse=True)
    for name in names:
        edited = EDITS[name](words, rng)
        if edited is not None and edited != words:
            return " ".join(edited)
    return None


def test_edit_weights_refuse_unknown_edits_and_negative_weights():
    from pixloom.training.tasks.critic import CriticTaskOptions

    with pytest.raises(InvalidValue, match="task_options.edit_weights"):
        CriticTaskOptions(edit_weights={"swap_sizes": 1})
    with pytest.raises(InvalidValue, match="task_options.edit_weights.flip"):
        CriticTaskOptions(edit_weights={"flip": -1})


def test_critic_scores_one_logit_per_pair_at_any_input_size():
    torch.manual_seed(0)
    critic = build_model("critic", CRITIC).eval()
    with torch.no_grad():
        logits = critic(torch.rand(3, 3, 16, 16) * 2 - 1, ["a red circle", "two blue squares", ""])
        larger = critic(torch.rand(2, 3, 32, 32) * 2 - 1, ["a red circle", "a square"])
    assert logits.shape == (3,) and larger.shape == (2,) and bool(logits.isfinite().all())
    with pytest.raises(InvalidValue, match="prompts"):
        critic(torch.zeros(2, 3, 16, 16), ["a red circle"])
    with pytest.raises(InvalidValue, match="model.text_encoder"):
        build_model("critic", {**CRITIC, "text_encoder": {"name": "minilm", "dim": 384}})
    with pytest.raises(InvalidValue, match="model.heads"):
        build_model("critic", {**CRITIC, "heads": 3})


def test_cross_fusion_encodes_the_cells_once_and_trains_every_weight():
    from pixloom.data.registry import load_dataset
    from pixloom.training.tasks.critic import CriticTask, CriticTaskOptions

    cross = {**CRITIC, "fusion": "cross", "depth": 2, "image_depth": 1, "grounding": True}
    torch.manual_seed(0)
    critic = build_model("critic", cross).eval()
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    prompts = ["a red circle", "two blue squares"]
    with torch.no_grad():
        pairs = critic(images.repeat(2, 1, 1, 1), prompts + prompts[::-1])
        tokens = critic.image_tokens(images)
        reused = critic.joint(torch.cat([tokens, tokens]), prompts + prompts[::-1])
    assert torch.allclose(pairs, reused, atol=1e-5)
    assert not torch.allclose(pairs[:2], pairs[2:])  # the caption matters
    with pytest.raises(InvalidValue, match="model.fusion"):
        build_model("critic", {**CRITIC, "fusion": "sum"})
    with pytest.raises(InvalidValue, match="model.image_depth"):
        build_model("critic", {**CRITIC, "image_depth": 1})  # joint fusion has no cell layers

    dataset = load_dataset("shapes", resolution=16, train_size=8)
    options = CriticTaskOptions(
        vocab_captions=8, edit_weights={"swap_colors": 4},
        model_config={k: v for k, v in cross.items() if k != "text_encoder"},
        text_encoder_config={"dim": 16, "layers": 1, "heads": 2},
    )  # fmt: skip
    task = CriticTask(options, dataset.info)
    batch = {"image": torch.stack([dataset[i]["image"] for i in range(4)]),
             "caption": [dataset[i]["caption"] for i in range(4)]}  # fmt: skip
    loss, stats = task.loss("match", batch, step=0)
    loss.backward()
    assert loss.isfinite() and {"match", "beats_other", "beats_edit", "contrastive"} <= set(stats)
    idle = [name for name, p in task.critic.named_parameters() if p.grad is None]
    assert idle == []


def test_grounding_scores_each_word_by_its_best_cell():
    torch.manual_seed(0)
    critic = build_model("critic", {**CRITIC, "grounding": True}).eval()
    cells, words = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    with torch.no_grad():
        got = critic.grounding(cells, words, mask)
        expected = []
        for b in range(2):
            valid = int(mask[b].sum())
            best = []
            conv = critic.ground_words
            for t in range(valid):  # a unit: the word and its valid neighbours, by hand
                unit = conv.bias.clone()
                for k, neighbour in enumerate((t - 1, t, t + 1)):
                    if 0 <= neighbour < valid:
                        unit += conv.weight[:, :, k] @ words[b, neighbour]
                w = F.normalize(unit, dim=0)
                best.append(
                    max(float(w @ F.normalize(critic.ground_cells(c), dim=0)) for c in cells[b])
                )
            gate = critic.ground_gate(words[b, :valid])[:, 0].softmax(0)
            expected.append(float(critic.ground_scale) * float(gate @ torch.tensor(best)))
        assert torch.allclose(got, torch.tensor(expected), atol=1e-5)
        shuffled = critic.grounding(cells[:, torch.randperm(5)], words, mask)  # cells are a set
        padded = words.clone()
        padded[0, 3] = 100.0  # a padding position never counts
        assert torch.allclose(got, shuffled, atol=1e-5)
        assert torch.allclose(got, critic.grounding(cells, padded, mask), atol=1e-5)


def test_critic_loss_counts_matches_as_much_as_mismatches():
    from pixloom.training.tasks.critic import critic_loss

    right = torch.tensor([5.0, 5.0, -5.0, -5.0, -5.0, -5.0, -5.0, -5.0])  # 2 images, 4 blocks
    wrong = -right
    good, stats = critic_loss(right, 2)
    bad, _ = critic_loss(wrong, 2)
    assert good < 0.01 < 4 < bad
    assert stats["beats_other"] == 1.0 and stats["beats_edit"] == 1.0


def test_contrastive_term_pairs_image_i_with_caption_i():
    from pixloom.training.tasks.critic import contrastive_loss

    embeddings = torch.eye(4, 8)
    paired = contrastive_loss(embeddings, embeddings, 0.1)
    crossed = contrastive_loss(embeddings, embeddings.roll(1, 0), 0.1)
    assert paired < 0.001 and crossed > 9
    torch.manual_seed(0)
    critic = build_model("critic", CRITIC).eval()
    with torch.no_grad():
        image, caption = critic.embeddings(critic.image_tokens(torch.zeros(2, 3, 16, 16)),
                                           ["a red circle", "a square"])  # fmt: skip
    assert image.shape == caption.shape == (2, CRITIC.get("embed_dim", 64))
    assert torch.allclose(image.norm(dim=-1), torch.ones(2))


@pytest.fixture(scope="module")
def critic_dir(tmp_path_factory):
    """Two steps of task "critic" through the engine -> the exported critic directory."""
    from pixloom.data.registry import load_dataset
    from pixloom.training.config import TrainConfig
    from pixloom.training.engine import train

    dataset = load_dataset("shapes", resolution=16, train_size=32)
    options = {"vocab_captions": 32, "hard_negatives": 2,
               "model_config": {k: v for k, v in CRITIC.items() if k != "text_encoder"},
               "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2}}  # fmt: skip
    out = tmp_path_factory.mktemp("critic") / "run"
    config = TrainConfig(task="critic", data="shapes", resolution=16, task_options=options,
                         steps=2, batch_size=4, out=str(out), progress=False, tensorboard=False,
                         precision="fp32")  # fmt: skip
    result = train(config, dataset=dataset)
    assert result.step == 2 and result.model is not None
    return result.model


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory):
    """An untrained raster token model holding a tokenizer (no critic)."""
    from pixloom.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = {**TINY, "text_encoder": SPEC, "tokenizer": VQ}
    model = build_model("token-ar", config)
    path = tmp_path_factory.mktemp("token") / "tiny-ar"
    save_checkpoint(path, config={"family": "token-ar", "model": config},
                    weights=model.state_dict())  # fmt: skip
    return path


@pytest.fixture(scope="module")
def judged_dir(token_dir, critic_dir, tmp_path_factory):
    from pixloom.cli.main import main

    target = tmp_path_factory.mktemp("judged") / "tiny-ar-critic"
    assert main(["export", str(token_dir), str(target), "--critic", str(critic_dir),
                 "--dtype", "float32"]) == 0  # fmt: skip
    return target


def test_export_puts_the_critic_inside_and_refuses_what_it_cannot_hold(
    token_dir, critic_dir, judged_dir, tmp_path
):
    from pixloom.io.checkpoint import export_checkpoint, load_checkpoint

    critic, judged = load_checkpoint(critic_dir), load_checkpoint(judged_dir)
    assert critic.family == "critic"
    assert judged.config["storage"]["critic_sha256"] == critic.sha256
    assert judged.model_config["critic"] == critic.model_config
    for name, tensor in critic.weights.items():
        assert torch.equal(judged.weights[f"critic.{name}"], tensor)
    with pytest.raises(InvalidValue, match="a critic judges the drafts"):
        export_checkpoint(critic_dir, tmp_path / "x", critic=critic_dir)
    with pytest.raises(InvalidValue, match="'critic' checkpoint"):
        export_checkpoint(token_dir, tmp_path / "y", critic=token_dir)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    again = export_checkpoint(judged_dir, tmp_path / "z", critic=critic_dir, dtype="float32")
    assert sorted(load_checkpoint(again).weights) == sorted(judged.weights)  # replaced, not added


def test_judge_defaults_to_the_critic_a_model_holds_and_is_checked(token_dir, judged_dir):
    import pixloom
    from pixloom.pipelines.text_to_image import TextToImagePipeline

    plain, judged = pixloom.load(token_dir, device="cpu"), pixloom.load(judged_dir, device="cpu")
    assert plain.resolve(TextToImageRequest("a red circle")).judge == "likelihood"
    assert judged.resolve(TextToImageRequest("a red circle")).judge == "critic"
    assert judged.resolve(TextToImageRequest("a", judge="likelihood")).judge == "likelihood"
    with pytest.raises(InvalidValue, match="judge.*holds no critic"):
        plain("a red circle", best_of=2, judge="critic")
    with pytest.raises(InvalidValue, match="judge"):
        TextToImageRequest("a red circle", judge="vote")
    generator = build_model("mlp-gan", {"resolution": 8, "z_dim": 4, "hidden": 8, "layers": 1})
    gan = TextToImagePipeline(generator, name="g", sha256=None, family="mlp-gan", device="cpu")
    with pytest.raises(InvalidValue, match="judge"):
        gan.resolve(TextToImageRequest("x", judge="likelihood"))


def test_the_critic_keeps_the_draft_it_rates_highest(token_dir, judged_dir, monkeypatch):
    """Drafts are what the sampler drew; the kept one is the argmax of the critic's logits
    on the decoded drafts, computed here independently; judge=likelihood is the plain model."""
    import pixloom
    import pixloom.sampling.tokens as tokens_module

    plain, judged = pixloom.load(token_dir, device="cpu"), pixloom.load(judged_dir, device="cpu")
    seen = {}
    keep_best = tokens_module._keep_best

    def record(drafts, scores, best_of, judge=None, side=0):
        seen.update(drafts=drafts.clone(), judged=judge is not None)
        return keep_best(drafts, scores, best_of, judge, side)

    monkeypatch.setattr(tokens_module, "_keep_best", record)
    k, prompt = 4, "a red circle"
    result = judged(prompt, seed=3, best_of=k, temperature=2.0, precision="fp32")
    assert seen["judged"] and result.metadata[0]["chain"][0]["request"]["judge"] == "critic"
    model = judged.model
    with torch.no_grad():
        images = model.tokenizer.decode(seen["drafts"].view(k, 4, 4), [prompt] * k)
        scores = model.critic(images, [prompt] * k)
        assert len(set(scores.tolist())) == k  # distinct: the choice is tested
        chosen = model.tokenizer.decode(seen["drafts"][scores.argmax()].view(1, 4, 4), [prompt])
    expected = pixloom.pipelines.text_to_image.tensor_to_images(chosen)[0]
    assert result.images[0].tobytes() == expected.tobytes()

    by_likelihood = judged(prompt, seed=3, best_of=k, temperature=2.0, judge="likelihood",
                           precision="fp32")  # fmt: skip
    assert not seen["judged"]
    same = plain(prompt, seed=3, best_of=k, temperature=2.0, precision="fp32")
    assert by_likelihood.images[0].tobytes() == same.images[0].tobytes()


def test_critic_judged_pngs_replay_and_older_ones_replay_by_likelihood(judged_dir, tmp_path):
    from PIL import Image

    import pixloom
    from pixloom.io.images import read_png_metadata, save_png

    pipe = pixloom.load(judged_dir, device="cpu")
    request = TextToImageRequest("a red circle", seed=1, best_of=3, temperature=2.0,
                                 out=str(tmp_path / "o"), precision="fp32")  # fmt: skip
    (path,) = generate_files(request, pipe)
    replay = replay_request(path, TextToImageRequest(from_image=str(path), out=str(tmp_path / "r")))
    assert replay.judge == "critic"
    (again,) = generate_files(replay, pipe)
    assert Image.open(again).tobytes() == Image.open(path).tobytes()

    metadata = read_png_metadata(path)
    del metadata["chain"][0]["request"]["judge"]  # as written before the field existed
    old = save_png(Image.open(path), tmp_path / "old.png", metadata=metadata)
    older = replay_request(old, TextToImageRequest(from_image=str(old), out=str(tmp_path / "s")))
    assert older.judge == "likelihood"


GAN = {"resolution": 16, "z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 64,
       "channel_max": 8, "attention_heads": 2, "text_encoder": SPEC}  # fmt: skip


@pytest.fixture(scope="module")
def gan_dirs(critic_dir, tmp_path_factory):
    """A tiny stylegan without a critic, and its export holding one."""
    from pixloom.io.checkpoint import export_checkpoint, save_checkpoint

    torch.manual_seed(0)
    generator = build_model("stylegan", GAN)
    plain = tmp_path_factory.mktemp("gan") / "tiny-gan"
    save_checkpoint(plain, config={"family": "stylegan", "model": GAN},
                    weights=generator.state_dict())  # fmt: skip
    judged = export_checkpoint(plain, plain.parent / "tiny-gan-critic", critic=critic_dir,
                               dtype="float32")  # fmt: skip
    return plain, judged


def test_gan_best_of_needs_a_critic_and_never_a_likelihood(gan_dirs):
    import pixloom

    plain, judged = (pixloom.load(path, device="cpu") for path in gan_dirs)
    with pytest.raises(InvalidValue, match="best_of.*holds no critic"):
        plain("a red circle", best_of=2)
    with pytest.raises(InvalidValue, match="judge.*holds no critic"):
        plain("a red circle", judge="critic")
    with pytest.raises(InvalidValue, match="judge.*no likelihood"):
        judged("a red circle", best_of=2, judge="likelihood")
    assert plain.resolve(TextToImageRequest("a")).judge is None
    assert judged.resolve(TextToImageRequest("a")).judge == "critic"
    one = judged("a red circle", seed=2, num_images=2, truncation=0.5)  # best_of 1: as before
    same = plain("a red circle", seed=2, num_images=2, truncation=0.5)
    assert [i.tobytes() for i in one.images] == [i.tobytes() for i in same.images]


def test_export_refuses_a_gan_best_of_that_no_critic_could_judge(
    gan_dirs, critic_dir, tmp_path, capsys
):
    """A GAN file storing best_of > 1 without a critic would refuse every request."""
    from pixloom.cli.main import main

    plain, judged = gan_dirs
    assert main(["export", str(plain), str(tmp_path / "x"), "--sampling", "best_of=3"]) == 2
    assert "sampling='best_of=3' is invalid" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    for source, extra in ((plain, ["--critic", str(critic_dir)]), (judged, [])):
        target = tmp_path / source.name
        assert main(["export", str(source), str(target), "--sampling", "best_of=3", *extra]) == 0


@pytest.mark.parametrize("truncation", [1.0, 0.5])
def test_gan_critic_keeps_the_draft_it_rates_highest_and_replays(gan_dirs, truncation, tmp_path):
    from PIL import Image

    import pixloom
    from pixloom.pipelines.text_to_image import draw_latents, tensor_to_images
    from pixloom.sampling.truncation import conditional_mean_w, truncate

    pipe, k, prompt = pixloom.load(gan_dirs[1], device="cpu"), 4, "a red circle"
    result = pipe(prompt, seed=7, num_images=2, best_of=k, truncation=truncation,
                  precision="fp32")  # fmt: skip
    generator = pipe.generator
    for i in range(2):  # image i: the critic's favourite among its own k drafts
        z = draw_latents(1, GAN["z_dim"], seed=7 + i, best_of=k)
        assert torch.equal(z[0], draw_latents(1, GAN["z_dim"], seed=7 + i)[0])
        with torch.no_grad():
            cond = generator.text_encoder.encode([prompt])
            w = generator.map(z, cond.repeat(k))
            if truncation != 1:
                w = truncate(w, conditional_mean_w(generator.map, cond, z_dim=GAN["z_dim"],
                                                   device="cpu"), truncation)  # fmt: skip
            drafts = generator.synthesize(w, cond.repeat(k), noise_mode="const")
            scores = generator.critic(drafts, [prompt] * k)
        assert len(set(scores.tolist())) == k
        expected = tensor_to_images(drafts[scores.argmax()][None])[0]
        assert result.images[i].tobytes() == expected.tobytes()
    request = TextToImageRequest(prompt, seed=3, best_of=3, out=str(tmp_path / "o"),
                                 truncation=truncation, precision="fp32")  # fmt: skip
    (path,) = generate_files(request, pipe)
    replay = replay_request(path, TextToImageRequest(from_image=str(path), out=str(tmp_path / "r")))
    assert (replay.best_of, replay.judge) == (3, "critic")
    (again,) = generate_files(replay, pipe)
    assert Image.open(again).tobytes() == Image.open(path).tobytes()


def test_critic_presets_parse_into_their_options_and_networks():
    from pixloom.configs import config_from_dict
    from pixloom.models.critic import CriticConfig
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.critic import CriticTaskOptions

    networks = {}
    for name in ("shapes-critic", "shapes-critic-ground", "shapes-critic-joint-ground"):
        preset = load_preset(name)
        options = config_from_dict(CriticTaskOptions, preset["task_options"], where=name)
        config = config_from_dict(CriticConfig, {**options.model_config, "text_encoder": SPEC},
                                  where=name)  # fmt: skip
        assert preset["task"] == "critic" and config.resolution == preset["resolution"]
        networks[name] = (config.fusion, config.grounding, config.grid_side,
                          options.edit_weights.get("swap_colors", 1))  # fmt: skip
    assert networks == {"shapes-critic": ("joint", False, 4, 1),
                        "shapes-critic-ground": ("cross", True, 8, 4),
                        "shapes-critic-joint-ground": ("joint", True, 4, 2)}  # fmt: skip


def test_relation_presets_go_on_from_the_grounded_critic_on_relation_heavy_captions():
    from pixloom.configs import config_from_dict
    from pixloom.data.shapes.dataset import ShapesOptions
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.critic import CriticTaskOptions

    chain = {}
    for name in ("shapes-critic-relations", "shapes-critic-relations2"):
        preset = load_preset(name)
        options = config_from_dict(CriticTaskOptions, preset["task_options"], where=name)
        data = config_from_dict(ShapesOptions, preset["data_options"], where=name)
        assert data.relation_captions == 0.9 and options.edit_weights["flip_relation"] == 16
        chain[name] = (options.init_from, preset["out"])
    assert chain["shapes-critic-relations"][0] == "runs/shapes-critic-joint-ground"
    assert chain["shapes-critic-relations2"][0] == chain["shapes-critic-relations"][1]


def test_placed_words_start_at_zero_and_init_from_goes_on_from_a_trained_critic(tmp_path):
    from pixloom.configs import config_from_dict
    from pixloom.data.registry import DatasetInfo
    from pixloom.io.checkpoint import save_checkpoint
    from pixloom.training.tasks.critic import CriticTask, CriticTaskOptions

    info = DatasetInfo(name="shapes", resolution=16, has_captions=True)
    grounded = {**CRITIC, "grounding": True}
    torch.manual_seed(0)
    trained = build_model("critic", grounded).eval()
    save_checkpoint(tmp_path / "critic", config={"family": "critic", "model": grounded},
                    weights=trained.state_dict())  # fmt: skip

    def task(**options):
        fields = {"init_from": str(tmp_path / "critic"), **options}
        return CriticTask(config_from_dict(CriticTaskOptions, fields), info)

    located = task(model_config={"place_words": True})
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    prompts = ["a red circle above a square", "two blue squares", "a green star"]
    with torch.no_grad():  # the placement term starts at zero: the trained critic's logits
        assert torch.allclose(located.critic.eval()(images, prompts), trained(images, prompts))
    located.critic.train()
    batch = {"image": images, "caption": prompts}
    located.loss("match", batch, 0)[0].backward()
    assert located.critic.word_direction.weight.grad.abs().sum() > 0  # and it learns
    assert located.export_config()["model"]["place_words"] is True
    placed = task(model_config={"place_words": True}).critic.eval()  # norms' statistics unmoved
    with torch.no_grad():
        torch.nn.init.normal_(placed.word_direction.weight)
        tokens, text = placed.image_tokens(images), placed.text_encoder.encode(prompts)
        units, _ = placed.grounding_units(tokens, text.tokens, text.mask)
        found = (placed.ground_scale * units).softmax(-1) @ placed.cell_centres
        by_hand = [sum(float(placed.word_direction(text.tokens[b, t]) @ found[b, t])
                       for t in range(int(text.mask[b].sum()))) for b in range(3)]  # fmt: skip
        term = placed(images, prompts) - trained(images, prompts)
    assert torch.allclose(term, torch.tensor(by_hand), atol=1e-4)  # each word's place, weighed
    assert bool(((found >= -1) & (found <= 1)).all())
    assert located.export_config()["model"]["text_encoder"]["vocab"] == VOCAB
    with pytest.raises(InvalidValue, match="model.place_words"):
        build_model("critic", {**CRITIC, "place_words": True})  # words are placed by grounding
    with pytest.raises(InvalidValue, match="task_options.text_encoder_config"):
        task(text_encoder_config={"dim": 32})
    with pytest.raises(InvalidValue, match="task_options.model_config"):
        task(model_config={"dim": 32})  # would change the trained weights' shapes
    with pytest.raises(InvalidValue, match="task_options.init_from"):
        save_checkpoint(tmp_path / "vq", config={"family": "vq", "model": VQ},
                        weights=build_model("vq", VQ).state_dict())  # fmt: skip
        task(init_from=str(tmp_path / "vq"))
