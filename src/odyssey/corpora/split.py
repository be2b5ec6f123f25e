"""Deterministic document-level train/valid/test splits.

The algorithm (:func:`split_documents`):

1. Sort the documents by ``(sha256 of text, id)``. This makes the result independent
   of the order the inputs were read in.
2. Shuffle that list with ``random.Random(seed).shuffle``.
3. Cut it in the order ``train, valid, test`` into the exact counts of
   :func:`split_counts`.

A document whose ``meta`` names its split under ``split_field`` (when one is given)
goes to that split and takes no part in the shuffle: data that arrives split
already (or the default world's *seen* control, whose test split is chosen from
another corpus) keeps its split, and the other documents are split by the ratios.

So the same documents and seed always give the same splits; another seed gives
other splits; and a document is in exactly one split (no leakage by construction).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping, Sequence

from odyssey.corpora.store import SPLITS
from odyssey.errors import DataError
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
    docs: Sequence[dict], ratios: Mapping[str, float], seed: int, split_field: str | None = None
) -> dict[str, list[dict]]:
    """Assign each document to one split (see the module docstring for the algorithm).

    >>> parts = split_documents(docs, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed=0)
    >>> len(parts["train"]) + len(parts["valid"]) + len(parts["test"]) == len(docs)
    True
    """
    fixed = {i: fixed_split(d, split_field) for i, d in enumerate(docs)} if split_field else {}
    free = [i for i in range(len(docs)) if fixed.get(i) is None]
    keyed = sorted(((sha256_text(docs[i]["text"]), str(docs[i]["id"])), i) for i in free)
    order = [i for _, i in keyed]
    random.Random(seed).shuffle(order)
    parts: dict[str, list[dict]] = {}
    start = 0
    for name, count in split_counts(len(order), ratios).items():
        parts[name] = [docs[i] for i in order[start:start + count]]
        start += count
    for i, name in fixed.items():
        if name is not None:
            parts.setdefault(name, []).append(docs[i])
    return parts


def fixed_split(doc: dict, split_field: str) -> str | None:
    """The split ``doc["meta"][split_field]`` names, or None when it names none."""
    name = (doc.get("meta") or {}).get(split_field)
    if name is None or name == "":
        return None
    if name not in SPLITS:
        raise DataError(f"document {doc.get('id')!r} names the split {name!r} in meta.{split_field}",
                        f"use one of {', '.join(SPLITS)}, or leave the field out to split it by the ratios")
    return name


def split_digest(docs: Iterable[dict]) -> str:
    """sha256 over the sorted sha256s of the documents' texts: the same set of texts
    gives the same digest whatever their order, so two corpora's splits can be
    compared for identity (provenance) without reading them."""
    h = hashlib.sha256()
    for digest in sorted(sha256_text(d["text"]) for d in docs):
        h.update(digest.encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()
