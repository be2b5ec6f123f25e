"""`odyssey evaluate` end to end on CPU."""

import json

import pytest

from helpers import make_documents
from odyssey.cli import run
from odyssey.io import write_json, write_jsonl


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("evalcorpus") / "domain"
    for split, seed in (("train", 1), ("test", 2)):
        write_jsonl(path / split / "shard-00000.jsonl",
                    ({"text": t, "id": f"{split}-{i}", "meta": {}} for i, t in enumerate(make_documents(4, seed=seed))))
    write_json(path / "manifest.json", {"name": "domain"})
    return path


def test_cli_json_and_run_directory(tmp_path, capsys, tiny_model_dir, corpus_dir):
    out = tmp_path / "ev"
    code = run(["evaluate", "--model", str(tiny_model_dir), "--data", f"{corpus_dir}:test", "--json",
                "--context-length", "32", "--stride", "16", "--batch-size", "4", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)  # nothing else on stdout
    assert {"perplexity", "bits_per_byte", "tokens", "bytes"} <= result.keys()
    assert (result["context_length"], result["stride"], result["documents"]) == (32, 16, 4)
    assert result["perplexity"] > 1 and result["bits_per_byte"] > 0
    saved = json.loads((out / "eval.json").read_text())
    assert saved["perplexity"] == result["perplexity"] and len(saved["per_document"]) == 4
    assert saved["config"]["batch_size"] == 4 and saved["data"] == f"{corpus_dir}:test"
    assert (out / "tokens.safetensors").is_file()


def test_cli_table(capsys, tiny_llama_dir, corpus_dir):
    code = run(["evaluate", "--model", str(tiny_llama_dir), "--data", str(corpus_dir), "--no-progress",
                "stride=128"])
    out = capsys.readouterr().out
    assert code == 0
    assert "perplexity" in out and "bits/byte" in out and "context 128, stride 128" in out


@pytest.mark.parametrize("args", [
    ["--data", "/nonexistent/corpus"],
    ["--data", "CORPUS", "--stride", "0"],
    ["--data", "CORPUS", "--context-length", "4096"],
    ["--data", "CORPUS", "--stride", "64", "--context-length", "32"],
    ["--data", "CORPUS", "--dtype", "float8"],
])
def test_cli_errors_are_one_line(capsys, tiny_llama_dir, corpus_dir, args):
    args = [a.replace("CORPUS", str(corpus_dir)) for a in args]
    code = run(["evaluate", "--model", str(tiny_llama_dir), "--json", *args])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("error:") and len(captured.err.strip().splitlines()) == 1, captured.err


def test_cli_missing_model_is_one_line(capsys):
    assert run(["evaluate", "--data", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --model required") and len(err.strip().splitlines()) == 1
