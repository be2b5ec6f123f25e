"""What both probes need from a model: loading it (path or already loaded) and the
log-likelihood of token sequences.

Scores come from :func:`odyssey.evaluate.nll.token_nlls`, the evaluate stage's scorer,
so a probe's log-likelihood is the same number ``odyssey evaluate`` would compute: each
sequence is read after the tokenizer's BOS token (its EOS token when it has no BOS), so
its first token is scored too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from odyssey.errors import ConfigError, ModelError


@dataclass
class LoadedModel:
    """A model ready to probe, with its tokenizer and a name for the record."""

    model: torch.nn.Module
    tokenizer: object
    name: str


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA device is available", "use device=cpu")
    return device


def load(model, tokenizer=None, *, device: str = "auto", dtype: str = "float32") -> LoadedModel:
    """``model``: a hub id or path (an odyssey run directory too), a loaded model (then
    ``tokenizer`` or the model's own saved path gives the tokenizer), or a
    ``(model, tokenizer)`` tuple. A loaded model stays on its own device."""
    from odyssey.models import check_tokenizer_fits, load_model, load_tokenizer

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, tuple):
        model, tokenizer = model
    if isinstance(model, str | os.PathLike):
        name = str(model)
        loaded = load_model(name, dtype=dtype, device=resolve_device(device))
        tok = tokenizer if tokenizer is not None else load_tokenizer(name)
    else:
        name = str(getattr(model, "name_or_path", "") or type(model).__name__)
        loaded, tok = model, tokenizer
        if tok is None:
            if not os.path.isdir(name):
                raise ConfigError("a loaded model needs its tokenizer", "pass tokenizer=... or a model path")
            tok = load_tokenizer(name)
    check_tokenizer_fits(loaded, tok)
    return LoadedModel(loaded, tok, name)


def prefix_id(tokenizer) -> int:
    """The token a sequence is read after: BOS if the tokenizer has one, else EOS."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos if bos is not None else tokenizer.eos_token_id


def encode(tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Token ids of each text on its own, no special tokens (the prefix is added when scoring)."""
    from odyssey.evaluate.run import tokenize

    return tokenize(tokenizer, texts)


def sequence_logprobs(lm: LoadedModel, ids: list[np.ndarray], *, batch_size: int = 32,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(sum of log p, tokens scored)`` of each token sequence under ``lm`` (nats).

    Sequences must fit the model's context with their prefix token; they are scored in
    one window each (no sliding), so every token sees all tokens before it.
    """
    from odyssey.evaluate.nll import token_nlls
    from odyssey.models import max_context

    if not ids:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    ctx = max_context(lm.model)
    longest = max(len(x) for x in ids)
    if longest > ctx:
        raise ModelError(f"a sequence of {longest} tokens does not fit the model's context of {ctx}",
                         "use shorter sequences")
    nll = token_nlls(lm.model, ids, prefix_id=prefix_id(lm.tokenizer), context_length=ctx, stride=ctx,
                     batch_size=max(1, batch_size * max(1, longest) // ctx + 1), progress=progress)
    sums = np.array([-float(np.sum(x, dtype=np.float64)) for x in nll])
    return sums, np.array([len(x) for x in ids], dtype=np.int64)
