"""Collapse metrics against independent computations: naive loops over n-grams, a
per-sequence forward pass without batching, a bin-by-bin histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from odyssey.collapse import metrics
from odyssey.models import load_model

SEQS = [[1, 2, 3, 1, 2, 3, 1, 2], [4, 4, 4, 4], [5, 6], [7]]


def naive_distinct(seqs, n):
    seen, total = [], 0
    for s in seqs:
        for i in range(len(s) - n + 1):
            total += 1
            g = tuple(s[i:i + n])
            if g not in seen:
                seen.append(g)
    return len(seen) / total


def naive_repetition(seqs, n):
    rates = []
    for s in seqs:
        grams = [tuple(s[i:i + n]) for i in range(len(s) - n + 1)]
        if not grams:
            continue
        repeats = sum(1 for i, g in enumerate(grams) if g in grams[:i])  # seen earlier in the sequence
        rates.append(repeats / len(grams))
    return sum(rates) / len(rates)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_distinct_n_matches_a_naive_count(n):
    assert metrics.distinct_n(SEQS, n) == pytest.approx(naive_distinct(SEQS, n))


def test_distinct_n_hand_values():
    # bigrams: (1,2)x3 (2,3)x2 (3,1)x2 (4,4)x3 (5,6): 11 in all, 5 distinct
    assert metrics.distinct_n(SEQS, 2) == pytest.approx(5 / 11)
    assert math.isnan(metrics.distinct_n([[1]], 2))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_repetition_rate_matches_a_naive_count(n):
    assert metrics.repetition_rate(SEQS, n) == pytest.approx(naive_repetition(SEQS, n))


def test_repetition_rate_hand_values():
    # seq 1 has 5 4-grams, 2 of which repeat; seq 2 has one 4-gram; the others have none.
    assert metrics.repetition_rate(SEQS, 4) == pytest.approx((2 / 5 + 0.0) / 2)
    assert metrics.vocabulary_size(SEQS) == 7
    stats = metrics.text_stats(SEQS)
    assert stats["vocab_size"] == 7 and stats["sequences"] == 4
    assert stats["distinct_2"] == pytest.approx(5 / 11)


def test_histogram_matches_a_bin_by_bin_count():
    rng = np.random.default_rng(0)
    values = np.exp(rng.normal(3, 1, size=500))
    edges = metrics.log_bin_edges([values[:250], values[250:]], bins=12)
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    naive = [sum(1 for v in values if lo <= v < hi or (j == len(edges) - 2 and v == hi))
             for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))]
    assert metrics.histogram(values, edges) == naive
    assert sum(naive) == len(values)  # every value falls in a bin


def test_tail_mass():
    reference = np.arange(1, 101, dtype=float)  # 95th percentile: 95.05
    assert metrics.tail_mass(reference, reference, 0.95) == pytest.approx(0.05)
    values = [10, 96, 200, 95]
    assert metrics.tail_mass(values, reference, 0.95) == pytest.approx(2 / 4)


def test_continuation_nlls_match_a_per_sequence_forward(tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    rng = np.random.default_rng(1)
    prompts = rng.integers(0, 300, size=(5, 7))
    conts = rng.integers(0, 300, size=(5, 4))
    got = metrics.continuation_nlls(model, prompts, conts, batch_size=2)
    for i in range(5):
        ids = torch.tensor(np.concatenate([prompts[i], conts[i]]))[None]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        want = [-float(logp[7 + j - 1, conts[i, j]]) for j in range(4)]
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-4)
    ppl = metrics.sequence_perplexity(got)
    np.testing.assert_allclose(ppl, np.exp(got.astype(np.float64).mean(axis=1)))
