"""Perplexity and bits per byte from ``(sum_nll, n_units)`` pairs.

Summing NLLs and units first and dividing once makes every aggregate token-weighted
(a long document counts for its tokens, not as one vote), and lets sums from any
split of the data (documents, batches, workers) be merged exactly.

- perplexity    = exp(sum NLL / tokens)              (NLL in nats, per target token)
- bits per byte = sum NLL / ln 2 / UTF-8 bytes       (does not depend on the tokenizer)

and the AUROC with which a score separates two sets (synthetic-text detection,
membership inference).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

LN2 = math.log(2.0)


def total(pairs: Iterable[tuple[float, int]]) -> tuple[float, int]:
    """Sum ``(nll, units)`` pairs: ``[(2.0, 3), (1.0, 1)]`` -> ``(3.0, 4)``."""
    nll, units = 0.0, 0
    for s, n in pairs:
        nll += float(s)
        units += int(n)
    return nll, units


def perplexity(nll_sum: float, tokens: int) -> float:
    """``exp(nll_sum / tokens)``; NaN for zero tokens, inf on overflow."""
    if tokens <= 0:
        return math.nan
    try:
        return math.exp(nll_sum / tokens)
    except OverflowError:
        return math.inf


def bits_per_byte(nll_sum: float, n_bytes: int) -> float:
    """``nll_sum / ln 2 / n_bytes``; NaN for zero bytes."""
    if n_bytes <= 0:
        return math.nan
    return nll_sum / LN2 / n_bytes


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN or infinity: an undefined metric (an empty document) or an
    overflowing one is written as null."""
    return x if math.isfinite(x) else None


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Area under the ROC curve of "higher score = positive": the probability that a random
    positive scores above a random negative, ties counting half; NaN when a set is empty.

    Computed from average ranks (the Mann-Whitney U statistic, ``U / (n_pos * n_neg)``),
    in O(n log n) rather than over all pairs.

    >>> auroc([3, 4], [1, 2]), auroc([1], [1])
    (1.0, 0.5)
    """
    import numpy as np  # imported here: the CLI imports this module for --help
    from scipy.stats import rankdata

    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))  # ties get their average rank
    u = ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))
