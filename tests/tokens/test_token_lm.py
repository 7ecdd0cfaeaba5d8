"""Token transformers (token-ar, maskgit): backbone, KV cache, samplers, task, pipeline."""

import dataclasses
import math

import pytest
import torch

from pixloom.errors import InvalidValue
from pixloom.models.registry import build_model
from pixloom.models.token_transformer import (
    Linear,
    RMSNorm,
    TokenCondition,
    apply_rope,
    rope_angles,
)
from pixloom.pipelines.text_to_image import TextToImageRequest, generate_files, replay_request
from pixloom.sampling.tokens import filter_logits, guided_logits, sample_maskgit, sample_raster
from pixloom.text.builtin import build_vocabulary

SHIPPED_CRITIC = "a36a0c18"  # sha256 of runs/shapes-critic/model (--preset shapes-critic),
# the first critic the shipped files held
GROUNDED_CRITIC = "350dcfc8"  # of runs/shapes-critic-joint-ground/model (its preset)
RELATION_CRITIC = "40992191"  # of runs/shapes-critic-relations/model (its preset, from the
# grounded critic)
VOCAB = build_vocabulary(["a red circle", "two blue squares", "a green star above a square"])
SPEC = {"name": "builtin", "vocab": VOCAB, "dim": 16, "layers": 1, "heads": 2, "max_length": 12}
VQ = {"resolution": 16, "downsample": 4, "channels": 8, "codebook_size": 16, "code_dim": 4}
TINY = {"vocab": 16, "grid_size": 4, "dim": 32, "depth": 2, "heads": 2, "max_text_tokens": 6}


def _model(family="token-ar", **fields):
    torch.manual_seed(0)
    return build_model(family, {**TINY, "text_encoder": SPEC, **fields}).eval()


def _cond(model, prompts, null=None):
    return TokenCondition(text=model.text_encoder.encode(prompts), null=null)


def _generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_inference_linear_follows_every_weight_change():
    torch.manual_seed(0)
    layer, x = Linear(8, 5), torch.randn(2, 3, 8)
    with torch.no_grad():
        assert torch.allclose(layer(x), x @ layer.weight.T, atol=1e-6)  # cached W^T path
        layer.load_state_dict({"weight": torch.randn(5, 8)})
        assert torch.allclose(layer(x), x @ layer.weight.T, atol=1e-6)
    torch.optim.SGD(layer.parameters(), lr=0.01).zero_grad()
    layer(x).square().sum().backward()  # grad path: F.linear, gradients flow
    torch.optim.SGD(layer.parameters(), lr=0.01).step()
    with torch.no_grad():
        assert torch.allclose(layer(x), x @ layer.weight.T, atol=1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        assert out.dtype == torch.bfloat16
        assert torch.allclose(out.float(), x @ layer.weight.T, rtol=0.02, atol=0.05)
        half = layer.double()(x.double())
        assert half.dtype == torch.float64


def test_rms_norm_and_rope():
    x = torch.randn(3, 8) * 5
    assert torch.allclose(RMSNorm(8)(x).square().mean(-1), torch.ones(3), atol=1e-4)
    positions = torch.tensor([[0, 0], [1, 2], [3, 1], [4, 3]])
    angles = rope_angles(positions, 8, 100.0)
    q, k = torch.randn(1, 1, 1, 8).expand(1, 1, 4, 8), torch.randn(1, 1, 1, 8).expand(1, 1, 4, 8)
    rq, rk = apply_rope(q, angles.cos(), angles.sin()), apply_rope(k, angles.cos(), angles.sin())
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-5)  # rotations keep norms
    # the score depends only on the offset: (1,2)-(0,0) == (4,3)-(3,1)
    assert torch.allclose((rq[..., 1, :] * rk[..., 0, :]).sum(), (rq[..., 3, :] * rk[..., 2, :]).sum(),
                          atol=1e-5)  # fmt: skip


def test_kv_cache_matches_full_forward_and_causality():
    model = _model()
    tokens = torch.randint(0, 16, (4, 16))
    cond = _cond(model, ["a red circle", "two blue squares"]).with_null()
    with torch.no_grad():
        full = model(tokens, None, cond)  # (4, 16, 16)
        first, cache = model.prefill(cond, 4)
        steps = [first] + [model.forward_step(tokens[:, j], cache) for j in range(15)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 16
    with torch.no_grad():
        again = model(changed, None, cond)
    assert torch.equal(again[:, :11], full[:, :11])  # slot j sees cells < j only
    assert not torch.allclose(again[:, 11:], full[:, 11:])
    bidirectional = _model("maskgit")
    with torch.no_grad():
        a, b = bidirectional(tokens, None, cond), bidirectional(changed, None, cond)
    assert not torch.allclose(a[:, :10], b[:, :10])


@pytest.mark.parametrize("fields", [{"text_encoder": {}}, {"text_encoder": {}, "num_classes": 3}])
def test_kv_cache_without_padding_skips_the_mask_and_still_matches(fields):
    model = _model(**fields)
    tokens = torch.randint(0, 16, (2, 16))
    cond = TokenCondition(labels=torch.tensor([0, 2])) if fields.get("num_classes") else None
    with torch.no_grad():
        full = model(tokens, None, cond)
        first, cache = model.prefill(cond, 2)
        assert not cache.padded
        steps = [first] + [model.forward_step(tokens[:, j], cache) for j in range(15)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)


@pytest.mark.parametrize("family", ["token-ar", "maskgit"])
def test_prefix_spans_the_batchs_longest_prompt_and_rows_ignore_their_neighbours(family):
    model = _model(family)  # max_text_tokens 6
    short, long = "a red circle", "a green star above a red circle and two blue squares"
    tokens = torch.randint(0, 16, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        alone_prefix, alone_valid = model.prefix(_cond(model, [short]), 1)
        pair_prefix, pair_valid = model.prefix(_cond(model, [short, long]), 2)
        alone = model(tokens[:1], None, _cond(model, [short]))
        pair = model(tokens, None, _cond(model, [short, long]))
    assert alone_prefix.shape[1] == 4 and bool(alone_valid.all())  # [CLS] a red circle
    assert pair_prefix.shape[1] == 6  # the long prompt, cut to max_text_tokens
    assert pair_valid.tolist() == [[True] * 4 + [False] * 2, [True] * 6]
    assert torch.allclose(pair[:1], alone, atol=1e-5)  # same rotary positions, padding masked
    if family == "token-ar":  # the cache of a lone unpadded prompt needs no mask
        with torch.no_grad():
            first, cache = model.prefill(_cond(model, [short]), 1)
            steps = [first] + [model.forward_step(tokens[:1, j], cache) for j in range(15)]
        assert not cache.padded and cache.valid.shape == (1, 4 + 16)
        assert torch.allclose(torch.stack(steps, 1), alone, atol=1e-4)


def test_guidance_and_filters():
    cond, null = torch.randn(2, 5), torch.randn(2, 5)
    both = torch.cat([cond, null])
    assert torch.allclose(guided_logits(both, 2, 1.0), cond)
    assert torch.allclose(guided_logits(both, 2, 0.0), null)
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isinf(filter_logits(logits, 2)).tolist() == [[True, False, False, True]]
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isinf(filter_logits(probs, None, 0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(probs, None, 0.1)).tolist() == [[False, True, True, True]]
    assert torch.equal(filter_logits(probs, 0, 1.0), probs)


def test_scale_one_is_the_conditional_model():
    model = _model()
    cond = _cond(model, ["a red circle"])
    a = sample_raster(model, cond, count=1, guidance_scale=1.0, generators=_generators([3]))
    with torch.no_grad():
        logits = model(a.flatten(1), None, cond)[0]  # greedy replays from the cond logits
    greedy = sample_raster(model, cond, count=1, guidance_scale=1.0, temperature=0,
                           generators=_generators([0]))  # fmt: skip
    assert greedy.flatten()[0] == logits[0].argmax()


@pytest.mark.parametrize("family", ["token-ar", "maskgit"])
def test_seed_replay_image_by_image(family):
    model = _model(family)
    prompts = ["a red circle", "two blue squares", "a star"]
    kwargs = {"guidance_scale": 2.0, "temperature": 1.0}
    sample = sample_raster if family == "token-ar" else sample_maskgit
    batch = sample(model, _cond(model, prompts), count=3, generators=_generators([5, 6, 7]),
                   **kwargs)  # fmt: skip
    assert batch.shape == (3, 4, 4)
    for i in range(3):
        alone = sample(model, _cond(model, prompts[i : i + 1]), count=1,
                       generators=_generators([5 + i]), **kwargs)  # fmt: skip
        assert torch.equal(alone[0], batch[i])
    if family == "token-ar":
        uncached = sample(model, _cond(model, prompts), count=3, use_cache=False,
                          generators=_generators([5, 6, 7]), **kwargs)  # fmt: skip
        assert torch.equal(uncached, batch)


def test_raster_uniforms_drawn_up_front_match_step_by_step_draws():
    """sample_raster draws each row's uniforms in one call; a step-by-step loop drawing them
    from the generators at every step (draw_rows without `uniforms`) gives the same image."""
    from pixloom.sampling.tokens import draw_rows

    model, prompts, scale = _model(), ["a red circle", "two blue squares"], 2.0
    fast = sample_raster(model, _cond(model, prompts), count=2, guidance_scale=scale,
                         temperature=0.9, top_k=8, generators=_generators([3, 4]))  # fmt: skip
    generators, tokens = _generators([3, 4]), torch.zeros(2, 16, dtype=torch.long)
    with torch.no_grad():
        logits, cache = model.prefill(_cond(model, prompts).with_null(), 4)
        for j in range(16):
            step = filter_logits(guided_logits(logits, 2, scale).float(), 8, None)
            tokens[:, j] = draw_rows(step, 0.9, generators)
            if j < 15:
                logits = model.forward_step(torch.cat([tokens[:, j]] * 2), cache)
    assert torch.equal(fast.view(2, 16), tokens)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_best_of_keeps_the_likeliest_of_each_images_candidates(scale):
    """best_of=K: image i's generator yields its K candidates in turn (candidate k is what
    best_of=1 draws after k images' worth of uniforms), and the kept one has the highest
    log p(tokens | prompt) under the conditional model, scored here by teacher forcing."""
    model, prompts, total, k = _model(), ["a red circle", "two blue squares"], 16, 3
    kwargs = {"guidance_scale": scale, "temperature": 1.5}
    best = sample_raster(model, _cond(model, prompts), count=2, best_of=k,
                         generators=_generators([5, 6]), **kwargs)  # fmt: skip
    for i, prompt in enumerate(prompts):
        cond, candidates = _cond(model, [prompt]), []
        for c in range(k):
            generator = torch.Generator().manual_seed(5 + i)
            torch.rand(c * total, generator=generator)  # skip the earlier candidates' draws
            candidates.append(sample_raster(model, cond, count=1, generators=[generator],
                                            **kwargs).flatten())  # fmt: skip
        tokens = torch.stack(candidates)  # (K, N)
        with torch.no_grad():
            log_probs = model(tokens, None, _cond(model, [prompt] * k)).float().log_softmax(-1)
        scores = log_probs.gather(-1, tokens[..., None])[..., 0].sum(1)  # (K,)
        assert len(set(scores.tolist())) == k  # distinct candidates: the choice is tested
        assert torch.equal(best[i].flatten(), tokens[scores.argmax()])
    one = sample_raster(model, _cond(model, prompts), count=2, best_of=1,
                        generators=_generators([5, 6]), **kwargs)  # fmt: skip
    assert torch.equal(one, sample_raster(model, _cond(model, prompts), count=2,
                                          generators=_generators([5, 6]), **kwargs))  # fmt: skip
    uncached = sample_raster(model, _cond(model, prompts), count=2, best_of=k, use_cache=False,
                             generators=_generators([5, 6]), **kwargs)  # fmt: skip
    assert torch.equal(uncached, best)
    with pytest.raises(InvalidValue, match="best_of"):
        sample_raster(model, None, count=1, best_of=0, generators=_generators([0]))
    labels = TokenCondition(labels=torch.tensor([3, 7]), null=torch.tensor([False, True]))
    repeated = labels.repeat_rows(2)  # class-conditional rows repeat the same way
    assert repeated.labels.tolist() == [3, 3, 7, 7]
    assert repeated.null.tolist() == [False, False, True, True]


@pytest.mark.parametrize("family", ["token-ar", "maskgit"])
def test_best_of_in_the_pipeline_replays_image_by_image(trained, family):
    import pixloom

    pipe = pixloom.load(trained[family], device="cpu")
    batch = pipe("a red circle", num_images=2, seed=4, best_of=3, temperature=1.5,
                 precision="fp32")  # fmt: skip
    alone = pipe("a red circle", seed=5, best_of=3, temperature=1.5, precision="fp32")
    assert alone.images[0].tobytes() == batch.images[1].tobytes()
    assert batch.metadata[0]["chain"][0]["request"]["best_of"] == 3
    one = pipe("a red circle", seed=5, temperature=1.5, precision="fp32")
    assert one.metadata[0]["chain"][0]["request"]["best_of"] == 1


def test_maskgit_best_of_keeps_the_draft_with_the_likeliest_committed_tokens(monkeypatch):
    """In one step every cell is committed from the fully masked grid, so a draft's score is
    the sum of log p(token | masked grid, prompt) under the conditional rows (no guidance)."""
    import pixloom.sampling.tokens as tokens_module

    model, prompts, k = _model("maskgit"), ["a red circle", "two blue squares"], 4
    seen = {}
    keep_best = tokens_module._keep_best

    def record(drafts, scores, best_of, judge=None, side=0):
        seen.update(drafts=drafts, scores=scores)
        return keep_best(drafts, scores, best_of, judge, side)

    monkeypatch.setattr(tokens_module, "_keep_best", record)
    best = sample_maskgit(model, _cond(model, prompts), count=2, steps=1, best_of=k,
                          guidance_scale=2.0, temperature=1.5,
                          generators=_generators([5, 6]))  # fmt: skip
    drafts = seen["drafts"]  # (2 * k, 16), image-major
    masked = torch.full_like(drafts, model.special)
    with torch.no_grad():
        logits = model.run_slots(masked, _cond(model, [p for p in prompts for _ in range(k)]))
    scores = logits.float().log_softmax(-1).gather(-1, drafts[..., None])[..., 0].sum(1)
    assert torch.allclose(seen["scores"], scores, atol=1e-4)
    assert len(set(scores.tolist())) == 2 * k  # distinct drafts: the choice is tested
    for i in range(2):
        mine = scores[i * k : (i + 1) * k].argmax()
        assert torch.equal(best[i].flatten(), drafts[i * k + mine])
    one = sample_maskgit(model, _cond(model, prompts), count=2, steps=3, best_of=1,
                         generators=_generators([5, 6]))  # fmt: skip
    assert torch.equal(one, sample_maskgit(model, _cond(model, prompts), count=2, steps=3,
                                           generators=_generators([5, 6])))  # fmt: skip


def test_png_written_before_best_of_existed_replays_with_one_draw(trained, tmp_path):
    """A stored request without best_of replays as best_of=1 (what drew it), even when the
    model now stores another default."""
    from PIL import Image

    import pixloom
    from pixloom.io.images import read_png_metadata, save_png

    pipe = pixloom.load(trained["token-ar"], device="cpu")
    request = TextToImageRequest("a red circle", seed=2, temperature=1.5,
                                 out=str(tmp_path / "o"), precision="fp32")  # fmt: skip
    (path,) = generate_files(request, pipe)
    metadata = read_png_metadata(path)
    del metadata["chain"][0]["request"]["best_of"]
    old = save_png(Image.open(path), tmp_path / "old.png", metadata=metadata)
    pipe.sampling["best_of"] = 4  # as if the checkpoint stored best_of 4
    replay = replay_request(old, TextToImageRequest(from_image=str(old), out=str(tmp_path / "r")))
    assert replay.best_of == 1
    (again,) = generate_files(replay, pipe)
    assert Image.open(again).tobytes() == Image.open(path).tobytes()
    assert pipe("a red circle", seed=2, temperature=1.5).metadata[0]["chain"][0]["request"][
        "best_of"] == 4  # fmt: skip


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_maskgit_fills_every_cell_in_exactly_steps(steps):
    model = _model("maskgit")
    seen = []
    run = model.run_slots

    def counting(slots, cond):
        seen.append(int((slots[0] == model.special).sum()))
        return run(slots, cond)

    model.run_slots = counting
    tokens = sample_maskgit(model, _cond(model, ["a red circle"]), count=1, steps=steps,
                            guidance_scale=1.0, generators=_generators([0]))  # fmt: skip
    assert len(seen) == steps and seen[0] == 16
    assert all(a > b for a, b in zip(seen, seen[1:]))  # each step unmasks at least one cell
    assert bool(((tokens >= 0) & (tokens < 16)).all())
    with pytest.raises(InvalidValue, match="steps"):
        sample_maskgit(model, None, count=1, steps=17, generators=_generators([0]))


def test_bad_configs_name_the_field():
    with pytest.raises(InvalidValue, match="model.heads"):
        build_model("token-ar", {**TINY, "heads": 3})
    with pytest.raises(InvalidValue, match="model.mode"):
        build_model("maskgit", {**TINY, "mode": "raster"})
    with pytest.raises(InvalidValue, match="model.vocab"):
        build_model("token-ar", {**TINY, "vocab": 32, "tokenizer": VQ})
    with pytest.raises(InvalidValue, match="cond"):
        _model()(torch.zeros(1, 16, dtype=torch.long), None, None)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from pixloom.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    tokenizer = build_model("vq", VQ)
    path = tmp_path_factory.mktemp("vq") / "tiny-vq"
    save_checkpoint(path, config={"family": "vq", "model": VQ}, weights=tokenizer.state_dict())
    return path


@pytest.fixture(scope="module")
def trained(tokenizer_dir, tmp_path_factory):
    """Two steps of each mode through the engine -> {family: model directory}."""
    from pixloom.data.registry import load_dataset
    from pixloom.training.config import TrainConfig
    from pixloom.training.engine import train

    dataset = load_dataset("shapes", resolution=16, train_size=32)
    models = {}
    for mode, family in (("raster", "token-ar"), ("maskgit", "maskgit")):
        options = {"mode": mode, "tokenizer": str(tokenizer_dir), "vocab_captions": 32,
                   "model_config": {k: v for k, v in TINY.items() if k not in ("vocab", "grid_size")},
                   "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2}}  # fmt: skip
        out = tmp_path_factory.mktemp(mode) / "run"
        config = TrainConfig(task="token-lm", data="shapes", resolution=16, task_options=options,
                             steps=2, batch_size=4, out=str(out), progress=False,
                             tensorboard=False, sample_every=2, precision="fp32")  # fmt: skip
        result = train(config, dataset=dataset)
        assert result.step == 2 and result.model is not None
        assert (out / "samples" / "step-0000002.png").exists()
        models[family] = result.model
    return models


@pytest.mark.parametrize("family", ["token-ar", "maskgit"])
def test_trained_pipeline_files_and_replay(trained, family, tmp_path):
    from PIL import Image

    import pixloom
    from pixloom.io.images import read_png_metadata

    pipe = pixloom.load(trained[family], device="cpu")
    assert type(pipe).__name__ == "TokenToImagePipeline"
    batch = pipe("a red circle", num_images=2, seed=4, temperature=1.5, precision="fp32")
    assert len(batch.images) == 2 and batch.images[0].size == (16, 16)
    alone = pipe("a red circle", num_images=1, seed=5, temperature=1.5, precision="fp32")
    assert alone.images[0].tobytes() == batch.images[1].tobytes()
    request = TextToImageRequest(
        "a red circle", num_images=2, seed=3, out=str(tmp_path / "o"), precision="fp32"
    )
    paths = generate_files(request, pipe)
    metadata = read_png_metadata(paths[1])
    stored = metadata["chain"][0]["request"]
    assert metadata["seed"] == 4 and stored["guidance_scale"] == 3.0
    assert (stored["steps"] is None) == (family == "token-ar")
    replay = TextToImageRequest(from_image=str(paths[1]), out=str(tmp_path / "replay"))
    (again,) = generate_files(replay_request(replay.from_image, replay), pipe)
    assert Image.open(again).tobytes() == Image.open(paths[1]).tobytes()
    with pytest.raises(InvalidValue, match="overwrite"):
        generate_files(request, pipe)


@pytest.mark.parametrize("family", ["token-ar", "maskgit"])
def test_batched_evaluation_draws_match_lone_draws(trained, family):
    import numpy as np

    import pixloom
    from pixloom.pipelines.text_to_image import draw_pairs

    pipe = pixloom.load(trained[family], device="cpu")
    prompts, seeds = ["a red circle", "a red circle", "two blue squares"], [4, 5, 9]
    batch = draw_pairs(pipe, prompts, seeds, temperature=1.5, precision="fp32")
    assert len(batch) == 3
    for image, prompt, seed in zip(batch, prompts, seeds):
        alone = pipe(prompt, seed=seed, temperature=1.5, precision="fp32").images[0]
        difference = np.abs(np.asarray(image, np.int16) - np.asarray(alone, np.int16))
        assert difference.max() <= 1  # same tokens; the batched decoder may round differently
    with pytest.raises(InvalidValue, match="seeds"):
        pipe.draw_batch(prompts, seeds[:2])
    with pytest.raises(InvalidValue, match="top_p" if family == "maskgit" else "truncation"):
        pipe.draw_batch(
            prompts, seeds, **({"top_p": 0.9} if family == "maskgit" else {"truncation": 0.5})
        )


def test_draw_pairs_calls_a_plain_pipeline_once_per_run_of_seeds():
    from PIL import Image

    from pixloom.pipelines.text_to_image import Result, draw_pairs

    calls = []

    def pipe(prompt, *, num_images, seed, **fields):
        calls.append((prompt, num_images, seed, fields))
        return Result(
            [Image.new("RGB", (4, 4), (seed, 0, 0)) for seed in range(seed, seed + num_images)], []
        )

    prompts = ["a", "a", "a", "b", "b", "a"]
    seeds = [0, 1, 3, 3, 4, 4]
    images = draw_pairs(pipe, prompts, seeds, precision="fp32")
    assert calls == [("a", 2, 0, {"precision": "fp32"}), ("a", 1, 3, {"precision": "fp32"}),
                     ("b", 2, 3, {"precision": "fp32"}), ("a", 1, 4, {"precision": "fp32"})]  # fmt: skip
    assert [image.getpixel((0, 0))[0] for image in images] == seeds
    with pytest.raises(InvalidValue, match="seeds"):
        draw_pairs(pipe, prompts, seeds[:-1])


@pytest.mark.parametrize(
    ("family", "fields", "name"),
    [
        ("token-ar", {"truncation": 0.5}, "truncation"),
        ("token-ar", {"steps": 4}, "steps"),
        ("token-ar", {"top_k": 999}, "top_k"),
        ("maskgit", {"top_p": 0.9}, "top_p"),
        ("maskgit", {"steps": 17}, "steps"),
    ],
)
def test_token_pipeline_refuses_unused_or_impossible_fields(trained, family, fields, name):
    import pixloom

    pipe = pixloom.load(trained[family], device="cpu")
    with pytest.raises(InvalidValue, match=name):
        pipe("a red circle", **fields)


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"guidance_scale": -1}, "guidance_scale"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"best_of": 0}, "best_of"),
        ({"best_of": 65}, "best_of"),
        ({"best_of": 2.0}, "best_of"),
        ({"best_of": True}, "best_of"),
    ],
)
def test_request_sampling_fields_validated(fields, name):
    with pytest.raises(InvalidValue, match=name):
        TextToImageRequest("a red circle", **fields)


def test_gan_pipeline_refuses_sampling_fields():
    from pixloom.pipelines.text_to_image import TextToImagePipeline

    generator = build_model("mlp-gan", {"resolution": 8, "z_dim": 4, "hidden": 8, "layers": 1})
    pipe = TextToImagePipeline(generator, name="g", sha256=None, family="mlp-gan", device="cpu")
    for name, value, users in [("guidance_scale", 2.0, "maskgit"), ("steps", 4, "maskgit"),
                               ("top_k", 5, "token-ar")]:  # fmt: skip
        request = TextToImageRequest("x", **{name: value})
        with pytest.raises(InvalidValue, match=f"{name}.*{users}"):
            pipe.resolve(request)
    assert pipe.resolve(TextToImageRequest("x")).guidance_scale is None
    cooler = TextToImagePipeline(generator, name="g", sha256=None, family="mlp-gan",
                                 device="cpu", sampling={"truncation": 0.7})  # fmt: skip
    assert cooler.resolve(TextToImageRequest("x")).truncation == 0.7
    assert cooler.resolve(TextToImageRequest("x", truncation=1)).truncation == 1
    with pytest.raises(InvalidValue, match="sampling.temperature.*truncation"):
        TextToImagePipeline(generator, name="g", sha256=None, family="mlp-gan",
                            sampling={"temperature": 0.5})  # fmt: skip


def test_mask_schedule_is_cosine():
    from pixloom.sampling.tokens import masked_count
    from pixloom.training.tasks.token_lm import random_mask

    assert [masked_count(s, 4, 16) for s in range(4)] == [
        math.floor(16 * math.cos(math.pi / 2 * (s + 1) / 4)) for s in range(4)
    ]
    mask = random_mask(64, 16, torch.device("cpu"))
    assert bool((mask.sum(1) >= 1).all()) and mask.shape == (64, 16)
    assert dataclasses.is_dataclass(TokenCondition)


def test_export_swaps_in_a_fine_tuned_decoder_and_refuses_other_codes(
    trained, tokenizer_dir, tmp_path, capsys
):
    from pixloom.cli.main import main
    from pixloom.io.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint

    source = load_checkpoint(trained["token-ar"])
    held = {
        n[len("tokenizer.") :]: t for n, t in source.weights.items() if n.startswith("tokenizer.")
    }

    def tokenizer(name, edit):
        weights = {n: edit(n, t.clone()) for n, t in held.items()}
        return save_checkpoint(tmp_path / name, config={"family": "vq", "model": VQ},
                               weights=weights)  # fmt: skip

    sharper = tokenizer("sharper", lambda n, t: t + 0.5 if n.startswith("decoder.") else t)
    assert main(["export", str(source.path), str(tmp_path / "out"), "--dtype", "float32",
                 "--tokenizer", str(sharper)]) == 0  # fmt: skip
    assert "token-ar, weights float32" in capsys.readouterr().out
    out = load_checkpoint(tmp_path / "out")
    for name, tensor in out.weights.items():
        if name.startswith("tokenizer.decoder."):
            assert torch.equal(tensor, held[name[len("tokenizer.") :]] + 0.5), name
        else:
            assert torch.equal(tensor, source.weights[name]), name
    assert out.config["storage"]["tokenizer_sha256"] == load_checkpoint(sharper).sha256

    other_codes = tokenizer("other", lambda n, t: t + 0.5 if n.startswith("encoder.") else t)
    with pytest.raises(InvalidValue, match="encoder.") as error:
        export_checkpoint(source.path, tmp_path / "x", tokenizer=other_codes)
    assert error.value.field == "tokenizer"
    with pytest.raises(InvalidValue, match="holds no tokenizer"):
        export_checkpoint(tokenizer_dir, tmp_path / "y", tokenizer=sharper)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_export_stores_sampling_defaults_that_requests_override(trained, tmp_path, capsys):
    import pixloom
    from pixloom.cli.main import main

    target = tmp_path / "cool"
    assert main(["export", str(trained["token-ar"]), str(target),
                 "--sampling", "temperature=0.5", "--sampling", "top_k=8"]) == 0  # fmt: skip
    pipe = pixloom.load(target, device="cpu")
    resolved = pipe.resolve(TextToImageRequest("a red circle"))
    assert (resolved.temperature, resolved.top_k, resolved.guidance_scale) == (0.5, 8, 3.0)
    assert pipe.resolve(TextToImageRequest("a red circle", temperature=1.0)).temperature == 1.0
    stored = pipe("a red circle", precision="fp32").metadata[0]["chain"][0]["request"]
    assert stored["temperature"] == 0.5 and stored["top_k"] == 8  # replay needs no defaults

    again = tmp_path / "best"  # an export of the export: one more default, the lineage kept
    assert main(["export", str(target), str(again), "--sampling", "best_of=3"]) == 0
    from pixloom.io.checkpoint import load_checkpoint

    first, second = load_checkpoint(target), load_checkpoint(again)
    assert second.config["sampling"] == {"temperature": 0.5, "top_k": 8, "best_of": 3}
    assert second.config["storage"]["source_sha256"] == first.sha256
    assert second.config["storage"]["source_storage"] == first.config["storage"]
    assert "source_storage" not in first.config["storage"]
    assert pixloom.load(again, device="cpu").resolve(TextToImageRequest("a")).best_of == 3

    capsys.readouterr()
    for entry, field in [("truncation=0.5", "sampling.truncation"), ("steps=4", "sampling.steps"),
                         ("temperature=-1", "sampling.temperature"), ("temperature", "sampling"),
                         ("top_k=two", "sampling"), ("best_of=0", "sampling.best_of")]:  # fmt: skip
        assert main(["export", str(trained["token-ar"]), str(tmp_path / "bad"),
                     "--sampling", entry]) != 0, entry  # fmt: skip
        assert field in capsys.readouterr().err, entry
        assert not (tmp_path / "bad").exists()

    from pixloom.pipelines.text_to_image import sampling_defaults

    with pytest.raises(InvalidValue, match="config.json:sampling"):
        sampling_defaults({"sampling": [0.5]}, "token-ar")
    assert sampling_defaults({"sampling": {"truncation": 0.7}}, "stylegan") == {"truncation": 0.7}
    assert sampling_defaults({}, "maskgit") == {}


def test_init_from_continues_a_trained_model_and_refuses_mismatches(trained, tmp_path):
    from pixloom.data.registry import load_dataset
    from pixloom.errors import CheckpointError
    from pixloom.io.checkpoint import load_checkpoint
    from pixloom.training.config import TrainConfig
    from pixloom.training.engine import train
    from pixloom.training.tasks.token_lm import make_token_lm_task

    info = load_dataset("shapes", resolution=16, train_size=32).info
    start = load_checkpoint(trained["token-ar"])
    task = make_token_lm_task({"init_from": str(trained["token-ar"])}, info)
    own = task.transformer.state_dict()
    assert all(torch.equal(own[name], weight) for name, weight in start.weights.items())
    assert task.model_config.text_encoder["vocab"] == start.model_config["text_encoder"]["vocab"]

    config = TrainConfig(task="token-lm", data="shapes", resolution=16, steps=1, batch_size=4,
                         task_options={"init_from": str(trained["token-ar"]), "lr": 1e-4},
                         out=str(tmp_path / "more"), progress=False, tensorboard=False,
                         precision="fp32")  # fmt: skip
    result = train(config, dataset=load_dataset("shapes", resolution=16, train_size=32))
    assert load_checkpoint(result.model).model_config == start.model_config

    wrong = [({"init_from": str(trained["token-ar"]), "mode": "maskgit"}, "init_from"),
             ({"init_from": str(trained["token-ar"]), "tokenizer": "runs/x"}, "tokenizer"),
             ({"init_from": str(trained["token-ar"]), "model_config": {"dim": 8}}, "model_config"),
             ({"init_from": str(trained["token-ar"]), "text_encoder": "minilm"}, "text_encoder")]  # fmt: skip
    for options, name in wrong:
        with pytest.raises(InvalidValue, match=f"task_options.{name}"):
            make_token_lm_task(options, info)
    with pytest.raises(CheckpointError, match="task_options.init_from: .*shapes-ar"):
        make_token_lm_task({"init_from": str(tmp_path / "none")}, info)


def test_warm_start_keeps_the_text_side_and_blocks_on_a_new_tokenizer(trained, tmp_path):
    from pixloom.data.registry import load_dataset
    from pixloom.errors import CheckpointError
    from pixloom.io.checkpoint import load_checkpoint, save_checkpoint
    from pixloom.training.tasks.token_lm import make_token_lm_task

    finer = {**VQ, "downsample": 2, "codebook_size": 24}  # 8x8 grid, 24 codes
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "vq16", config={"family": "vq", "model": finer},
                    weights=build_model("vq", finer).state_dict())  # fmt: skip
    info = load_dataset("shapes", resolution=16, train_size=32).info
    start = load_checkpoint(trained["token-ar"])
    task = make_token_lm_task({"mode": "maskgit", "tokenizer": str(tmp_path / "vq16"),
                               "warm_start": str(trained["token-ar"])}, info)  # fmt: skip
    config = task.model_config
    assert (config.vocab, config.grid_size, config.mode) == (24, 8, "maskgit")
    assert config.text_encoder == start.model_config["text_encoder"]  # vocabulary included
    assert (config.dim, config.depth) == (TINY["dim"], TINY["depth"])
    own = task.transformer.state_dict()
    shared = [name for name in start.weights if name.startswith(("blocks.", "text_"))]
    assert shared and all(torch.equal(own[name], start.weights[name]) for name in shared)
    assert own["embed.weight"].shape == (25, TINY["dim"]) and own["head.weight"].shape[0] == 24
    task.loss("lm", next(iter(torch.utils.data.DataLoader(
        load_dataset("shapes", resolution=16, train_size=8), batch_size=4))), 0)  # fmt: skip

    base = {"tokenizer": str(tmp_path / "vq16"), "warm_start": str(trained["token-ar"])}
    wrong = [({**base, "model_config": {"dim": 8}}, "model_config"),
             ({**base, "text_encoder": "none"}, "text_encoder"),
             ({**base, "init_from": str(trained["token-ar"]), "tokenizer": ""}, "warm_start"),
             ({**base, "warm_start": str(tmp_path / "vq16")}, "warm_start")]  # fmt: skip
    for options, name in wrong:
        with pytest.raises(InvalidValue, match=f"task_options.{name}"):
            make_token_lm_task(options, info)
    with pytest.raises(CheckpointError, match="task_options.warm_start"):
        make_token_lm_task({**base, "warm_start": str(tmp_path / "none")}, info)


@pytest.mark.parametrize("suffix", ["", "-flat"])
def test_shapes_ar16_preset_warm_starts_on_the_16x16_tokenizer(suffix):
    from pixloom.configs import config_from_dict
    from pixloom.training.config import TrainConfig
    from pixloom.training.presets import load_preset
    from pixloom.training.tasks.token_lm import TokenLmTaskOptions

    config = config_from_dict(TrainConfig, load_preset(f"shapes-ar16{suffix}"))
    options = config_from_dict(TokenLmTaskOptions, config.task_options, where="task_options")
    assert options.tokenizer == load_preset(f"shapes-vq16{suffix}")["out"]
    assert options.warm_start == load_preset("shapes-ar-continue4")["out"]
    assert options.mode == "raster" and not options.model_config and config.compile
    if suffix:  # the A/B twin: only the data's noise, the tokenizer and the folder differ
        plain, twin = load_preset("shapes-ar16"), load_preset(f"shapes-ar16{suffix}")
        assert twin.pop("data_options") == {"noise": False}
        assert load_preset(f"shapes-vq16{suffix}")["data_options"] == {"noise": False}
        assert {k: v for k, v in twin.items() if k not in ("task_options", "out")} == {
            k: v for k, v in plain.items() if k not in ("task_options", "out")
        }
        assert {**twin["task_options"], "tokenizer": None} == {
            **plain["task_options"],
            "tokenizer": None,
        }


def _assert_shipped_from(name, preset):
    """The shipped model `name` recorded the preset's run (init_from aside: it names its start)."""
    import json

    from pixloom.weights import weights_root

    config = json.loads((weights_root() / name / "config.json").read_text())
    trained = config["training"]
    for key in ("data", "resolution", "steps", "batch_size", "seed", "out"):
        assert trained[key] == preset[key], key
    options = {k: v for k, v in trained["task_options"].items() if k != "init_from"}
    assert options == {k: v for k, v in preset["task_options"].items() if k != "init_from"}
    return config


def test_shipped_shapes_ar_is_the_last_stage_of_its_preset_chain():
    from pixloom.training.presets import load_preset

    stages = [
        load_preset(name)
        for name in (
            "shapes-ar",
            "shapes-ar-continue",
            "shapes-ar-continue2",
            "shapes-ar-continue3",
            "shapes-ar-continue4",
        )
    ]
    for before, after in zip(stages, stages[1:]):  # each continues its predecessor's run
        assert after["task_options"]["init_from"] == before["out"]
        assert after["task_options"]["lr"] <= before["task_options"]["lr"]
        assert after["task_options"]["mode"] == "raster"
    shipped = _assert_shipped_from("shapes-ar", stages[-1])
    assert shipped["sampling"] == {"temperature": 0.5, "guidance_scale": 2.5, "best_of": 8}
    # re-exported with the relation critic and best_of 8 from the file with the grounded
    # critic (64ef6f3a), itself re-exported from the file with the first critic (100fcae7),
    # re-exported from the best_of re-export (same weights, 6d9bfe81) of the file exported
    # from the run with the text3 decoder
    chain = [("64ef6f3a", RELATION_CRITIC), ("100fcae7", GROUNDED_CRITIC),
             ("6d9bfe81", SHIPPED_CRITIC), ("6d9bfe81", None), ("72528de7", None)]  # fmt: skip
    _assert_exported_from(shipped["storage"], chain)


def _assert_exported_from(storage: dict, chain: list[tuple[str, str | None]]) -> None:
    """Each re-export's storage names the file it came from and the critic it put in (None:
    none checked), newest first, down the nested source_storage."""
    for source, critic in chain:
        assert storage["source_sha256"].startswith(source)
        if critic is not None:
            assert storage["critic_sha256"].startswith(critic)
        storage = storage.get("source_storage", {})


def test_shipped_shapes_maskgit_is_the_last_stage_of_its_preset_chain():
    from pixloom.training.presets import load_preset

    first = load_preset("shapes-maskgit-continue")
    assert first["task_options"]["init_from"] == load_preset("shapes-maskgit")["out"]
    stages = [load_preset(f"shapes-maskgit-continue{n}") for n in (3, 4, 5)]
    # the second continuation is a command: --preset shapes-maskgit-continue -o OUT2
    assert stages[0]["task_options"]["init_from"] == "runs/shapes-maskgit-continue2/model"
    for before, after in zip(stages, stages[1:]):  # each continues its predecessor's run
        assert after["task_options"]["init_from"] == before["out"]
    assert all(stage["task_options"]["mode"] == "maskgit" for stage in stages)
    shipped = _assert_shipped_from("shapes-maskgit", stages[-1])
    assert shipped["sampling"] == {"temperature": 0.7, "best_of": 4}
    # re-exported with the relation critic from the file with the grounded critic (d8ea3581),
    # itself re-exported from the file holding the first critic (834a1f33), re-exported from
    # the best_of re-export (same weights, e42ff0d3) of the file exported from the run with
    # the text3 decoder
    chain = [("d8ea3581", RELATION_CRITIC), ("834a1f33", GROUNDED_CRITIC),
             ("e42ff0d3", SHIPPED_CRITIC), ("e42ff0d3", None), ("498b492a", None)]  # fmt: skip
    _assert_exported_from(shipped["storage"], chain)


def test_shipped_text_to_image_models_hold_the_grounded_critic_or_its_relation_fine_tune():
    """shapes-t2i holds the critic --preset shapes-critic-joint-ground trains, the token
    models its fine-tune --preset shapes-critic-relations (the vocabulary is the training
    captions' words; the config the presets')."""
    import json

    from pixloom.training.presets import load_preset
    from pixloom.weights import weights_root

    options = load_preset("shapes-critic-joint-ground")["task_options"]
    added = load_preset("shapes-critic-relations")["task_options"]["model_config"]
    relation_fields = {**options["model_config"], **added}
    for name, sha, fields in (("shapes-ar", RELATION_CRITIC, relation_fields),
                              ("shapes-maskgit", RELATION_CRITIC, relation_fields),
                              ("shapes-t2i", GROUNDED_CRITIC, options["model_config"])):  # fmt: skip
        config = json.loads((weights_root() / name / "config.json").read_text())
        assert config["storage"]["critic_sha256"].startswith(sha), name
        for key, value in fields.items():
            assert config["model"]["critic"][key] == value, (name, key)
        for key, value in options["text_encoder_config"].items():
            assert config["model"]["critic"]["text_encoder"][key] == value, (name, key)
    t2i = json.loads((weights_root() / "shapes-t2i" / "config.json").read_text())
    assert t2i["storage"]["dtype"] == "float32"  # the generator's weights as trained
    assert t2i["sampling"] == {"best_of": 16}
