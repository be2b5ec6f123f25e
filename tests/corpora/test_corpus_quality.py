"""`odyssey corpus quality` and `corpus build --drop-synthetic`: each figure against a
hand count or a naive recomputation, the terminal, JSON and HTML outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import make_documents
from odyssey.cli import run
from odyssey.collapse.run import write_corpus
from odyssey.corpora.config import QualityConfig
from odyssey.corpora.quality import (
    boilerplate_stats,
    charset_stats,
    corpus_quality,
    exact_duplicates,
    leakage,
    length_stats,
)
from odyssey.corpora.store import read_manifest
from odyssey.io import write_jsonl

BOILER = "Copyright (c) Example Corp. All rights reserved."


def docs(texts, prefix):
    return [{"text": t, "id": f"{prefix}{i}", "meta": {}} for i, t in enumerate(texts)]


@pytest.fixture
def corpus(tmp_path):
    base = make_documents(30, seed=12, min_words=40, max_words=60)
    train = base[:20] + [base[0], base[1] + "  "]  # two exact copies (whitespace aside)
    train[3] = base[3] + "\n" + BOILER
    train[4] = base[4] + "\n" + BOILER
    valid = base[20:25]
    test = base[25:28] + [base[5], base[6] + " extra words at the end"]  # two leaked documents
    test[0] = test[0] + "\n" + BOILER
    path = tmp_path / "c"
    write_corpus(path, "c", {"train": docs(train, "tr"), "valid": docs(valid, "va"), "test": docs(test, "te")}, {})
    return path


def test_exact_duplicates_count_copies_after_the_first():
    splits = {"train": docs(["a", "b", "a"], "t"), "test": docs([" b ", "c"], "s")}
    assert exact_duplicates(splits) == {"count": 2, "rate": 2 / 5, "cross_split": 1}


def test_leakage_by_ngram_overlap():
    words = " ".join(f"w{i}" for i in range(40))
    cfg = QualityConfig(leakage_ngram=5, leakage_min_overlap=0.5)
    half = " ".join(f"w{i}" for i in range(20)) + " " + " ".join(f"x{i}" for i in range(20))
    splits = {"train": docs([words], "t"), "test": docs([words, half, "unrelated text " * 10, "short"], "s")}
    out = leakage(splits, cfg)
    # n-grams: the copy 36/36; the half 16 of 36 in train (< 0.5); unrelated 0; "short" has none.
    assert out["test"]["documents"] == 3 and out["test"]["leaked"] == 1
    assert out["test"]["mean_overlap"] == pytest.approx((1 + 16 / 36 + 0) / 3)
    assert leakage({"all": splits["test"]}, cfg) is None


def test_lengths_charset_and_boilerplate_against_naive_counts():
    texts = ["Hello, world! 123", "Ünïcödé — текст\tok", "\x07bell " + BOILER, BOILER + "\nmore", BOILER]
    ds = docs(texts, "d")
    lengths = length_stats(ds)
    assert lengths["chars"]["p50"] == float(np.median([len(t) for t in texts]))
    assert lengths["words"]["p100"] == max(len(t.split()) for t in texts)
    cs = charset_stats(ds)
    all_chars = "".join(texts)
    assert cs["chars"] == len(all_chars)
    assert cs["ascii"] == pytest.approx(sum(ord(c) < 128 for c in all_chars) / len(all_chars))
    assert cs["digits"] == pytest.approx(sum(c.isdigit() for c in all_chars) / len(all_chars))
    assert cs["whitespace"] == pytest.approx(sum(c.isspace() for c in all_chars) / len(all_chars))
    assert cs["control"] == pytest.approx(1 / len(all_chars))  # the bell
    assert {s for s, _ in cs["scripts"]} == {"LATIN", "CYRILLIC"}
    assert boilerplate_stats(ds, QualityConfig(boilerplate_min_documents=3))["distinct_lines"] == 0
    bp = boilerplate_stats(ds, QualityConfig(boilerplate_min_documents=2))
    assert bp["distinct_lines"] == 1 and bp["top"] == [{"line": BOILER, "documents": 2}]
    assert bp["documents_affected"] == pytest.approx(2 / 5)  # "\x07bell ..." is a different line
    lines = [ln.strip() for t in texts for ln in t.splitlines() if len(ln.strip()) >= 20]
    assert bp["line_share"] == pytest.approx(sum(ln == BOILER for ln in lines) / len(lines))


def test_corpus_quality_of_a_corpus(corpus):
    r = corpus_quality(corpus)
    assert r["documents"] == {"train": 22, "valid": 5, "test": 5}
    assert r["exact_duplicates"]["count"] == 3  # two train copies, one test copy of train
    assert r["exact_duplicates"]["cross_split"] == 1
    assert r["near_duplicates"]["count"] >= 4  # the exact copies, and the test document with extra words
    assert r["leakage"]["test"]["leaked"] == 2 and r["leakage"]["valid"]["leaked"] == 0
    assert r["boilerplate"]["top"][0] == {"line": BOILER, "documents": 3}


def test_quality_cli_json_table_and_escaped_html(corpus, tmp_path, capsys):
    code = run(["corpus", "quality", str(corpus), "--json"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["leakage"]["test"]["leaked"] == 2
    code = run(["corpus", "quality", str(corpus)])
    out = capsys.readouterr().out
    assert code == 0 and "near duplicates" in out and "leak" in out
    evil = tmp_path / "evil.jsonl"
    line = "<script>alert('x')</script> repeated boilerplate line"
    write_jsonl(evil, ({"text": f"doc {i}\n{line}"} for i in range(4)))
    html = tmp_path / "q.html"
    code = run(["corpus", "quality", str(evil), "--html", str(html)])
    text = html.read_text()
    assert code == 0 and "<script>" not in text and "&lt;script&gt;" in text
    code = run(["corpus", "quality", str(tmp_path / "missing")])
    assert code == 2 and "Traceback" not in capsys.readouterr().err


def test_build_drop_synthetic_records_what_was_dropped(tiny_llama_dir, tmp_path, capsys):
    texts = make_documents(16, seed=3)
    repeated = ["the the the the the the the the the the the the the the the the"] * 1 + \
        ["of of of of of of of of of of of of of of of of of of"]
    src = tmp_path / "in.jsonl"
    write_jsonl(src, ({"text": t, "id": f"d{i}"} for i, t in enumerate(texts + repeated)))
    # The threshold: the median perplexity, so that about half the documents fall below it.
    from odyssey.collapse.config import DetectConfig
    from odyssey.collapse.detect import score_documents

    rows = score_documents([{"text": t, "id": str(i)} for i, t in enumerate(texts + repeated)],
                           DetectConfig(model=str(tiny_llama_dir)), progress=False)
    threshold = float(np.median([r["perplexity"] for r in rows]))
    flagged = [r["id"] for r in rows if r["perplexity"] < threshold]
    assert 0 < len(flagged) < len(rows)
    out = tmp_path / "c"
    code = run(["corpus", "build", "c", "--from", str(src), "--out", str(out), "--no-progress",
                "--drop-synthetic", str(threshold), "--detector-model", str(tiny_llama_dir)])
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(out)
    filt = manifest["synthetic_filter"]
    assert filt["statistic"] == "perplexity" and filt["threshold"] == threshold
    assert [d["id"] for d in filt["documents"]] == [f"d{int(i)}" for i in flagged]
    assert manifest["dropped"].get("synthetic", 0) == len(flagged)
    assert manifest["documents"] == 18 - len(flagged)
    assert all(d["perplexity"] < threshold for d in filt["documents"])
