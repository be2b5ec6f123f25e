"""What the CLI prints when things go wrong: user text as it is (never Rich markup), one
line for a malformed YAML file, what a wrong --data path is, and advice after Ctrl-C."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from odyssey.cli import run


def test_paths_with_square_brackets_print_as_they_are(tmp_path, capsys, tiny_llama_dir, tiny_corpus_dir):
    # A closing tag with no opening one made Rich raise MarkupError; [v2] vanished as a style.
    for missing in (tmp_path / "corpora" / "x[/y]", tmp_path / "corpora" / "legal[v2]"):
        code = run(["evaluate", "--model", str(tiny_llama_dir), "--data", str(missing)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert f"data not found: {missing}" in err.replace("\n", "")
    out = tmp_path / "runs" / "legal[v2]" / "x[/y]"
    code = run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out", str(out),
                "--max-steps", "1", "--block-size", "32", "--batch-size", "2", "eval.batch_size=4"])
    printed = capsys.readouterr().out
    assert code == 0 and f"model saved to {out / 'model'}" in printed.replace("\n", "")


def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "recipe.yaml"
    bad.write_text("train:\n  max_steps: 3\n  lr: [1, 2\nout: x\n", encoding="utf-8")
    assert run(["adapt", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {bad}:4:4: invalid YAML (")


def test_data_pointing_at_a_model_or_run_says_what_it_is(tmp_path, capsys, tiny_llama_dir):
    code = run(["evaluate", "--model", str(tiny_llama_dir), "--data", str(tiny_llama_dir)])
    err = capsys.readouterr().err.replace("\n", "")
    assert code == 2 and f"{tiny_llama_dir} is a model directory (config.json, model.safetensors" in err
    assert "malformed JSON" not in err and "corpus directory" in err
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: m\n")
    (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1}) + "\n")
    assert run(["evaluate", "--model", str(tiny_llama_dir), "--data", str(run_dir)]) == 2
    assert f"{run_dir} is an odyssey run directory" in capsys.readouterr().err.replace("\n", "")


@pytest.mark.parametrize(("argv", "advice"), [
    (["adapt", "--model", "m", "--data", "d", "--out", "o"], "rerun with --resume"),
    (["corpus", "build", "c", "--from", "x", "--out", "o"], "rerun the command"),
])
def test_ctrl_c_says_how_to_continue(argv, advice):
    """A real SIGINT in a real process, sent while the command's library call runs."""
    patch = {"adapt": "odyssey.adapt.loop.adapt", "corpus": "odyssey.corpora.build.build_corpus"}[argv[0]]
    module, name = patch.rsplit(".", 1)
    script = textwrap.dedent(f"""
        import importlib, os, signal, sys, time
        # as in a terminal: a process started in the background of a script inherits SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        def interrupted(*args, **kwargs):
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C in the terminal, in the main thread
            time.sleep(30)
        setattr(importlib.import_module({module!r}), {name!r}, interrupted)
        from odyssey.cli import run
        sys.exit(run(sys.argv[1:]))
    """)
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130
    err = done.stderr.strip()
    assert err.startswith("error: interrupted; ") and advice in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
