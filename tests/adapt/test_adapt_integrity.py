"""A run has one writer, a finished run is reused only under the settings that made it,
and the hint after a divergence names a checkpoint only when one exists."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from test_adapt_loop import make_cfg

from odyssey.adapt.loop import adapt
from odyssey.cli import run as cli_run
from odyssey.errors import ConfigError, TrainingError


def test_second_adapt_on_the_same_out_exits_2_naming_the_holder(tmp_path, tiny_llama_dir, tiny_corpus_dir, capsys):
    out = tmp_path / "run"
    # Another process holds the run, as a running `odyssey adapt` does.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        from odyssey.runlock import run_lock
        with run_lock(sys.argv[1], what="adapt run"):
            print("held", flush=True)
            sys.stdin.read()
    """), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = cli_run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out", str(out),
                        "--max-steps", "1", "--block-size", "32"])
        err = capsys.readouterr().err
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert f"is in use: adapt run held by pid {holder.pid} on " in err and " since " in err
        assert not (out / "metrics.jsonl").exists()  # the refused process wrote nothing
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Once the holder has finished, the run goes ahead.
    code = cli_run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out", str(out),
                    "--max-steps", "1", "--block-size", "32", "--batch-size", "2", "--json", "eval.batch_size=4"])
    assert code == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 1


def test_resume_of_a_finished_run_with_other_settings_is_refused(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    out = tmp_path / "done"
    first = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, **{"train.max_steps": 2}), progress=False)
    # Same settings: the stored result is returned, nothing is redone.
    again = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, resume=True, **{"train.max_steps": 2}),
                  progress=False)
    assert again.to_dict() == first.to_dict()
    # Other settings: refused with what differs, not the old result with exit 0.
    with pytest.raises(ConfigError, match=r"finished run .*train\.max_steps: 2 -> 3.*--overwrite"):
        adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, resume=True, **{"train.max_steps": 3}), progress=False)
    # --overwrite redoes it with the new settings.
    redone = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, overwrite=True, **{"train.max_steps": 3}),
                   progress=False)
    assert redone.steps == 3


def test_nan_before_any_checkpoint_does_not_promise_one(tmp_path, tiny_llama_dir, tiny_corpus_dir, monkeypatch):
    import odyssey.adapt.loop as loop

    real_step = loop._train_step

    def poisoned(run, step):
        if step == 1:
            for p in run.model.parameters():
                p.data.fill_(float("nan"))
        return real_step(run, step)

    monkeypatch.setattr(loop, "_train_step", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingError) as caught:
        adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out), progress=False)  # save_every=0: no checkpoint
    assert "no checkpoint was saved" in caught.value.hint and "kept" not in caught.value.hint
    assert not (out / "checkpoint").exists()
