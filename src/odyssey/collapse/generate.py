"""Text written by a model: real text cut into fixed-size token blocks, each block a
prompt that the model continues (HF ``generate``; beam search or sampling), batched.

The blocks are cut from the documents joined by EOS (``[eos] d1 [eos] d2 ...``, the
stream that training packs), so no token is lost to per-document remainders.
Continuations are exactly ``new_tokens`` long: EOS is suppressed until then, as in
the published setup, so every generated sequence has the same size.

>>> prompts = prompt_blocks(docs, tok, 64)
>>> cont = generate_continuations(model, prompts, GenerationConfig(), eos_id=tok.eos_token_id)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from odyssey.blocks import pack_token_lists, tokenize_texts
from odyssey.collapse.config import GenerationConfig
from odyssey.errors import DataError
from odyssey.progress import progress_bar


def prompt_blocks(documents: Sequence[dict], tokenizer, size: int) -> np.ndarray:
    """``(n, size)`` int64 token blocks of the documents joined by EOS (remainder dropped)."""
    texts = [d["text"] for d in documents]
    try:
        blocks = pack_token_lists(tokenize_texts(texts, tokenizer), tokenizer.eos_token_id, size)
    except DataError as e:
        raise DataError(f"the text has fewer tokens than one prompt block of {size}",
                        "use more text or a smaller generation.prompt_tokens") from e
    return np.asarray(blocks, dtype=np.int64)


def sample_rows(n: int, cap: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of ``cap`` of ``n`` rows (all rows if no cap)."""
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, n, cap]).choice(n, size=cap, replace=False))


def block_documents(blocks: np.ndarray, tokenizer, prefix: str, meta: dict | None = None) -> list[dict]:
    """Documents of token blocks: each block is decoded on its own, split where it holds
    EOS (a document boundary in the real stream), so training reads the same boundaries."""
    eos = tokenizer.eos_token_id
    docs = []
    for i, row in enumerate(np.asarray(blocks)):
        pieces, start = [], 0
        for j in [*np.flatnonzero(row == eos).tolist(), len(row)]:
            if j > start:
                pieces.append(row[start:j])
            start = j + 1
        for k, piece in enumerate(pieces):
            text = tokenizer.decode(piece.tolist(), skip_special_tokens=True)
            if text.strip():
                docs.append({"text": text, "id": f"{prefix}{i}" + (f".{k}" if k else ""),
                             "meta": {**(meta or {}), "block": i}})
    return docs


def resolve_device(device: str) -> torch.device:
    from odyssey.errors import ConfigError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but CUDA is not available", "use device=cpu or auto")
    return torch.device(device)


def _generation_config(cfg: GenerationConfig, eos_id: int):
    from transformers import GenerationConfig as HFGenerationConfig

    kw = dict(max_new_tokens=cfg.new_tokens, min_new_tokens=cfg.new_tokens, eos_token_id=eos_id,
              pad_token_id=eos_id, repetition_penalty=cfg.repetition_penalty, use_cache=True)
    if cfg.strategy == "beam":
        kw.update(do_sample=False, num_beams=cfg.num_beams, early_stopping=True)
    else:
        kw.update(do_sample=True, num_beams=1, temperature=cfg.temperature, top_p=cfg.top_p,
                  top_k=cfg.top_k or 0)
    return HFGenerationConfig(**kw)


def generate_continuations(model, prompts: np.ndarray, cfg: GenerationConfig, *, eos_id: int,
                           seed: int = 0, progress: bool = True, label: str = "generate") -> np.ndarray:
    """``(n, cfg.new_tokens)`` int64 continuations of the ``(n, P)`` prompts, on the model's
    device. Sampling is seeded per batch, so a rerun writes the same text."""
    prompts = np.asarray(prompts, dtype=np.int64)
    out = np.zeros((len(prompts), cfg.new_tokens), dtype=np.int64)
    if len(prompts) == 0:
        return out
    device = next(model.parameters()).device
    gen_cfg = _generation_config(cfg, eos_id)
    was_training = model.training
    model.eval()
    try:
        with progress_bar(len(prompts), label, unit="prompts", enabled=progress) as advance, \
                torch.inference_mode():
            for b, start in enumerate(range(0, len(prompts), cfg.batch_size)):
                x = torch.from_numpy(prompts[start:start + cfg.batch_size]).to(device)
                torch.manual_seed(seed * 1_000_003 + b)  # sampling only; beam search is deterministic
                seqs = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gen_cfg)
                new = seqs[:, x.shape[1]:]
                if new.shape[1] != cfg.new_tokens:  # cannot happen with min_new_tokens; guard anyway
                    raise DataError(f"generation returned {new.shape[1]} tokens instead of {cfg.new_tokens}")
                out[start:start + len(x)] = new.cpu().numpy()
                advance(len(x))
    finally:
        model.train(was_training)
    return out


