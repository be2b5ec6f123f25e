"""Deterministic document-level train/valid/test splits.

The algorithm (:func:`split_documents`):

1. Sort the documents by ``(sha256 of text, id)``. This makes the result independent
   of the order the inputs were read in.
2. Shuffle that list with ``random.Random(seed).shuffle``.
3. Cut it in the order ``train, valid, test`` into the exact counts of
   :func:`split_counts`.

So the same documents and seed always give the same splits; another seed gives
other splits; and a document is in exactly one split (no leakage by construction).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping, Sequence

from odyssey.corpora.store import SPLITS
from odyssey.io import sha256_text


def split_counts(n: int, ratios: Mapping[str, float]) -> dict[str, int]:
    """Exact document counts per split that sum to ``n``.

    Each split gets ``floor(n * ratio)``; the documents left over go one each to the
    splits with the largest fractional parts (ties: ``train, valid, test`` order).
    Then, when ``n`` is at least the number of splits with a ratio > 0, every such
    split that got nothing takes one document from the largest split.

    >>> split_counts(10, {"train": 0.8, "valid": 0.1, "test": 0.1})
    {'train': 8, 'valid': 1, 'test': 1}
    >>> split_counts(3, {"train": 0.9, "valid": 0.05, "test": 0.05})
    {'train': 1, 'valid': 1, 'test': 1}
    """
    names = [s for s in SPLITS if s in ratios] + [s for s in ratios if s not in SPLITS]
    total = sum(ratios.values())  # 1 up to rounding; dividing keeps the floors from overshooting n
    exact = {s: n * ratios[s] / total for s in names}
    counts = {s: min(math.floor(exact[s]), n) for s in names}
    left = n - sum(counts.values())
    while left < 0:  # only floating-point noise can get here
        counts[max(names, key=lambda d: counts[d])] -= 1
        left += 1
    by_fraction = sorted(names, key=lambda s: (-(exact[s] - counts[s]) if ratios[s] > 0 else 1.0,
                                               names.index(s)))
    for s in by_fraction[:max(left, 0)]:
        counts[s] += 1
    wanted = [s for s in names if ratios[s] > 0]
    if n >= len(wanted):
        for s in wanted:
            if counts[s] == 0:
                donor = max(names, key=lambda d: (counts[d], -names.index(d)))
                counts[donor] -= 1
                counts[s] += 1
    return counts


def split_documents(
    docs: Sequence[dict], ratios: Mapping[str, float], seed: int
) -> dict[str, list[dict]]:
    """Assign each document to one split (see the module docstring for the algorithm).

    >>> parts = split_documents(docs, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed=0)
    >>> len(parts["train"]) + len(parts["valid"]) + len(parts["test"]) == len(docs)
    True
    """
    keyed = sorted(((sha256_text(d["text"]), str(d["id"])), i) for i, d in enumerate(docs))
    order = [i for _, i in keyed]
    random.Random(seed).shuffle(order)
    parts: dict[str, list[dict]] = {}
    start = 0
    for name, count in split_counts(len(order), ratios).items():
        parts[name] = [docs[i] for i in order[start:start + count]]
        start += count
    return parts


def split_digest(docs: Iterable[dict]) -> str:
    """sha256 over the sorted sha256s of the documents' texts: the same set of texts
    gives the same digest whatever their order, so two corpora's splits can be
    compared for identity (provenance) without reading them."""
    h = hashlib.sha256()
    for digest in sorted(sha256_text(d["text"]) for d in docs):
        h.update(digest.encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()
