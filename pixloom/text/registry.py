"""load_text_encoder(spec): "builtin", "minilm" or "hf:PATH" behind one contract; and a cache.

A spec is a string or the dict stored in a generator's config (`{"name": ..., ...}`), so a
checkpoint names its encoder and loading needs nothing else. The built-in encoder's weights
live inside the generator (it trains with it); frozen encoders are loaded from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pixloom.errors import InvalidValue
from pixloom.text.embedding import TextEmbedding, normalize_prompt, pad_embeddings

ENCODER_NAMES = ("builtin", "minilm", "hf:PATH")


def spec_name(spec: str | dict[str, Any]) -> str:
    """The encoder name of a spec string or dict."""
    name = spec.get("name") if isinstance(spec, dict) else spec
    if not isinstance(name, str) or not (
        name in ("builtin", "minilm") or (name.startswith("hf:") and len(name) > 3)
    ):
        raise InvalidValue("text_encoder", name, f"one of {', '.join(ENCODER_NAMES)}")
    return name


def load_text_encoder(spec: str | dict[str, Any], **options: Any):
    """An encoder with encode(list[str]) -> TextEmbedding, name, dim and max_length.

    Args:
        spec: "builtin", "minilm", "hf:PATH", or a dict {"name": ..., other config fields}.
        options: config fields for "builtin" (vocab, dim, layers, heads, max_length) or
            max_length for the pretrained encoders.
    """
    name = spec_name(spec)
    fields = {**(spec if isinstance(spec, dict) else {}), **options}
    fields.pop("name", None)
    if name == "builtin":
        from pixloom.configs import config_from_dict
        from pixloom.text.builtin import BuiltinTextConfig, BuiltinTextEncoder

        return BuiltinTextEncoder(config_from_dict(BuiltinTextConfig, fields, where="text_encoder"))
    from pixloom.text.pretrained import PretrainedTextEncoder, minilm_directory

    path = minilm_directory() if name == "minilm" else Path(name[3:]).expanduser()
    return PretrainedTextEncoder(name, path, max_length=int(fields.get("max_length", 64)))


class CachedEncoder:
    """Memoizes a frozen encoder's rows by normalized prompt (training sees each caption often)."""

    def __init__(self, encoder: Any, *, max_entries: int = 200_000):
        self.encoder, self.max_entries = encoder, max_entries
        self.name, self.dim, self.max_length = encoder.name, encoder.dim, encoder.max_length
        self.rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Encode the prompts not seen before, then assemble the batch from the cache."""
        keys = [normalize_prompt(prompt) for prompt in prompts]
        missing = list(dict.fromkeys(key for key in keys if key not in self.rows))
        new: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if missing:
            fresh = self.encoder.encode(missing)
            for i, key in enumerate(missing):
                length = int(fresh.mask[i].sum())
                new[key] = (fresh.tokens[i, :length].clone(), fresh.pooled[i].clone())
        batch = [self.rows[key] if key in self.rows else new[key] for key in keys]
        if len(self.rows) + len(new) > self.max_entries:  # full: start over (batch kept)
            self.rows.clear()
        self.rows.update(new)
        return pad_embeddings(batch)


def frozen_encoder(spec: dict[str, Any]) -> CachedEncoder | None:
    """The caching frozen encoder a network's text spec names (minilm, hf:PATH) for training;
    None when the spec is empty or built-in (that encoder lives inside the network)."""
    if not spec or spec.get("name") == "builtin":
        return None
    return CachedEncoder(load_text_encoder(spec))


def encode_captions(
    own: Any, frozen: CachedEncoder | None, captions: list[str], device: torch.device
) -> TextEmbedding:
    """Captions through the network's own (built-in) encoder `own`, else the frozen one."""
    if own is not None:
        return own.encode(captions)
    return frozen.encode(captions).to(device)
