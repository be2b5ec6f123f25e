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
from odyssey.models.resolve import ModelSource, resolve_run_dir, resolve_source

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def known_dtype(v: str) -> str:
    """``v`` if it names a dtype of :data:`DTYPES` (for config validators), else ValueError."""
    if v not in DTYPES:
        raise ValueError(f"unknown dtype {v!r}; use one of {', '.join(sorted(DTYPES))}")
    return v


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """The local path a model name stands for, for code that reads the model's files:
    an odyssey run directory -> its ``model/``, a short name (``smollm2-135m``) -> its
    file; anything else unchanged.

    ``runs/legal`` (an ``odyssey adapt`` output) -> ``runs/legal/model``.
    """
    from odyssey.models import catalog

    p = Path(name_or_path)
    entry = catalog.lookup(str(name_or_path)) if not p.exists() else None
    if entry is not None and entry.installed():
        return str(entry.path())
    return str(resolve_run_dir(p)) if p.is_dir() else str(name_or_path)


def _load_error(kind: str, src: ModelSource, err: Exception) -> ModelError:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "safetensors" in msg.lower() or "use_safetensors" in msg:
        return ModelError(f"{src.spec} has no safetensors weights",
                          "convert it, or pass --allow-pickle if you trust the source")
    return ModelError(f"cannot load {kind} {src.spec!r}: {msg}",
                      "give a local path, a .gguf file, a name from `odyssey models`, "
                      "or a hub id while the hub is reachable")


def load_tokenizer(name_or_path: str | os.PathLike, *, revision: str | None = None,
                   trust_remote_code: bool = False):
    """Load a tokenizer for anything :func:`resolve_source` accepts (hub id, local or run
    directory, ``.gguf`` file, adapter directory, short name); pad token falls back to EOS.

    >>> tok = load_tokenizer("runs/legal")
    """
    tok = _tokenizer(resolve_source(name_or_path, revision=revision), revision, trust_remote_code)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def _tokenizer(src: ModelSource, revision: str | None, trust_remote_code: bool):
    from transformers import AutoTokenizer

    if src.kind == "gguf":
        from odyssey.models.gguf import load_gguf_tokenizer

        return load_gguf_tokenizer(src.path)
    if not src.has_own_tokenizer():  # an adapter saved without one: the base's
        return _tokenizer(src.base, revision, trust_remote_code)
    try:
        return AutoTokenizer.from_pretrained(src.path, revision=revision if src.kind == "hub" else None,
                                             trust_remote_code=trust_remote_code,
                                             local_files_only=src.offline)
    except Exception as e:  # transformers raises OSError/ValueError/... for a bad id
        raise _load_error("tokenizer", src, e) from e


def load_model(name_or_path: str | os.PathLike, *, revision: str | None = None, dtype: str = "float32",
               device: str | torch.device = "cpu", allow_pickle: bool = False,
               trust_remote_code: bool = False):
    """Load a causal LM by hub id, local or run directory, ``.gguf`` file (dequantized;
    see :mod:`odyssey.models.gguf`), peft adapter directory (merged into its base) or
    short name (``odyssey models``); from safetensors unless ``allow_pickle``.

    >>> model = load_model("gpt2", dtype="bfloat16", device="cuda")
    """
    if dtype not in DTYPES and dtype != "auto":
        raise ModelError(f"unknown dtype {dtype!r}", f"use one of {', '.join(sorted(DTYPES))} or auto")
    src = resolve_source(name_or_path, revision=revision)
    return _model(src, revision, dtype, allow_pickle, trust_remote_code).to(device)


def _model(src: ModelSource, revision, dtype: str, allow_pickle: bool, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM

    if src.kind == "gguf":
        from odyssey.models.gguf import load_gguf_model

        return load_gguf_model(src.path, dtype=DTYPES.get(dtype))
    if src.kind == "adapter":
        base = _model(src.base, revision, dtype, allow_pickle, trust_remote_code)
        return merge_adapter(base, src)
    if src.kind == "tokenizer":
        raise ModelError(f"{src.spec} holds a tokenizer but no model (no config.json)",
                         "give the directory the model was saved to")
    try:
        return AutoModelForCausalLM.from_pretrained(
            src.path, revision=revision if src.kind == "hub" else None, dtype=DTYPES.get(dtype, "auto"),
            use_safetensors=None if allow_pickle else True, trust_remote_code=trust_remote_code,
            local_files_only=src.offline,
        )
    except Exception as e:
        raise _load_error("model", src, e) from e


def merge_adapter(base, src: ModelSource):
    """``base`` with the peft adapter in ``src.path`` merged in: a plain model again."""
    from peft import PeftModel

    try:
        wrapped = PeftModel.from_pretrained(base, src.path)
        merged = wrapped.merge_and_unload()
    except Exception as e:  # a damaged adapter, or a kind of adapter that cannot be merged
        raise ModelError(f"cannot apply the adapter {src.spec}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                         "odyssey merges LoRA-style adapters into their base; check that the adapter "
                         "was trained on this base model") from e
    return merged.requires_grad_(True)  # peft froze the base weights; a loaded model trains as any other


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
