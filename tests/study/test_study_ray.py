"""`odyssey study --executor ray` on a local Ray instance: the same figures as the local
executor, the same store, finished runs skipped and interrupted runs resumed."""

import json
import os

import pytest
import yaml

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'odyssey[ray]')")

from odyssey.cli import run as cli_run  # noqa: E402
from odyssey.config import resolve  # noqa: E402
from odyssey.errors import ConfigError  # noqa: E402
from odyssey.results_store import ResultsStore  # noqa: E402
from odyssey.study.config import StudyConfig  # noqa: E402
from odyssey.study.runner import run_study  # noqa: E402

FIGURES = ("ppl_before", "ppl_after", "bpb_before", "bpb_after", "general_ppl_before", "general_ppl_after",
           "general_bpb_after", "delta_ppl_pct", "forgetting_pct", "train_tokens", "train_steps")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module (starting Ray takes seconds); the executor
    uses the instance this process started instead of starting its own."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the workers' torch threads, as the suite's
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def study_yaml(path, out, model, general, corpus) -> dict:
    data = {"out": str(out), "model": str(model), "general": str(general),
            "domains": [{"name": "alpha", "path": str(corpus), "kind": "register"},
                        {"name": "beta", "path": str(corpus), "kind": "wikipedia-topic"}],
            "recipe": {"train": {"block_size": 32, "batch_size": 4}, "optim": {"lr": 3e-3}, "eval_every": 2},
            "test_eval": {"batch_size": 8}}
    path.write_text(yaml.safe_dump(data))
    return data


def figures(out) -> dict:
    saved = json.loads((out / "results.json").read_text())
    return {d["name"]: {k: d[k] for k in FIGURES} for d in saved["domains"]}


def test_ray_study_matches_local_skips_done_and_resumes(ray_session, tmp_path, tiny_llama_dir, tiny_corpus_dir,
                                                        general_corpus_dir, capsys):
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    study_yaml(tmp_path / "local.yaml", local_out, tiny_llama_dir, general_corpus_dir, tiny_corpus_dir)
    study_yaml(tmp_path / "ray.yaml", ray_out, tiny_llama_dir, general_corpus_dir, tiny_corpus_dir)
    run_study(resolve(StudyConfig, tmp_path / "local.yaml"), progress=False)
    capsys.readouterr()

    assert cli_run(["study", "--config", str(tmp_path / "ray.yaml"), "--executor", "ray"]) == 0
    err = capsys.readouterr().err
    assert "[1/2] alpha: perplexity" in err and "[2/2] beta: perplexity" in err
    want, got = figures(local_out), figures(ray_out)
    assert list(got) == ["alpha", "beta"]  # in the study's order, whatever order Ray finished in
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-6), name
    assert (ray_out / "runs" / "beta" / "evals" / "adapted-test" / "tokens.safetensors").is_file()
    with ResultsStore(ray_out / "results.sqlite") as store:  # both workers wrote into one store
        assert [r["name"] for r in store.runs("done")] == ["alpha", "beta"]
        assert len(store.metrics("alpha")) > 0
        assert any(key.startswith("beta|general:test|") for key in store.eval_keys())

    # a rerun redoes nothing: no run directory is touched
    stamp = {n: (ray_out / "runs" / n / "result.json").stat().st_mtime_ns for n in ("alpha", "beta")}
    assert cli_run(["study", "--config", str(tmp_path / "ray.yaml"), "--executor", "ray"]) == 0
    assert capsys.readouterr().err.count("done earlier") == 2
    assert stamp == {n: (ray_out / "runs" / n / "result.json").stat().st_mtime_ns for n in ("alpha", "beta")}

    # beta interrupted after its last checkpoint, before its result was recorded: the Ray
    # worker resumes the adapt run from the checkpoint (no training step is redone) and
    # ends with the same figures
    with ResultsStore(ray_out / "results.sqlite") as store:
        store.db.execute("DELETE FROM runs WHERE name = 'beta'")
        store.db.commit()
    for name in ("result.json", "model"):
        path = ray_out / "runs" / "beta" / name
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    train_rows = sum(1 for line in (ray_out / "runs" / "beta" / "metrics.jsonl").open() if '"train"' in line)
    assert cli_run(["study", "--config", str(tmp_path / "ray.yaml"), "--executor", "ray"]) == 0
    err = capsys.readouterr().err
    assert "alpha: done earlier" in err and "beta: adapting" in err
    assert figures(ray_out)["beta"] == pytest.approx(want["beta"], rel=1e-6)
    assert train_rows == sum(1 for line in (ray_out / "runs" / "beta" / "metrics.jsonl").open() if '"train"' in line)


def test_executor_settings_are_checked():
    with pytest.raises(ConfigError, match="executor"):
        resolve(StudyConfig, overrides=["executor=spark"])
    from odyssey.study.executor import make_executor

    with pytest.raises(ConfigError, match="executor is local"):
        make_executor(resolve(StudyConfig, overrides=["ray_address=auto"]))


def test_a_user_error_in_a_worker_is_one_line(ray_session, tmp_path, tiny_llama_dir, general_corpus_dir, capsys):
    study_yaml(tmp_path / "bad.yaml", tmp_path / "bad", tiny_llama_dir, general_corpus_dir, tmp_path / "missing")
    assert cli_run(["study", "--config", str(tmp_path / "bad.yaml"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err and "RayTaskError" not in err
