"""Load any Hugging Face causal LM and its tokenizer, safely by default.

Weights load from safetensors only unless ``allow_pickle`` is set (a pickled
``pytorch_model.bin`` can run arbitrary code when loaded), and
``trust_remote_code`` is off unless asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from odyssey.errors import ModelError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def known_dtype(v: str) -> str:
    """``v`` if it names a dtype of :data:`DTYPES` (for config validators), else ValueError."""
    if v not in DTYPES:
        raise ValueError(f"unknown dtype {v!r}; use one of {', '.join(sorted(DTYPES))}")
    return v


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """Map an odyssey run directory to the model inside it; leave anything else alone.

    ``runs/legal`` (an ``odyssey adapt`` output) -> ``runs/legal/model``.
    """
    p = Path(name_or_path)
    if p.is_dir() and not (p / "config.json").exists() and (p / "model" / "config.json").exists():
        return str(p / "model")
    return str(name_or_path)


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] or Path(name).exists()


def _load_error(kind: str, name: str, err: Exception) -> ModelError:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if not Path(name).exists() and _looks_local(name):
        return ModelError(f"{kind} not found: {name}", "check the path")
    if "safetensors" in msg.lower() or "use_safetensors" in msg:
        return ModelError(f"{name} has no safetensors weights", "convert it, or pass --allow-pickle if you trust the source")
    return ModelError(f"cannot load {kind} {name!r}: {msg}",
                      "give a local path, or a hub id while the hub is reachable")


def load_tokenizer(name_or_path: str | os.PathLike, *, revision: str | None = None,
                   trust_remote_code: bool = False):
    """Load a tokenizer by hub id or local path; pad token falls back to EOS.

    >>> tok = load_tokenizer("runs/legal")
    """
    from transformers import AutoTokenizer

    name = resolve_model_path(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers raises OSError/ValueError/... for a bad id
        raise _load_error("tokenizer", name, e) from e
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str | os.PathLike, *, revision: str | None = None, dtype: str = "float32",
               device: str | torch.device = "cpu", allow_pickle: bool = False,
               trust_remote_code: bool = False):
    """Load a causal LM by hub id or local path, from safetensors unless ``allow_pickle``.

    >>> model = load_model("gpt2", dtype="bfloat16", device="cuda")
    """
    from transformers import AutoModelForCausalLM

    name = resolve_model_path(name_or_path)
    if dtype not in DTYPES and dtype != "auto":
        raise ModelError(f"unknown dtype {dtype!r}", f"use one of {', '.join(sorted(DTYPES))} or auto")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name, revision=revision, dtype=DTYPES.get(dtype, "auto"),
            use_safetensors=None if allow_pickle else True, trust_remote_code=trust_remote_code,
        )
    except Exception as e:
        raise _load_error("model", name, e) from e
    return model.to(device)


def check_tokenizer_fits(model, tokenizer) -> None:
    """Refuse a tokenizer whose ids would index past the model's embedding table."""
    n_embed = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embed:
        raise ModelError(
            f"the tokenizer has {len(tokenizer)} tokens but the model embeds only {n_embed}",
            "use the tokenizer saved with the model",
        )
    if tokenizer.eos_token_id is None:
        raise ModelError("the tokenizer has no EOS token", "documents are joined and prefixed with EOS; set one")


def max_context(model, default: int = 1024) -> int:
    """The longest sequence the model accepts (its position table), or ``default``."""
    cfg = model.config
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return default
