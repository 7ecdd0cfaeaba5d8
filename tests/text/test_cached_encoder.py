"""CachedEncoder: a full cache starts over without losing rows the current batch needs."""

import torch

from pixloom.text.embedding import TextEmbedding
from pixloom.text.registry import CachedEncoder


class CountingEncoder:
    """Encodes a prompt as its length; counts the prompts it was asked to encode."""

    name, dim, max_length = "counting", 2, 4

    def __init__(self):
        self.calls = 0

    def encode(self, prompts):
        self.calls += len(prompts)
        pooled = torch.tensor([[len(p), 1.0] for p in prompts])
        return TextEmbedding(
            pooled[:, None].repeat(1, 2, 1), torch.ones(len(prompts), 2, dtype=torch.bool), pooled
        )


def test_full_cache_keeps_the_rows_of_the_current_batch():
    encoder = CountingEncoder()
    cached = CachedEncoder(encoder, max_entries=2)
    cached.encode(["a", "bb"])
    out = cached.encode(["a", "ccc", "bb"])  # over the limit while "a" and "bb" are cached
    assert out.pooled[:, 0].tolist() == [1.0, 3.0, 2.0]
    assert encoder.calls == 3 and len(cached.rows) == 1  # started over with the new row
    assert cached.encode(["ccc"]).pooled[0, 0] == 3.0 and encoder.calls == 3
