"""The reference-profile cache: a cached profile measures exactly like a fresh one."""

from __future__ import annotations

import numpy as np

import odyssey.analysis.reference_cache as rc
from odyssey.analysis.config import SimilarityConfig
from odyssey.analysis.similarity import build_reference, similarity


def _cfg(**kw):
    return SimilarityConfig(embeddings=False, bloom_bits_log2=16, progress=False, **kw)


def test_cached_profile_equals_a_fresh_one_and_is_reused(general_corpus_dir, tiny_corpus_dir, monkeypatch):
    cfg = _cfg()
    first = rc.cached_reference(str(general_corpus_dir), config=cfg)
    calls = []
    monkeypatch.setattr(rc, "build_reference", lambda *a, **k: calls.append(a) or build_reference(*a, **k))
    second = rc.cached_reference(str(general_corpus_dir), config=cfg)
    assert calls == []  # read from disk
    fresh = build_reference(str(general_corpus_dir), config=cfg)
    assert second.freq == fresh.freq and second.words == fresh.words and second.chunks == fresh.chunks
    assert np.array_equal(second.bloom.bits, fresh.bloom.bits)
    a = similarity(str(tiny_corpus_dir), second, config=cfg)
    b = similarity(str(tiny_corpus_dir), fresh, config=cfg)
    for m in ("js_divergence", "ngram_overlap", "rare_token_rate"):
        assert a[m] == b[m]
    assert first.name == second.name


def test_a_changed_setting_or_corpus_gets_a_new_profile(general_corpus_dir, tiny_corpus_dir):
    k1 = rc.reference_key(str(general_corpus_dir), _cfg())
    assert k1 == rc.reference_key(str(general_corpus_dir), _cfg())
    assert k1 != rc.reference_key(str(general_corpus_dir), _cfg(ngram_orders=[1, 2]))
    assert k1 != rc.reference_key(str(tiny_corpus_dir), _cfg())
