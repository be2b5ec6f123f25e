"""`odyssey study --jobs 2`: runs side by side in worker processes give the figures of the
runs made one after another, in the study's order, in one store."""

import json

import pytest
import yaml

from odyssey.cli import run as cli_run
from odyssey.config import resolve
from odyssey.errors import ConfigError
from odyssey.results_store import ResultsStore
from odyssey.study.config import StudyConfig
from odyssey.study.executor import LocalExecutor, ProcessExecutor, make_executor, resolve_jobs

FIGURES = ("ppl_before", "ppl_after", "general_ppl_after", "delta_ppl_pct", "forgetting_pct", "train_steps")


def write_study(path, out, model, general, corpus):
    path.write_text(yaml.safe_dump({
        "out": str(out), "model": str(model), "general": str(general),
        "domains": [{"name": n, "path": str(corpus), "kind": "register"} for n in ("alpha", "beta", "gamma")],
        "recipe": {"train": {"block_size": 32, "batch_size": 4}, "optim": {"lr": 3e-3}, "eval_every": 2},
        "test_eval": {"batch_size": 8}, "probes": {"run": []}}))


def figures(out) -> dict:
    saved = json.loads((out / "results.json").read_text())
    return {d["name"]: {k: d[k] for k in FIGURES} for d in saved["domains"]}


def test_two_worker_processes_match_one_after_another(tmp_path, tiny_llama_dir, tiny_corpus_dir,
                                                      general_corpus_dir, capsys):
    for name in ("serial", "parallel"):
        write_study(tmp_path / f"{name}.yaml", tmp_path / name, tiny_llama_dir, general_corpus_dir, tiny_corpus_dir)
    assert cli_run(["study", "--config", str(tmp_path / "serial.yaml")]) == 0
    assert cli_run(["study", "--config", str(tmp_path / "parallel.yaml"), "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    assert "[3/3] gamma: perplexity" in err
    want, got = figures(tmp_path / "serial"), figures(tmp_path / "parallel")
    assert list(got) == ["alpha", "beta", "gamma"]  # the study's order, whichever worker finished first
    for name in want:  # the same runs; only the workers' thread count may differ from the test's
        assert got[name] == pytest.approx(want[name], rel=1e-4), name
    with ResultsStore(tmp_path / "parallel" / "results.sqlite") as store:
        assert [r["name"] for r in store.runs("done")] == ["alpha", "beta", "gamma"]
    # finished runs are not redone by a rerun with workers
    assert cli_run(["study", "--config", str(tmp_path / "parallel.yaml"), "--jobs", "2"]) == 0
    assert capsys.readouterr().err.count("done earlier") == 3


def test_how_many_jobs(monkeypatch):
    assert resolve_jobs(1) == 1 and resolve_jobs(3) == 3
    monkeypatch.setenv("ODYSSEY_JOBS", "4")
    assert resolve_jobs("auto") == 4
    monkeypatch.setenv("ODYSSEY_JOBS", "many")
    with pytest.raises(ConfigError, match="ODYSSEY_JOBS"):
        resolve_jobs("auto")
    monkeypatch.delenv("ODYSSEY_JOBS")
    monkeypatch.setattr("odyssey.machine.cpu_count", lambda: 1)
    assert resolve_jobs("auto", "cpu") == 1
    monkeypatch.setattr("odyssey.machine.cpu_count", lambda: 8)
    assert resolve_jobs("auto", "cpu") == 2 and resolve_jobs("auto", "cuda") == 1


def test_executor_from_config(tmp_path):
    cfg = resolve(StudyConfig, None, ["jobs=2", f"out={tmp_path}"])
    assert isinstance(make_executor(cfg), ProcessExecutor)
    assert isinstance(make_executor(resolve(StudyConfig, None, ["jobs=1"])), LocalExecutor)
    with pytest.raises(ConfigError, match="jobs"):
        resolve(StudyConfig, None, ["jobs=0"])
