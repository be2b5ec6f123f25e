"""How clean is a corpus: duplicates, near duplicates, train/test leakage, lengths,
characters and boilerplate (`odyssey corpus quality`).

Definitions (documents of all splits together unless said otherwise):

- exact duplicates: documents whose NFC-normalized, stripped text equals an earlier
  document's (``cross_split``: the earlier copy is in another split);
- near duplicates: documents that :func:`odyssey.corpora.near_duplicates.near_duplicate_drop`
  would drop (all but the first of each MinHash-LSH cluster of word 5-gram sets);
- leakage: a valid/test document leaks when at least ``leakage_min_overlap`` of its
  lowercase word ``leakage_ngram``-grams (hashed) also occur in the train split;
  documents with no such n-gram are not counted;
- lengths: quantiles of characters and words per document;
- characters: shares of ASCII, letters, digits, whitespace, punctuation, symbols and
  control characters among all characters, U+FFFD replacement characters, and the
  scripts of the letters (the first word of their Unicode name: LATIN, CYRILLIC...);
- boilerplate: stripped lines of at least ``boilerplate_min_chars`` characters that
  occur in at least ``boilerplate_min_documents`` documents; their share of all such
  lines, and the documents that hold one.

>>> report = corpus_quality("corpora/legal")
>>> report["near_duplicates"]["rate"], report["leakage"]["test"]["rate"]
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from odyssey.corpora.config import QualityConfig
from odyssey.corpora.near_duplicates import near_duplicate_clusters
from odyssey.corpora.store import SPLITS, is_corpus_dir, iter_split, load_documents, split_files
from odyssey.errors import DataError
from odyssey.io import atomic_write, sha256_text

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_WORD = re.compile(r"\w+")


def read_corpus(spec: str | os.PathLike) -> dict[str, list[dict]]:
    """The documents of each non-empty split of a corpus directory, or ``{"all": docs}``
    for any other data spec (a file, a folder, ``DIR:split``)."""
    path = Path(spec)
    if is_corpus_dir(path):
        splits = {s: list(iter_split(path, s)) for s in SPLITS if split_files(path, s)}
        if not any(splits.values()):
            raise DataError(f"corpus {path} has no documents")
        return splits
    return {"all": load_documents(str(spec), default_split="test")}


def exact_duplicates(splits: dict[str, list[dict]]) -> dict:
    seen: dict[str, str] = {}
    count = cross = 0
    for split, docs in splits.items():
        for d in docs:
            key = sha256_text(unicodedata.normalize("NFC", d["text"]).strip())
            if key in seen:
                count += 1
                cross += seen[key] != split
            else:
                seen[key] = split
    n = sum(len(v) for v in splits.values())
    return {"count": count, "rate": count / n if n else 0.0, "cross_split": cross}


def near_duplicates(docs: list[dict], cfg: QualityConfig) -> dict:
    clusters = near_duplicate_clusters([d["text"] for d in docs], cfg.near_duplicate_threshold,
                                       cfg.num_perm, cfg.shingle)
    dropped = sum(len(c) - 1 for c in clusters)
    return {"count": dropped, "rate": dropped / len(docs) if docs else 0.0, "clusters": len(clusters),
            "threshold": cfg.near_duplicate_threshold,
            "examples": [[str(docs[i]["id"]) for i in c[:5]] for c in sorted(clusters, key=len, reverse=True)[:cfg.top]]}


def _ngram_hashes(text: str, n: int) -> set[int]:
    words = _WORD.findall(text.lower())
    return {hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1)}


def leakage(splits: dict[str, list[dict]], cfg: QualityConfig) -> dict | None:
    """Per held-out split: documents checked, documents leaked, their share, and the mean
    share of n-grams found in train. None without a train split."""
    if not splits.get("train"):
        return None
    train: set[int] = set()
    for d in splits["train"]:
        train |= _ngram_hashes(d["text"], cfg.leakage_ngram)
    out = {"ngram": cfg.leakage_ngram, "min_overlap": cfg.leakage_min_overlap}
    for split in ("valid", "test"):
        overlaps = []
        for d in splits.get(split, []):
            grams = _ngram_hashes(d["text"], cfg.leakage_ngram)
            if grams:
                overlaps.append(len(grams & train) / len(grams))
        leaked = sum(o >= cfg.leakage_min_overlap for o in overlaps)
        out[split] = {"documents": len(overlaps), "leaked": leaked,
                      "rate": leaked / len(overlaps) if overlaps else 0.0,
                      "mean_overlap": float(np.mean(overlaps)) if overlaps else 0.0}
    return out


def length_stats(docs: list[dict]) -> dict:
    chars = np.array([len(d["text"]) for d in docs], dtype=np.float64)
    words = np.array([len(d["text"].split()) for d in docs], dtype=np.float64)

    def q(a):
        return {f"p{round(p * 100)}": float(np.quantile(a, p)) for p in QUANTILES} | {"mean": float(a.mean())}

    return {"chars": q(chars), "words": q(words)}


def _char_class(ch: str) -> str:
    if ch.isspace():
        return "whitespace"
    cat = unicodedata.category(ch)
    if cat[0] == "L":
        return "letters"
    if cat == "Nd":
        return "digits"
    if cat[0] == "P":
        return "punctuation"
    if cat[0] == "S":
        return "symbols"
    if cat[0] == "C":
        return "control"
    return "other"  # marks, other numbers, separators that are not whitespace


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def charset_stats(docs: list[dict], top: int = 5) -> dict:
    counts: Counter[str] = Counter()
    for d in docs:
        counts.update(d["text"])
    total = sum(counts.values())
    classes: Counter[str] = Counter()
    scripts: Counter[str] = Counter()
    ascii_ = 0
    for ch, n in counts.items():  # classify each distinct character once
        classes[_char_class(ch)] += n
        ascii_ += n if ord(ch) < 128 else 0
        if ch.isalpha():
            scripts[_script(ch)] += n
    letters = sum(scripts.values())
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return {"chars": total, "distinct": len(counts), "ascii": share(ascii_),
            **{k: share(classes[k]) for k in ("letters", "digits", "whitespace", "punctuation", "symbols",
                                                "control", "other")},
            "replacement": counts.get("\ufffd", 0),
            "scripts": [[s, n / letters] for s, n in scripts.most_common(top)] if letters else []}


def boilerplate_stats(docs: list[dict], cfg: QualityConfig) -> dict:
    doc_freq: Counter[str] = Counter()
    per_doc = []
    for d in docs:
        lines = [ln.strip() for ln in d["text"].splitlines()]
        lines = [ln for ln in lines if len(ln) >= cfg.boilerplate_min_chars]
        per_doc.append(lines)
        doc_freq.update(set(lines))
    common = {ln for ln, n in doc_freq.items() if n >= cfg.boilerplate_min_documents}
    all_lines = sum(len(x) for x in per_doc)
    hits = sum(1 for lines in per_doc for ln in lines if ln in common)
    affected = sum(1 for lines in per_doc if any(ln in common for ln in lines))
    top = sorted(common, key=lambda ln: (-doc_freq[ln], ln))[:cfg.top]
    return {"min_documents": cfg.boilerplate_min_documents, "distinct_lines": len(common),
            "line_share": hits / all_lines if all_lines else 0.0,
            "documents_affected": affected / len(docs) if docs else 0.0,
            "top": [{"line": ln, "documents": doc_freq[ln]} for ln in top]}


def corpus_quality(spec: str | os.PathLike, cfg: QualityConfig | None = None) -> dict:
    """All quality figures of a corpus directory (or any data spec) as one dict."""
    cfg = cfg or QualityConfig()
    splits = read_corpus(spec)
    docs = [d for v in splits.values() for d in v]
    return {
        "corpus": str(spec),
        "documents": {k: len(v) for k, v in splits.items()},
        "total_documents": len(docs),
        "exact_duplicates": exact_duplicates(splits),
        "near_duplicates": near_duplicates(docs, cfg),
        "leakage": leakage(splits, cfg),
        "lengths": length_stats(docs),
        "charset": charset_stats(docs, cfg.top),
        "boilerplate": boilerplate_stats(docs, cfg),
        "config": cfg.model_dump(mode="json"),
    }


def render_html(report: dict, out_path: str | os.PathLike) -> Path:
    """The quality report as one self-contained HTML page (every corpus string escaped)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("odyssey.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: f"{100 * v:.2f}%"
    env.filters["num"] = lambda v: f"{v:,.0f}"
    html = env.get_template("quality.html.j2").render(r=report)
    out = Path(out_path)
    with atomic_write(out) as f:
        f.write(html)
    return out
