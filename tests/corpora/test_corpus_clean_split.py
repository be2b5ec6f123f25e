"""Cleaning, deduplication, split counts and split determinism, and the corpus config."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from helpers import make_documents
from odyssey.config import resolve
from odyssey.corpora.clean import (
    BinaryFilter,
    EmptyFilter,
    MinCharsFilter,
    clean,
    deduplicate,
    default_filters,
    normalize_text,
)
from odyssey.corpora.config import CorpusConfig
from odyssey.corpora.split import split_counts, split_digest, split_documents
from odyssey.errors import ConfigError

RATIOS = {"train": 0.8, "valid": 0.1, "test": 0.1}


def doc(text, id="x", source="s"):
    return {"text": text, "id": id, "meta": {"source": source}}


def test_nfc_normalization():
    assert normalize_text("caf" + "e\u0301") == "caf\u00e9"
    dropped = Counter()
    (out,) = clean([doc("e\u0301t\u0065\u0301")], [], dropped)
    assert out["text"] == "\u00e9t\u00e9"
    assert len(out["text"]) == 3


@pytest.mark.parametrize("flt, text, reason", [
    (EmptyFilter(), "", "empty"),
    (EmptyFilter(), " \n\t ", "empty"),
    (EmptyFilter(), " a ", None),
    (BinaryFilter(), "abc\x00def", "binary"),
    (BinaryFilter(), "\x01\x02\x03\x04ab", "binary"),
    (BinaryFilter(), "\ufffd\ufffd\ufffd\ufffda", "binary"),
    (BinaryFilter(), "line\n\ttabbed\r\n", None),
    (BinaryFilter(), "one \ufffd in a long enough sentence", None),
    (MinCharsFilter(5), "  abcd  ", "too_short"),
    (MinCharsFilter(5), "abcde", None),
])
def test_filters(flt, text, reason):
    assert flt.reason(doc(text)) == reason


def test_clean_counts_reasons_first_filter_wins():
    docs = [doc("good text"), doc(""), doc("   "), doc("\x00\x00"), doc("ab"), doc("fine too")]
    dropped = Counter()
    kept = list(clean(docs, default_filters(min_chars=3), dropped))
    assert [d["text"] for d in kept] == ["good text", "fine too"]
    assert dropped == {"empty": 2, "binary": 1, "too_short": 1}
    assert docs[0]["text"] == "good text" and docs[1]["text"] == ""  # inputs untouched


def test_deduplicate_keeps_smallest_id_whatever_the_order():
    docs = [doc("same", "b"), doc("other", "c"), doc("same", "a"), doc("same", "z")]
    for perm in (docs, docs[::-1], docs[1:] + docs[:1]):
        dropped = Counter()
        kept = deduplicate(perm, dropped)
        assert sorted(d["id"] for d in kept) == ["a", "c"]
        assert dropped == {"duplicate": 2}


@pytest.mark.parametrize("n, ratios, expected", [
    (0, RATIOS, (0, 0, 0)),
    (1, RATIOS, (1, 0, 0)),
    (2, RATIOS, (2, 0, 0)),  # fewer docs than splits: no minimum
    (3, RATIOS, (1, 1, 1)),  # every non-zero split gets one
    (3, {"train": 0.9, "valid": 0.05, "test": 0.05}, (1, 1, 1)),
    (10, RATIOS, (8, 1, 1)),
    (11, RATIOS, (9, 1, 1)),
    (19, RATIOS, (15, 2, 2)),
    (100, RATIOS, (80, 10, 10)),
    (7, {"train": 1.0, "valid": 0.0, "test": 0.0}, (7, 0, 0)),
    (5, {"train": 0.5, "valid": 0.5, "test": 0.0}, (3, 2, 0)),
    (10, {"train": 0.7, "valid": 0.2, "test": 0.1}, (7, 2, 1)),
    (4, {"train": 0.0, "valid": 0.5, "test": 0.5}, (0, 2, 2)),
])
def test_split_counts_table(n, ratios, expected):
    assert tuple(split_counts(n, ratios).values()) == expected


def test_split_counts_always_sum_to_n():
    rng = random.Random(0)
    for n in range(0, 200):
        a, b = rng.random(), rng.random()
        lo, hi = min(a, b), max(a, b)
        ratios = {"train": lo, "valid": hi - lo, "test": 1 - hi}
        counts = split_counts(n, ratios)
        assert sum(counts.values()) == n
        for name, r in ratios.items():
            assert abs(counts[name] - n * r) <= 1.0 + (n >= 3), (n, ratios, counts)


def _ids(parts):
    return {name: [d["id"] for d in docs] for name, docs in parts.items()}


def test_split_documents_deterministic_order_independent_and_seeded():
    texts = make_documents(50, seed=1)
    docs = [doc(t, f"d{i}") for i, t in enumerate(texts)]
    shuffled = docs[:]
    random.Random(42).shuffle(shuffled)

    a = split_documents(docs, RATIOS, seed=0)
    b = split_documents(shuffled, RATIOS, seed=0)
    c = split_documents(docs, RATIOS, seed=1)

    assert _ids(a) == _ids(b)
    assert _ids(a) != _ids(c)
    assert {k: len(v) for k, v in a.items()} == {"train": 40, "valid": 5, "test": 5}
    all_ids = [i for ids in _ids(a).values() for i in ids]
    assert sorted(all_ids) == sorted(d["id"] for d in docs)  # a partition: no doc twice
    # The algorithm as documented: sort by (sha256, id), shuffle with Random(seed), cut.
    from odyssey.io import sha256_text
    order = sorted(docs, key=lambda d: (sha256_text(d["text"]), d["id"]))
    random.Random(0).shuffle(order)
    assert _ids(a)["train"] == [d["id"] for d in order[:40]]


def test_split_digest_ignores_order_and_sees_content():
    docs = [doc("a"), doc("b"), doc("c")]
    assert split_digest(docs) == split_digest(docs[::-1])
    assert split_digest(docs) != split_digest(docs[:2])


def test_config_ratios_forms_and_validation():
    assert CorpusConfig().ratios == RATIOS
    assert CorpusConfig(ratios=[0.6, 0.2, 0.2]).ratios == {"train": 0.6, "valid": 0.2, "test": 0.2}
    assert CorpusConfig(ratios="0.5,0.25,0.25").ratios["test"] == 0.25
    assert CorpusConfig(ratios={"train": 1.0}).ratios == {"train": 1.0, "valid": 0.0, "test": 0.0}
    cfg = resolve(CorpusConfig, None, ["ratios.train=0.9", "ratios.valid=0.1", "ratios.test=0", "seed=4"])
    assert cfg.ratios == {"train": 0.9, "valid": 0.1, "test": 0.0} and cfg.seed == 4


@pytest.mark.parametrize("overrides, message", [
    (["ratios=[0.5, 0.1, 0.1]"], "sum to 1"),
    (["ratios=[0.5, 0.5]"], "give 3 ratios"),
    (["ratios.dev=0.1", "ratios.train=0.7"], "unknown split"),
    (["ratios=[1.2, -0.1, -0.1]"], ">= 0"),
    (["encoding_errors=ignore"], "encoding_errors"),
    (["shard_docs=0"], "shard_docs"),
    (["min_chrs=3"], "min_chrs"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(CorpusConfig, None, overrides)


def test_config_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as info:
        resolve(CorpusConfig, None, ["seed=x", "shard_docs=0"])
    assert "seed" in str(info.value) and "shard_docs" in str(info.value)
