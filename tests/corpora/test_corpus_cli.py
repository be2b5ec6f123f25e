"""`odyssey corpus build` through the real CLI entry point."""

from __future__ import annotations

import json

from helpers import make_documents
from odyssey.cli import run
from odyssey.cli.corpus import split_inputs_and_overrides
from odyssey.corpora.store import read_manifest


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_missing_path_exits_2_with_one_line(tmp_path, capsys):
    code = run(["corpus", "build", "x", "--from", str(tmp_path / "nope"), "--out", str(tmp_path / "c")])
    assert code == 2
    line = one_error_line(capsys)
    assert "input not found" in line and "nope" in line and "hint:" in line
    assert not (tmp_path / "c").exists()


def test_build_with_many_inputs_overrides_and_config(tmp_path, capsys):
    texts = make_documents(12, seed=4)
    paths = []
    for i, t in enumerate(texts[:4]):
        p = tmp_path / f"in{i}.txt"
        p.write_text(t, encoding="utf-8")
        paths.append(str(p))
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts[4:]), encoding="utf-8")
    yaml_cfg = tmp_path / "corpus.yaml"
    yaml_cfg.write_text("seed: 1\nlicense: CC0-1.0\nratios: [0.5, 0.25, 0.25]\n", encoding="utf-8")
    out = tmp_path / "c"

    code = run(["corpus", "build", "demo", "--from", paths[0], *paths[1:], "--from", str(jsonl),
                "--out", str(out), "--config", str(yaml_cfg), "--text-field", "body", "seed=7"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = read_manifest(out)
    assert manifest["config"]["seed"] == 7  # the override beats the YAML file
    assert manifest["config"]["text_field"] == "body"
    assert manifest["license"] == "CC0-1.0"
    # --from values first, then the extra positionals (click cannot keep them interleaved)
    assert [s["path"] for s in manifest["sources"]] == [paths[0], str(jsonl), *paths[1:]]
    assert {k: v["documents"] for k, v in manifest["splits"].items()} == {"train": 6, "valid": 3, "test": 3}
    assert "train" in captured.out and "dropped: none" in captured.out

    code = run(["corpus", "build", "demo", "--from", paths[0], "--out", str(out)])
    assert code == 2
    assert "corpus already exists" in one_error_line(capsys)


def test_bad_override_exits_2(tmp_path, capsys):
    p = tmp_path / "a.txt"
    p.write_text("text", encoding="utf-8")
    code = run(["corpus", "build", "x", "--from", str(p), "--out", str(tmp_path / "c"), "ratios=[0.5,0.5,0.5]"])
    assert code == 2
    assert "sum to 1" in one_error_line(capsys)


def test_positional_overrides_vs_paths(tmp_path):
    odd = tmp_path / "k=v.txt"
    odd.write_text("x", encoding="utf-8")
    assert split_inputs_and_overrides(["a.txt", "seed=3", str(odd), "ratios.train=0.9"]) == (
        ["a.txt", str(odd)], ["seed=3", "ratios.train=0.9"])
