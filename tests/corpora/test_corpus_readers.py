"""Readers: every input format, ids and provenance, and the errors bad input raises."""

from __future__ import annotations

import json

import pytest

from odyssey.corpora.readers import DocumentReader, read_documents
from odyssey.errors import ConfigError, DataError


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_txt_folder_recurses_sorted_with_relative_ids(tmp_path):
    root = tmp_path / "legal"
    (root / "b" / "c").mkdir(parents=True)
    (root / "z.txt").write_text("last", encoding="utf-8")
    (root / "a.txt").write_text("first\n", encoding="utf-8")
    (root / "b" / "c" / "deep.TXT").write_text("deep", encoding="utf-8")
    (root / "notes.md").write_text("not read", encoding="utf-8")
    (root / ".hidden.txt").write_text("not read either", encoding="utf-8")

    docs = list(read_documents([root]))

    assert [d["id"] for d in docs] == ["legal/a.txt", "legal/b/c/deep.TXT", "legal/z.txt"]
    assert [d["text"] for d in docs] == ["first\n", "deep", "last"]
    assert docs[0]["meta"] == {"source": str(root / "a.txt")}


def test_single_txt_file_strips_bom(tmp_path):
    path = tmp_path / "one.txt"
    path.write_bytes("\ufeffHello".encode())
    (doc,) = read_documents([path])
    assert doc == {"text": "Hello", "id": "one.txt", "meta": {"source": str(path)}}


def test_jsonl_custom_field_ids_and_meta(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [
        {"body": "one", "id": 7, "meta": {"title": "T"}},
        {"body": "two"},
    ])
    with path.open("a", encoding="utf-8") as f:
        f.write("\n")  # blank lines are skipped
        f.write(json.dumps({"body": "four", "id": ""}) + "\n")

    docs = list(read_documents([path], text_field="body"))

    assert [d["text"] for d in docs] == ["one", "two", "four"]
    assert [d["id"] for d in docs] == ["7", "d.jsonl:2", "d.jsonl:4"]
    assert docs[0]["meta"] == {"title": "T", "source": str(path), "line": 1}
    assert docs[2]["meta"]["line"] == 4


def test_json_suffix_read_as_jsonl(tmp_path):
    path = write_lines(tmp_path / "d.json", [{"text": "a"}, {"text": "b"}])
    assert [d["text"] for d in read_documents([path])] == ["a", "b"]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    table = pa.table({"content": ["alpha", None, "gamma"], "id": ["x", "y", None],
                      "other": [1, 2, 3]})
    pq.write_table(table, path)

    docs = list(read_documents([path], text_field="content"))

    assert [d["text"] for d in docs] == ["alpha", "", "gamma"]  # null text -> empty, dropped later
    assert [d["id"] for d in docs] == ["x", "y", "t.parquet:2"]
    assert docs[2]["meta"] == {"source": str(path), "row": 2}
    with pytest.raises(DataError, match=r"t\.parquet: no column 'text'.*content"):
        list(read_documents([path]))


def test_datasets_dict_all_splits_and_inside_folder(tmp_path):
    import datasets

    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["t0", "t1"]}),
        "test": datasets.Dataset.from_dict({"text": ["s0"]}),
    })
    folder = tmp_path / "mixed"
    dd.save_to_disk(str(folder / "hf"))
    (folder / "loose.txt").write_text("loose", encoding="utf-8")
    single = tmp_path / "single"
    datasets.Dataset.from_dict({"text": ["only"], "id": ["given"]}).save_to_disk(str(single))

    docs = list(read_documents([folder, single]))

    texts = sorted(d["text"] for d in docs)
    assert texts == ["loose", "only", "s0", "t0", "t1"]  # state.json etc. not read as JSONL
    by_text = {d["text"]: d for d in docs}
    assert by_text["t1"]["id"] == "mixed/hf/train:1"
    assert by_text["s0"]["meta"] == {"source": str(folder / "hf"), "split": "test", "row": 0}
    assert by_text["only"]["id"] == "given"


def test_reader_records_sources_with_file_hashes(tmp_path):
    import hashlib

    path = write_lines(tmp_path / "d.jsonl", [{"text": "a"}])
    reader = DocumentReader([path])
    list(reader)
    (src,) = reader.sources
    assert src["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert src["format"] == "jsonl"
    assert src["files"] == [{"path": str(path), "sha256": src["sha256"], "bytes": path.stat().st_size}]


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        list(read_documents([path]))


def test_missing_or_non_string_text_field_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [{"text": "ok"}, {"body": "no text here"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: no field 'text' \(fields: body\)") as info:
        list(read_documents([path]))
    assert "--text-field" in info.value.hint
    path = write_lines(tmp_path / "n.jsonl", [{"text": 3}])
    with pytest.raises(DataError, match=r"n\.jsonl:1: field 'text' is a int"):
        list(read_documents([path]))
    path = write_lines(tmp_path / "l.jsonl", [["a list"]])
    with pytest.raises(DataError, match=r"l\.jsonl:1: expected a JSON object"):
        list(read_documents([path]))


def test_undecodable_txt_strict_skip_replace(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "good.txt").write_text("fine", encoding="utf-8")
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))

    with pytest.raises(DataError, match=r"latin1\.txt: not valid UTF-8 \(byte 0xe9 at offset 3\)") as info:
        list(read_documents([folder]))
    assert "encoding_errors" in info.value.hint

    reader = DocumentReader([folder], encoding_errors="skip")
    assert [d["text"] for d in reader] == ["fine"]
    assert reader.dropped == {"undecodable": 1}

    docs = list(read_documents([folder], encoding_errors="replace"))
    assert [d["text"] for d in docs] == ["fine", "caf\ufffd"]


def test_undecodable_jsonl_line_names_line_and_skip_counts(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n{"text": "c"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid UTF-8"):
        list(read_documents([path]))
    reader = DocumentReader([path], encoding_errors="skip")
    assert [d["id"] for d in reader] == ["d.jsonl:1", "d.jsonl:3"]
    assert reader.dropped["undecodable"] == 1


def test_binary_txt_is_read_for_the_binary_filter_not_an_error(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_bytes(b"\x89PNG\x00\x00\xff\xfe")
    (doc,) = read_documents([path])  # strict, yet no error: the cleaner drops it as binary
    assert "\x00" in doc["text"]


def test_bad_paths_and_options(tmp_path):
    with pytest.raises(DataError, match="input not found: .*missing"):
        DocumentReader([tmp_path / "missing"])
    (tmp_path / "x.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported input file"):
        DocumentReader([tmp_path / "x.csv"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no readable files under"):
        DocumentReader([empty])
    with pytest.raises(ConfigError, match="encoding_errors"):
        DocumentReader([tmp_path / "x.csv"], encoding_errors="ignore")
