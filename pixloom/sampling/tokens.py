"""Decoding image tokens: raster sampling with a KV cache, and MaskGIT parallel decoding.

Both take classifier-free guidance (Ho & Salimans 2022) the way LLM samplers do: the
conditional and the null-prefix rows run in one batch and logits = u + s * (c - u).
Randomness is per image: row i draws only from generators[i], so an image replays alone.
Functions take the network and return token indices (B, h, w); decoding to pixels is the
tokenizer's job.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pixloom.errors import require


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set logits outside the top-k and outside the top-p nucleus (Holtzman et al. 2020) to -inf.

    logits (..., V). top_k None/0 and top_p None/1 disable the filters; the most likely token
    always survives.
    """
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        ordered, order = torch.sort(logits, dim=-1, descending=True)
        probs = ordered.float().softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of strictly more likely tokens
        drop = before >= top_p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def guided_logits(logits: Tensor, count: int, guidance_scale: float) -> Tensor:
    """Rows [cond (count); null (count)] -> u + s (c - u) (count rows); passthrough if unguided."""
    if logits.shape[0] == count:
        return logits
    cond, null = logits[:count].float(), logits[count:].float()  # (count, ..., V) each
    return null + guidance_scale * (cond - null)


def draw_rows(logits: Tensor, temperature: float, generators: list[torch.Generator],
              uniforms: Tensor | None = None) -> Tensor:  # fmt: skip
    """One categorical draw per position, row i from generators[i]; temperature 0 = argmax.

    logits (B, V) or (B, N, V) -> ids (B,) or (B, N). Inverse-CDF sampling: each row takes
    its uniforms from its own generator (so an image replays alone), then one vectorized
    search over the cumulative probabilities draws every row at once. `uniforms` (B, [N]),
    already on the logits' device, replaces the generators' draws (see sample_raster).
    """
    if temperature == 0:
        return logits.argmax(-1)
    probs = (logits.float() / temperature).softmax(-1)
    cumulative = probs.cumsum(-1)  # (B, [N,] V)
    if uniforms is None:
        shape = probs.shape[1:-1]  # () or (N,)
        uniforms = torch.stack([torch.rand(shape, generator=g) for g in generators])
    uniforms = uniforms.to(probs.device) * cumulative[..., -1]  # (B, [N]) scaled to the total
    ids = torch.searchsorted(cumulative, uniforms[..., None], right=True)[..., 0]
    return ids.clamp_max(probs.shape[-1] - 1)  # rounding at the top end


def _batch_condition(model, cond, count: int, guidance_scale: float):
    """(condition for the model batch, rows per half): null rows appended when guiding."""
    require(len(cond) == count if cond is not None else True, "cond",
            None if cond is None else len(cond), f"{count} rows")  # fmt: skip
    guided = cond is not None and model.config.prefix_length > 0 and guidance_scale != 1
    return (cond.with_null() if guided else cond), guided


def _check(count: int, generators: list, temperature: float) -> None:
    require(count >= 1, "count", count, "an integer >= 1")
    require(len(generators) == count, "generators", len(generators), f"{count} generators")
    require(temperature >= 0, "temperature", temperature, "a number >= 0")


def _drafts(cond, count: int, best_of: int):
    """(cond with each row repeated best_of times, draft rows): image i's drafts are rows
    i*K ... i*K + K-1 (best-of-K sampling, as LLM completion APIs' best_of)."""
    require(isinstance(best_of, int) and not isinstance(best_of, bool) and best_of >= 1,
            "best_of", best_of, "an integer >= 1")  # fmt: skip
    if best_of > 1 and cond is not None:
        cond = cond.repeat_rows(best_of)
    return cond, count * best_of


def _uniforms(generators: list[torch.Generator], best_of: int, total: int, device) -> Tensor:
    """(count * K, total) uniforms, image i's K draft rows in turn from generators[i]: with
    K = 1 the same numbers as one torch.rand(total) per generator, so an image replays alone."""
    rows = [torch.rand(best_of, total, generator=g) for g in generators]
    return torch.stack(rows).view(-1, total).to(device)


def _keep_best(tokens: Tensor, scores: Tensor, best_of: int, judge=None, side: int = 0) -> Tensor:
    """Draft rows (count * K, N) and their scores -> (count, N), each image's best draft;
    `judge`, when given, scores the drafts (count * K, side, side) instead."""
    if best_of == 1:
        return tokens
    if judge is not None:
        scores = judge(tokens.view(-1, side, side)).to(tokens.device)
        require(scores.shape == (tokens.shape[0],), "judge", tuple(scores.shape),
                f"one score per draft: ({tokens.shape[0]},)")  # fmt: skip
    count = tokens.shape[0] // best_of
    best = scores.view(count, best_of).argmax(1)
    return tokens.view(count, best_of, -1)[torch.arange(count, device=tokens.device), best]


def _token_log_probs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p of each given token under logits (..., V) -> (...), in fp32."""
    return logits.float().log_softmax(-1).gather(-1, tokens[..., None])[..., 0]


@torch.no_grad()
def sample_raster(model, cond, *, count: int, guidance_scale: float = 1.0,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  generators: list[torch.Generator], use_cache: bool = True,
                  best_of: int = 1, judge=None) -> Tensor:  # fmt: skip
    """Raster-order autoregressive sampling (Esser et al. 2021) -> indices (count, h, w).

    use_cache=False recomputes the whole sequence at every step (the benchmark baseline).
    Every step draws one uniform per row, so each row's N uniforms are drawn up front in one
    call and moved to the device once: a CPU generator yields the same numbers either way,
    and a GPU step then never waits for a host-to-device copy.

    best_of=K draws K sequences per image, all in one batch, and keeps the one the model
    finds likeliest given the prompt (the highest log p(tokens | prompt), unguided), as the
    best_of of LLM completion APIs. Image i's generator yields its K candidates' uniforms in
    turn, so the first candidate is what best_of=1 draws and an image still replays alone.
    `judge` (drafts (count * K, h, w) -> scores (count * K,)), when given, chooses instead:
    the pipeline passes the model's critic there (pixloom.models.critic).
    """
    _check(count, generators, temperature)
    cond, n = _drafts(cond, count, best_of)
    batch_cond, guided = _batch_condition(model, cond, n, guidance_scale)
    rows = 2 * n if guided else n
    side, total = model.config.grid_size, model.num_tokens
    device = model.embed.weight.device
    tokens = torch.zeros(n, total, dtype=torch.long, device=device)
    log_likelihood = torch.zeros(n, device=device)
    uniforms = _uniforms(generators, best_of, total, device) if temperature > 0 else None
    if use_cache:
        dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(
            device.type) else model.embed.weight.dtype  # fmt: skip
        logits, cache = model.prefill(batch_cond, rows, dtype)
    for j in range(total):
        if not use_cache:
            slots = torch.cat(
                [torch.full((n, 1), model.special, device=device), tokens[:, :j]], 1
            )  # fmt: skip  (n, j + 1)
            slots = torch.cat([slots, slots]) if guided else slots
            logits = model.run_slots(slots, batch_cond)[:, -1]  # (rows, V)
        guided_step = guided_logits(logits, n, guidance_scale)
        filtered = filter_logits(guided_step.float(), top_k, top_p)
        tokens[:, j] = draw_rows(filtered, temperature, generators,
                                 None if uniforms is None else uniforms[:, j])  # fmt: skip
        if best_of > 1 and judge is None:  # the conditional rows' log-probability of the token
            log_likelihood += _token_log_probs(logits[:n], tokens[:, j])
        if use_cache and j + 1 < total:
            step_tokens = torch.cat([tokens[:, j]] * 2) if guided else tokens[:, j]
            logits = model.forward_step(step_tokens, cache)
    return _keep_best(tokens, log_likelihood, best_of, judge, side).view(count, side, side)


def masked_count(step: int, steps: int, total: int) -> int:
    """Tokens still masked after `step` (0-based) of `steps`: N cos(pi/2 (step+1)/steps)."""
    return math.floor(total * math.cos(math.pi / 2 * (step + 1) / steps))


@torch.no_grad()
def sample_maskgit(model, cond, *, count: int, steps: int = 8, guidance_scale: float = 1.0,
                   temperature: float = 1.0, generators: list[torch.Generator],
                   choice_temperature: float = 4.5, best_of: int = 1,
                   judge=None) -> Tensor:  # fmt: skip
    """MaskGIT iterative decoding (Chang et al. 2022) -> indices (count, h, w).

    Start fully masked; at each step draw every masked cell, keep the most confident draws
    and re-mask the rest so that N cos(pi/2 t/T) stay masked (cosine schedule). Confidence is
    the drawn token's log-probability plus Gumbel noise scaled by choice_temperature (1 - t/T),
    annealed to 0. Every step unmasks at least one cell; after `steps` steps none is left.

    best_of=K decodes K drafts per image in one batch and keeps the one whose tokens the
    model found likeliest given the prompt as it committed them: the sum, over cells, of the
    conditional (unguided) log-probability of each cell's token at the step it was kept.
    Image i's generator yields its drafts' numbers at every step, so an image replays alone;
    best_of=1 draws what it always did. `judge` chooses instead when given, as in
    sample_raster.
    """
    _check(count, generators, temperature)
    total, side = model.num_tokens, model.config.grid_size
    require(1 <= steps <= total, "steps", steps, f"an integer from 1 to {total} (the token count)")
    cond, n = _drafts(cond, count, best_of)
    batch_cond, guided = _batch_condition(model, cond, n, guidance_scale)
    device = model.embed.weight.device
    tokens = torch.full((n, total), model.special, dtype=torch.long, device=device)
    committed = torch.zeros(n, device=device)  # the drafts' scores (best_of > 1)
    for step in range(steps):
        masked = tokens == model.special  # (n, N)
        remaining = int(masked[0].sum())
        inputs = torch.cat([tokens, tokens]) if guided else tokens
        raw = model.run_slots(inputs, batch_cond)
        logits = guided_logits(raw, n, guidance_scale)
        uniforms = _uniforms(generators, best_of, total, device) if temperature > 0 else None
        drawn = draw_rows(logits.float(), temperature, generators, uniforms)  # (n, N)
        drawn = torch.where(masked, drawn, tokens)
        confidence = _token_log_probs(logits.float() / max(temperature, 1e-6), drawn)  # (n, N)
        keep_masked = min(masked_count(step, steps, total), remaining - 1)
        if keep_masked <= 0:
            kept = drawn
        else:
            noise = _uniforms(generators, best_of, total, device)
            gumbel = -torch.log(-torch.log(noise.clamp(1e-20, 1 - 1e-7)))
            confidence = confidence + choice_temperature * (1 - (step + 1) / steps) * gumbel
            confidence = confidence.masked_fill(~masked, float("inf"))  # known cells stay known
            lowest = confidence.topk(keep_masked, dim=-1, largest=False).indices  # (n, keep)
            kept = drawn.scatter(-1, lowest, model.special)
        if best_of > 1 and judge is None:  # cells kept now add their conditional log-prob
            newly = masked & (kept != model.special)
            committed += (_token_log_probs(raw[:n], drawn) * newly).sum(1)
        tokens = kept
    return _keep_best(tokens, committed, best_of, judge, side).view(count, side, side)
