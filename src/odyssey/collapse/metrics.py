"""What each generation's text looks like: per-sequence perplexity under a reference
model (generation 0), its histogram and tail mass, distinct-n, vocabulary size and
repetition rate.

Sequences are token-id arrays (one per continuation). Definitions:

- per-sequence perplexity = ``exp(mean NLL)`` of the continuation's tokens, each read
  after its prompt and the continuation tokens before it;
- tail mass = share of values above the ``q`` quantile of a reference set (generation
  0's own values, so generation 0's tail mass is ``1 - q`` by construction);
- distinct-n (Li et al. 2016) = distinct n-grams / n-grams, over all sequences
  (n-grams never cross a sequence boundary);
- repetition rate = mean over sequences of the share of n-gram occurrences that repeat
  an n-gram earlier in the same sequence (``seq-rep-n`` of Welleck et al. 2020);
- vocabulary size = distinct token ids used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def continuation_nlls(model, prompts: np.ndarray, continuations: np.ndarray,
                      batch_size: int = 32) -> np.ndarray:
    """NLL (nats, float32) of every continuation token given its prompt: shape ``(n, C)``.

    ``prompts`` is ``(n, P)`` and ``continuations`` ``(n, C)`` token ids; the model reads
    ``prompt + continuation`` with no padding, so all rows have the same length."""
    prompts, continuations = np.asarray(prompts), np.asarray(continuations)
    n, P = prompts.shape
    C = continuations.shape[1]
    out = np.zeros((n, C), dtype=np.float32)
    if n == 0 or C == 0:
        return out
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                ids = np.concatenate([prompts[start:start + batch_size],
                                      continuations[start:start + batch_size]], axis=1)
                x = torch.from_numpy(ids.astype(np.int64)).to(device)
                # Position t predicts token t + 1: the logits at P-1 .. P+C-2 score the continuation.
                logits = _last_logits(model, x, C + 1)[:, :C].float()
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, P:], reduction="none")
                out[start:start + len(ids)] = nll.cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _last_logits(model, ids: torch.Tensor, keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` positions; only those are computed when the model allows."""
    import inspect

    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return model(input_ids=ids, use_cache=False, logits_to_keep=keep).logits
    return model(input_ids=ids, use_cache=False).logits[:, -keep:]


def sequence_perplexity(nlls: np.ndarray) -> np.ndarray:
    """``exp(mean NLL)`` of each row of an ``(n, C)`` array of token NLLs."""
    return np.exp(np.asarray(nlls, dtype=np.float64).mean(axis=1))


def log_bin_edges(values: Sequence[Sequence[float]], bins: int = 40) -> np.ndarray:
    """``bins + 1`` log-spaced edges that cover every finite positive value of every set."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64) for v in values] or [np.zeros(0)])
    flat = flat[np.isfinite(flat) & (flat > 0)]
    if flat.size == 0:
        return np.geomspace(1.0, 10.0, bins + 1)
    lo, hi = flat.min(), flat.max()
    if hi <= lo * 1.0001:
        lo, hi = lo / 1.5, hi * 1.5
    return np.geomspace(lo, hi * (1 + 1e-9), bins + 1)  # the max falls inside the last bin


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin ``[edges[i], edges[i+1])`` (the last bin also holds its right edge)."""
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=np.asarray(edges, dtype=np.float64))
    return [int(c) for c in counts]


def tail_mass(values: Sequence[float], reference: Sequence[float], q: float = 0.95) -> float:
    """Share of ``values`` above the ``q`` quantile of ``reference``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or len(reference) == 0:
        return float("nan")
    cut = np.quantile(np.asarray(reference, dtype=np.float64), q)
    return float(np.mean(values > cut))


def _ngrams(seq: Sequence[int], n: int) -> list[tuple]:
    seq = [int(t) for t in seq]
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def distinct_n(seqs: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams over all n-grams of all sequences (NaN if there are none)."""
    grams = [g for s in seqs for g in _ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition_rate(seqs: Sequence[Sequence[int]], n: int = 4) -> float:
    """Mean over sequences (with at least one n-gram) of ``1 - distinct / total`` n-grams."""
    rates = []
    for s in seqs:
        grams = _ngrams(s, n)
        if grams:
            rates.append(1.0 - len(set(grams)) / len(grams))
    return float(np.mean(rates)) if rates else float("nan")


def vocabulary_size(seqs: Sequence[Sequence[int]]) -> int:
    """Number of distinct token ids used."""
    return len({int(t) for s in seqs for t in s})


def text_stats(seqs: Sequence[Sequence[int]], max_n: int = 4) -> dict:
    """distinct-1..max_n, vocabulary size and 4-gram repetition rate of token sequences."""
    out = {f"distinct_{n}": distinct_n(seqs, n) for n in range(1, max_n + 1)}
    out["vocab_size"] = vocabulary_size(seqs)
    out["repetition_rate"] = repetition_rate(seqs, 4)
    out["sequences"] = len(seqs)
    return out
