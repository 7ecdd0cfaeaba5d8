"""The CPU training fast paths: written-out attention, the tokenizer-code cache, --compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixloom.errors import InvalidValue
from pixloom.models.attention import attention
from pixloom.models.registry import build_model
from pixloom.training.tasks.token_lm import CodeCache

VQ = {"resolution": 16, "downsample": 4, "channels": 8, "codebook_size": 16, "code_dim": 4}
TINY = {"dim": 32, "depth": 2, "heads": 2, "max_text_tokens": 6}


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_written_out_attention_matches_the_fused_kernel_with_gradients(dtype, tolerance):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 8, dtype=dtype) for _ in range(3))
    mask = torch.rand(3, 1, 7, 7) < 0.7
    mask[..., 0] = True  # every row keeps a key
    grad = torch.randn(3, 2, 7, 8, dtype=dtype)
    outputs, grads = [], []
    for function in (attention, F.scaled_dot_product_attention):  # CPU + grad: written out
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        out = function(*inputs, mask)  # the fourth argument is the mask for both
        out.backward(grad)
        outputs.append(out.detach().float())
        grads.append([t.grad.float() for t in inputs])
    assert torch.allclose(*outputs, atol=tolerance)
    for mine, fused in zip(*grads):
        assert torch.allclose(mine, fused, atol=tolerance * 4)
    with torch.no_grad():  # no grad: the fused kernel itself, no mask: every key
        assert torch.equal(attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("training", [True, False])
def test_builtin_encoder_layers_give_what_the_torch_layer_gives(training):
    from pixloom.text.builtin import (
        BuiltinTextConfig,
        BuiltinTextEncoder,
        build_vocabulary,
        encoder_layer,
    )

    torch.manual_seed(0)
    vocab = build_vocabulary(["a red circle left of a blue square"])
    encoder = BuiltinTextEncoder(BuiltinTextConfig(vocab=vocab, dim=32, layers=2, heads=4))
    encoder.train(training)
    x = torch.randn(3, 6, 32)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]).bool()
    for block in encoder.blocks:
        with torch.set_grad_enabled(training):
            expected = block(x, src_key_padding_mask=~mask)
            assert torch.allclose(encoder_layer(block, x, mask)[mask], expected[mask], atol=1e-5)


def test_code_cache_encodes_each_image_once_and_gives_the_tokenizers_codes():
    torch.manual_seed(0)
    tokenizer = build_model("vq", VQ).eval()
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        direct = tokenizer.encode(images).indices  # (6, 4, 4)
    cache = CodeCache()
    calls = []
    original = tokenizer.encode
    tokenizer.encode = lambda x: calls.append(len(x)) or original(x)
    assert torch.equal(cache.encode(tokenizer, images[:4]), direct[:4])
    mixed = cache.encode(
        tokenizer, images[[5, 0, 3, 4]].contiguous(memory_format=torch.channels_last)
    )
    assert torch.equal(mixed, direct[[5, 0, 3, 4]]) and mixed.dtype == torch.long
    assert calls == [4, 2]  # only images 5 and 4 were new
    assert (cache.hits, cache.misses, len(cache.entries)) == (2, 6, 6)

    full = CodeCache(max_entries=3)  # past its size nothing more is stored, codes stay right
    assert torch.equal(full.encode(tokenizer, images[:4]), direct[:4]) and not full.entries
    assert torch.equal(full.encode(tokenizer, images[:2]), direct[:2]) and len(full.entries) == 2


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from pixloom.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vq") / "tiny-vq"
    save_checkpoint(
        path, config={"family": "vq", "model": VQ}, weights=build_model("vq", VQ).state_dict()
    )
    return path


def _config(tokenizer_dir, out, **fields):
    from pixloom.training.config import TrainConfig

    options = {"mode": "raster", "tokenizer": str(tokenizer_dir), "vocab_captions": 32,
               "model_config": TINY, "text_encoder_config": {"dim": 16, "layers": 1, "heads": 2}}  # fmt: skip
    return TrainConfig(task="token-lm", data="shapes", resolution=16, task_options=options,
                       steps=3, batch_size=4, out=str(out), progress=False, tensorboard=False,
                       seed=1, **fields)  # fmt: skip


def test_compiled_training_matches_eager_and_keeps_checkpoints_plain(tokenizer_dir, tmp_path):
    from pixloom.data.registry import load_dataset
    from pixloom.io.checkpoint import load_checkpoint
    from pixloom.training.engine import train
    from pixloom.training.state import build_run

    dataset = load_dataset("shapes", resolution=16, train_size=8)
    run = build_run(_config(tokenizer_dir, tmp_path / "probe", compile=True), dataset=dataset)
    blocks = run.modules["transformer"].blocks
    assert all(block._compiled_call_impl is not None for block in blocks)
    assert all(block._compiled_call_impl is None for block in run.ema.module.blocks)

    results = {}
    for compiled in (False, True):
        config = _config(
            tokenizer_dir, tmp_path / str(compiled), compile=compiled, precision="fp32"
        )
        result = train(config, dataset=dataset)
        results[compiled] = load_checkpoint(result.model).weights
    assert results[True].keys() == results[False].keys()  # no "_orig_mod." in the names
    for name, weight in results[False].items():
        assert torch.allclose(results[True][name], weight, atol=1e-4), name


def test_compile_is_refused_by_tasks_without_a_compiled_path(tmp_path):
    from pixloom.training.config import TrainConfig
    from pixloom.training.state import build_run

    config = TrainConfig(task="classifier", data="digits", resolution=16, steps=1, batch_size=4,
                         out=str(tmp_path), compile=True, task_options={"width": 8})  # fmt: skip
    with pytest.raises(InvalidValue, match="compile.*token-lm"):
        build_run(config)


def test_compile_on_the_cpu_without_a_cxx_compiler_is_refused_by_name(
    tokenizer_dir, tmp_path, monkeypatch
):
    from pixloom.data.registry import load_dataset
    from pixloom.training.state import build_run

    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    dataset = load_dataset("shapes", resolution=16, train_size=8)
    with pytest.raises(InvalidValue, match="compile.*C\\+\\+ compiler"):
        build_run(_config(tokenizer_dir, tmp_path, compile=True), dataset=dataset)
