"""draw_rows: per-row generators, the right frequencies, never a filtered token."""

import torch

from pixloom.sampling.tokens import draw_rows, filter_logits


def test_frequencies_follow_the_probabilities_and_filtered_tokens_never_appear():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    logits = probs.log().expand(4000, 4)  # log(0) = -inf: a filtered token
    generators = [torch.Generator().manual_seed(i) for i in range(4000)]
    ids = draw_rows(logits, 1.0, generators)
    counts = torch.bincount(ids, minlength=4).float() / 4000
    assert counts[1] == 0 and torch.allclose(counts, probs, atol=0.03)


def test_rows_replay_alone_and_positions_are_drawn_independently():
    logits = torch.randn(3, 5, 7)
    batch = draw_rows(logits, 0.8, [torch.Generator().manual_seed(s) for s in (4, 5, 6)])
    alone = draw_rows(logits[1:2], 0.8, [torch.Generator().manual_seed(5)])
    assert batch.shape == (3, 5) and torch.equal(batch[1:2], alone)
    assert torch.equal(draw_rows(logits, 0.0, []), logits.argmax(-1))
    kept = filter_logits(logits[0], top_k=1)  # only the best survives: the draw must be it
    assert torch.equal(draw_rows(kept[None], 1.0, [torch.Generator()])[0], logits[0].argmax(-1))
