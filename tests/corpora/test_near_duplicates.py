"""Near-duplicate detection: near copies found, distinct texts kept, and the MinHash
estimate of Jaccard close to the exact Jaccard of the shingle sets."""

from __future__ import annotations

import random

import pytest

from helpers import make_documents
from odyssey.corpora.near_duplicates import (
    minhashes,
    near_duplicate_clusters,
    near_duplicate_drop,
    shingles,
)


def _edit(text: str, n: int, seed: int) -> str:
    """Replace ``n`` words of ``text`` at random positions."""
    rng = random.Random(seed)
    words = text.split()
    for _ in range(n):
        words[rng.randrange(len(words))] = "zzz"
    return " ".join(words)


def test_shingles_are_lowercase_word_ngrams():
    assert shingles("The cat, the HAT.", 2) == {"the cat", "cat the", "the hat"}
    assert shingles("Too short", 5) == {"too short"}  # fewer words than a shingle: whole text


def test_near_copies_are_found_and_distinct_texts_are_not():
    docs = make_documents(30, seed=3, min_words=150, max_words=200)
    texts = list(docs)
    texts.append(_edit(docs[4], 2, seed=1))    # 30: near copy of 4
    texts.append(docs[4].upper())              # 31: same words, different case
    texts.append(_edit(docs[10], 1, seed=2))   # 32: near copy of 10
    clusters = near_duplicate_clusters(texts, threshold=0.7)
    assert clusters == [[4, 30, 31], [10, 32]]
    assert near_duplicate_drop(texts, threshold=0.7) == [30, 31, 32]
    # The originals share vocabulary (a 90-word list) but not 5-word shingles.
    assert near_duplicate_drop(docs, threshold=0.5) == []


def test_first_of_a_cluster_is_kept_whatever_the_order():
    base = make_documents(1, seed=5, min_words=150, max_words=150)[0]
    texts = ["an unrelated sentence about rivers and courts", _edit(base, 1, 7), base]
    assert near_duplicate_drop(texts, threshold=0.7) == [2]


@pytest.mark.parametrize("edits", [3, 15, 40])
def test_minhash_estimate_matches_exact_jaccard(edits):
    a = make_documents(1, seed=11, min_words=200, max_words=200)[0]
    b = _edit(a, edits, seed=edits)
    sa, sb = shingles(a), shingles(b)
    exact = len(sa & sb) / len(sa | sb)
    ma, mb = minhashes([a, b], num_perm=256)
    # Standard error of the estimate is sqrt(J(1-J)/num_perm) <= 0.031; allow 4 of them.
    assert abs(ma.jaccard(mb) - exact) < 0.125
    # And the pair counts as a near duplicate exactly when it is well above the threshold.
    found = near_duplicate_drop([a, b], threshold=0.5, num_perm=256) == [1]
    if abs(exact - 0.5) > 0.15:
        assert found == (exact > 0.5)


def test_degenerate_inputs():
    assert near_duplicate_drop([]) == []
    assert near_duplicate_drop(["one"]) == []
    assert near_duplicate_drop(["", "", "x"]) == [1]
    with pytest.raises(ValueError):
        near_duplicate_drop(["a", "b"], threshold=0)
