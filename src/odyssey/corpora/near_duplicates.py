"""Near-duplicate documents: MinHash signatures of word shingles, LSH to find candidate
pairs, union-find to group them.

A document's set is its lowercase word ``shingle``-grams (a text with fewer words than
``shingle`` is one shingle, the whole lowercase text). Two documents are near
duplicates when the MinHash estimate of the Jaccard similarity of their sets is at
least ``threshold``; LSH only proposes the candidate pairs, each of which is then
checked with the estimate, so LSH's false positives never drop a document. Clusters
are the connected components of that relation; the first document (lowest index) of
each cluster is kept.

>>> near_duplicate_drop(["the cat sat on the mat today", "The cat sat on the mat today!", "dogs"])
[1]
"""

from __future__ import annotations

import re

from odyssey.errors import MissingDependencyError

try:
    from datasketch import MinHash, MinHashLSH
except ImportError as e:  # the similarity extra
    raise MissingDependencyError("datasketch", "similarity", "near-duplicate detection") from e

_WORD = re.compile(r"\w+")


def shingles(text: str, shingle: int = 5) -> set[str]:
    """The set of lowercase word ``shingle``-grams of ``text`` (joined by a space)."""
    words = _WORD.findall(text.lower())
    if len(words) < shingle:
        return {text.lower()}
    return {" ".join(words[i:i + shingle]) for i in range(len(words) - shingle + 1)}


def minhashes(texts: list[str], num_perm: int = 128, shingle: int = 5, seed: int = 1) -> list[MinHash]:
    """One MinHash signature per text, over its shingle set."""
    sets = [[s.encode("utf-8") for s in sorted(shingles(t, shingle))] for t in texts]
    return MinHash.bulk(sets, num_perm=num_perm, seed=seed)


def near_duplicate_clusters(
    texts: list[str], threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 1
) -> list[list[int]]:
    """Groups (of two or more) of near-duplicate texts, each sorted, ordered by first index."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if len(texts) < 2:
        return []
    sigs = minhashes(texts, num_perm, shingle, seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees flat
            i = parent[i]
        return i

    for i, sig in enumerate(sigs):
        for j in lsh.query(sig):
            if sig.jaccard(sigs[j]) >= threshold:
                a, b = root(i), root(j)
                parent[max(a, b)] = min(a, b)  # the lower index stays the root
        lsh.insert(i, sig)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def near_duplicate_drop(
    texts: list[str], threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 1
) -> list[int]:
    """Indices of the texts to drop (all but the first of each near-duplicate cluster), sorted."""
    clusters = near_duplicate_clusters(texts, threshold, num_perm, shingle, seed)
    return sorted(i for group in clusters for i in group[1:])
