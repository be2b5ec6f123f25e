"""Architectures odyssey builds from scratch: the default base model and tiny test models."""

from __future__ import annotations

import torch

# Llama-style shapes. "tiny" is for tests (a few thousand parameters).
PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128),
    # The default base model: ~7M parameters (8192-token BPE), sized so that two CPU
    # cores adapt it to a 300 KB domain in about a minute. Its fp16 checkpoint is ~14 MB.
    "default": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=6, num_attention_heads=4,
                    num_key_value_heads=4, max_position_embeddings=256),
}


def llama_config(preset: str, vocab_size: int, *, eos_token_id: int, **overrides):
    from transformers import LlamaConfig

    from odyssey.errors import ConfigError

    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}", f"use one of {', '.join(PRESETS)}")
    kw = dict(PRESETS[preset], vocab_size=vocab_size, bos_token_id=eos_token_id,
              eos_token_id=eos_token_id, pad_token_id=eos_token_id, tie_word_embeddings=True,
              rms_norm_eps=1e-5)
    kw.update(overrides)
    return LlamaConfig(**kw)


def build_model(config, seed: int = 0):
    """A randomly initialized causal LM for ``config``, reproducible from ``seed``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def default_base_path():
    """The shipped default base model (``odyssey/assets/default-base``), HF layout."""
    from pathlib import Path

    from odyssey.errors import ModelError

    path = Path(__file__).resolve().parent.parent / "assets" / "default-base"
    if not (path / "config.json").is_file():
        raise ModelError(f"the default base model is missing from {path}",
                         "rebuild it: odyssey pretrain --preset default --export " + str(path))
    return path
