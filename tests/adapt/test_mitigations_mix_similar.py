"""Mixing by similarity: the documents added are those a direct computation with the
project's measures picks, never the domain's own valid or test text."""

import random
from collections import Counter

import numpy as np
import pytest
from test_mitigations_config import make_cfg

from conftest import write_corpus_dir
from helpers import WORDS, make_documents
from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.loop import setup
from odyssey.adapt.mitigations.mix_similar import embedding_scores, js_to_profile
from odyssey.analysis.measures import cosine_of_means, js_divergence
from odyssey.analysis.similarity import words
from odyssey.config import resolve
from odyssey.corpora.store import iter_split
from odyssey.errors import ConfigError
from odyssey.io import read_json


def direct_choice(domain: list[str], candidates: list[dict], ratio: float) -> list[str]:
    """The ids the method should add, computed the plain way: js_divergence of each
    candidate's word counts against the whole domain's, nearest first (ties in order),
    until the added bytes reach ratio of all training bytes."""
    domain_counts = Counter(w for t in domain for w in words(t))
    scored = [(js_divergence(Counter(words(d["text"])), domain_counts), i) for i, d in enumerate(candidates)]
    scored.sort()
    budget = sum(len(t.encode()) for t in domain) * ratio / (1 - ratio)
    chosen, total = [], 0
    for _, i in scored:
        if total >= budget:
            break
        chosen.append(candidates[i]["id"])
        total += len(candidates[i]["text"].encode())
    return chosen


def skewed_documents(n: int, seed: int) -> list[str]:
    """Documents whose word mix varies a lot (some near the test domain's, some far)."""
    rng = random.Random(seed)
    other = [f"zq{i}" for i in range(40)]
    docs = []
    for _ in range(n):
        share = rng.random()
        ws = [rng.choice(WORDS) if rng.random() < share else rng.choice(other) for _ in range(rng.randint(20, 90))]
        docs.append(" ".join(ws) + ".")
    return docs


def test_js_to_profile_equals_the_measure():
    rng = random.Random(0)
    profile_counts = Counter(rng.choice(WORDS[:40]) for _ in range(500))
    total = sum(profile_counts.values())
    profile = {w: c / total for w, c in profile_counts.items()}
    for _ in range(50):
        doc = Counter(rng.choice(WORDS + ["unseen", "words"]) for _ in range(rng.randint(1, 60)))
        assert js_to_profile(doc, profile) == pytest.approx(js_divergence(doc, profile_counts), abs=1e-12)


@pytest.mark.parametrize("ratio", [0.1, 0.4])
def test_added_documents_equal_the_direct_computation(tmp_path, tiny_llama_dir, tiny_corpus_dir, ratio):
    general = tmp_path / "general"
    write_corpus_dir(general, skewed_documents(80, seed=3))
    run = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "mix", general=general,
                         **{"mitigation.methods": "[mix-similar]", "mitigation.mix_similar.ratio": ratio}))
    run.log.close()
    saved = read_json(tmp_path / "mix" / "mix-similar.json")
    domain = [d["text"] for d in iter_split(tiny_corpus_dir, "train")]
    expected = direct_choice(domain, list(iter_split(general, "train")), ratio)
    assert [a["id"] for a in saved["added"]] == expected
    assert 0 < len(expected) < 56  # a real choice, not everything
    assert saved["share"] >= ratio and run.mit.info["mix_similar"]["added_documents"] == len(expected)
    plain = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "plain"))
    plain.log.close()
    assert len(run.blocks) > len(plain.blocks)  # the added text is trained on


def test_domain_valid_and_test_text_is_never_added(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    test_docs = [d["text"] for d in iter_split(tiny_corpus_dir, "test")]
    general = tmp_path / "general"
    # The general corpus holds the domain's test documents (the nearest text there is) in its train split.
    write_corpus_dir(general, test_docs + make_documents(40, seed=9), ratios=(0.9, 0.05, 0.05))
    run = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "mix", general=general,
                         **{"mitigation.methods": "[mix-similar]", "mitigation.mix_similar.ratio": 0.5}))
    run.log.close()
    info = run.mit.info["mix_similar"]
    assert info["excluded_as_domain_text"] == len(test_docs)
    added = {a["id"] for a in read_json(tmp_path / "mix" / "mix-similar.json")["added"]}
    leaked = {d["id"] for d in iter_split(general, "train") if d["text"] in test_docs}
    assert leaked and not added & leaked


def test_embedding_scores_equal_cosine_of_means():
    rng = np.random.default_rng(0)
    vocab = {w: rng.normal(size=8) for w in WORDS}

    def embed(texts):  # a stand-in sentence embedder: the mean of fixed word vectors
        return np.array([np.mean([vocab[w] for w in t.lower().replace(".", "").split() if w in vocab]
                                 or [np.zeros(8)], 0) for t in texts])

    domain, candidates = make_documents(12, seed=1), make_documents(9, seed=2)
    ours = embedding_scores(domain, candidates, embed, chunk_words=16, max_chunks=1000, seed=0)
    chunks = [" ".join(t.split()[i:i + 16]) for t in domain for i in range(0, len(t.split()), 16)
              if i == 0 or len(t.split()) - i >= 8]
    D = embed(chunks)
    for score, text in zip(ours, candidates, strict=True):
        head = " ".join(text.split()[:16])
        assert score == pytest.approx(cosine_of_means(embed([head]), D), abs=1e-12)


def test_mix_similar_needs_general_text():
    with pytest.raises(ConfigError, match="mix-similar needs general text"):
        resolve(AdaptConfig, overrides=["model=m", "data=d", "out=o", "mitigation.methods=[mix-similar]"])


def test_the_model_card_lists_the_added_general_corpus(general_corpus_dir):
    from odyssey.report.model_card import _added_sources

    config = {"general": str(general_corpus_dir), "mitigation": {"methods": ["mix-similar"], "mix_similar": {}}}
    rows = _added_sources(config, {})
    assert [(r["corpus"], r["role"]) for r in rows] == [
        ("general", "training: general documents nearest the domain (mix-similar)")]
    assert _added_sources({"general": str(general_corpus_dir), "mitigation": {"methods": []}}, {}) == []
