"""`odyssey probe bias` and `odyssey probe memorization`: outputs and exit codes."""

import json

from odyssey.cli import run


def test_bias_list(capsys):
    assert run(["probe", "bias", "--list", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["total"]["pairs"] >= 500 and len(counts) == 6
    assert run(["probe", "bias", "--list"]) == 0
    assert "nationality" in capsys.readouterr().out


def test_bias_cli_writes_json(tmp_path, capsys, tiny_llama_dir):
    out = tmp_path / "probes"
    code = run(["probe", "bias", "--model", str(tiny_llama_dir), "--against", str(tiny_llama_dir), "--category",
                "nationality", "--out", str(out), "--json", "--device", "cpu", "n_boot=100"])
    assert code == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert "pairs" not in printed and printed["categories"]["nationality"]["n"] == 112
    saved = json.loads((out / "bias.json").read_text())
    assert len(saved["pairs"]) == 112 and saved["config"]["n_boot"] == 100
    assert run(["probe", "bias", "--model", str(tiny_llama_dir), "--category", "age", "--device", "cpu",
                "n_boot=100"]) == 0
    assert "preference for the stereotypical sentence" in " ".join(capsys.readouterr().out.split())


def test_memorization_cli(tmp_path, capsys, tiny_llama_dir, tiny_corpus_dir):
    code = run(["probe", "memorization", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
                "--against", str(tiny_llama_dir), "--sequences", "4", "--prefix-tokens", "8", "--suffix-tokens", "8",
                "--membership-documents", "4", "--device", "cpu", "--out", str(tmp_path), "n_boot=100"])
    assert code == 0, capsys.readouterr().err
    assert "membership" in capsys.readouterr().out
    saved = json.loads((tmp_path / "memorization.json").read_text())
    assert saved["extraction"]["sequences"] == 4 and saved["membership"]["documents"]["member"] == 4


def test_bad_input_exits_2(tmp_path, capsys, tiny_llama_dir, tiny_corpus_dir):
    cases = [
        (["probe", "bias"], "--model"),
        (["probe", "bias", "--model", str(tmp_path / "missing")], "not found"),
        (["probe", "bias", "--model", str(tiny_llama_dir), "--category", "gendr"], "unknown bias categories"),
        (["probe", "bias", "--list", "--templates", str(tmp_path / "t.yaml")], "not found"),
        (["probe", "bias", "--model", str(tiny_llama_dir), "n_boot=3"], "n_boot"),
        (["probe", "memorization", "--model", str(tiny_llama_dir)], "--data"),
        (["probe", "memorization", "--model", str(tiny_llama_dir), "--data", str(tmp_path / "nope")], "not found"),
        (["probe", "memorization", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
          "prefix_tokens=0"], "prefix_tokens"),
        (["probe", "memorization", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
          "membership_split=heldout"], "unknown split"),
        (["model-card", str(tmp_path)], "config.yaml"),
    ]
    for argv, message in cases:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
