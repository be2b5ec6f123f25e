"""The corpus builder's caller-given document filter (``keep``) and the writer of documents
already split: the corpus stage runs a filter it knows nothing about and writes text as given."""

from __future__ import annotations

import pytest

from helpers import make_documents
from odyssey.corpora.build import Kept, build_corpus_from_documents, write_corpus_splits
from odyssey.corpora.store import iter_split, read_manifest
from odyssey.errors import DataError, WriteError


def short_ones(documents: list[dict]) -> Kept:
    """Drops documents under 60 characters, saying why; as any caller's filter would."""
    kept = [d for d in documents if len(d["text"]) >= 60]
    dropped = [{"id": d["id"], "reason": "short", "chars": len(d["text"])} for d in documents if len(d["text"]) < 60]
    return Kept(kept, dropped, name="short_filter", record={"rule": "under 60 characters"})


def test_keep_drops_what_the_caller_says_and_the_manifest_says_why(tmp_path):
    texts = make_documents(20, seed=5, min_words=3, max_words=25)
    docs = [{"text": t, "id": f"d{i}"} for i, t in enumerate(texts)] + [{"text": texts[0], "id": "z-copy"}]
    seen = []

    def keep(documents):
        seen.extend(d["id"] for d in documents)
        return short_ones(documents)

    result = build_corpus_from_documents("f", docs, tmp_path / "c", keep=keep)
    manifest = read_manifest(tmp_path / "c")
    short = sorted(f"d{i}" for i, t in enumerate(texts) if len(t) < 60)
    assert 0 < len(short) < 20
    assert "z-copy" not in seen and len(seen) == 20  # the filter sees documents after dedup
    assert sorted(d["id"] for d in manifest["short_filter"]["documents"]) == short
    assert manifest["short_filter"]["rule"] == "under 60 characters"
    assert manifest["dropped"] == {"duplicate": 1, "short": len(short)}
    assert result.documents == 20 - len(short)
    kept = {d["id"] for s in ("train", "valid", "test") for d in iter_split(tmp_path / "c", s)}
    assert kept == {f"d{i}" for i in range(20)} - set(short)

    with pytest.raises(DataError, match="empty after cleaning.*short=2"):
        build_corpus_from_documents("g", docs[:2], tmp_path / "g", keep=lambda d: Kept([], [
            {"id": x["id"], "reason": "short"} for x in d]))


def test_write_corpus_splits_writes_text_exactly_as_given(tmp_path):
    decomposed = "Cafe\u0301 e\u0301t\u00e9"  # NFC would change it: a build normalizes, this writer must not
    splits = {"train": [{"text": decomposed, "id": "a", "meta": {"block": 0}},
                        {"text": decomposed, "id": "b", "meta": {"block": 1}}],  # a repeat is kept too
              "valid": [{"text": "v", "id": "c", "meta": {}}]}
    result = write_corpus_splits("gen", splits, tmp_path / "c", sources=[{"generation": 1}])
    back = list(iter_split(tmp_path / "c", "train"))
    assert [d["text"] for d in back] == [decomposed, decomposed] and [d["id"] for d in back] == ["a", "b"]
    assert result.split_documents == {"train": 2, "valid": 1, "test": 0}
    assert result.manifest["sources"] == [{"generation": 1}] and result.manifest["dropped"] == {}
    with pytest.raises(WriteError, match="already exists"):
        write_corpus_splits("gen", splits, tmp_path / "c")
    write_corpus_splits("gen", {"train": splits["train"][:1]}, tmp_path / "c", overwrite=True)
    assert read_manifest(tmp_path / "c")["documents"] == 1
