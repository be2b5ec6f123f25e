"""The similarity measures' contract: one registry, stable names, each measure against an
independent computation on a tiny hand-built comparison."""

from collections import Counter

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from odyssey.analysis.measures import (
    MEASURES,
    SIMILARITY_MEASURES,
    Comparison,
    Measure,
    measure_details,
)


def comparison(**kw):
    counts = Counter({"the": 6, "court": 3, "writ": 1})
    freq = {"the": 0.5, "court": 0.001, "river": 0.499}
    return Comparison(counts, freq, {"1": 0.9, "2": 0.5, "3": None}, rare_threshold=0.01, **kw)


def test_names_are_stable_and_every_measure_keeps_the_contract():
    assert MEASURES == ("js_divergence", "ngram_overlap", "embed_cosine_of_means", "embed_mmd", "embed_frechet",
                        "base_bits_per_byte", "rare_token_rate")  # the predictor's feature names
    for m in SIMILARITY_MEASURES:
        assert isinstance(m, Measure) and m.needs in {"words", "ngrams", "embeddings", "model"}


def test_word_measures_against_independent_computations():
    c = comparison()
    p = np.array([6, 3, 1, 0]) / 10
    q = np.array([0.5, 0.001, 0.0, 0.499])  # the, court, writ, river
    expected_js = jensenshannon(p, q / q.sum(), base=2) ** 2
    assert SIMILARITY_MEASURES.get("js_divergence").compute(c) == pytest.approx(expected_js, rel=1e-9)
    # "court" (0.001) and "writ" (absent) are below 0.01: 4 of the 10 occurrences
    assert SIMILARITY_MEASURES.get("rare_token_rate").compute(c) == pytest.approx(0.4)
    ngram = SIMILARITY_MEASURES.get("ngram_overlap")
    assert ngram.compute(c) == pytest.approx(0.7) and measure_details(ngram, c) == {
        "ngram_overlap_by_n": {"1": 0.9, "2": 0.5, "3": None}}


def test_embedding_and_model_measures_need_their_inputs_and_compute_them_once():
    calls = []
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])

    def embed():
        calls.append(1)
        return X, X + 1.0

    c = comparison(embed=embed)
    assert not comparison().available("embeddings") and c.available("embeddings") and not c.available("model")
    cos = SIMILARITY_MEASURES.get("embed_cosine_of_means").compute(c)
    a, b = X.mean(0), (X + 1).mean(0)
    assert cos == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    # a shifted copy: the covariances agree, the Fréchet distance is the squared mean shift
    assert SIMILARITY_MEASURES.get("embed_frechet").compute(c) == pytest.approx(2.0, abs=1e-9)
    assert calls == [1]
