"""`odyssey study forgetting.tasks=...`: lm-evaluation-harness accuracy of the base (once per
study) and of every adapted model, checked against task_accuracy called directly on the
saved models; the fingerprint of a study without tasks is left as it was; a missing
harness is refused before any run."""

import importlib.util
import io
import json

import pytest
from rich.console import Console

from odyssey.config import resolve
from odyssey.errors import ConfigError
from odyssey.study.config import StudyConfig
from odyssey.study.runner import Study, Targets, _sha, run_study

LIMIT = 8  # documents per task: a few seconds on a tiny model


@pytest.fixture
def study_cfg(tmp_path, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir):
    def make(*over: str) -> StudyConfig:
        items = [f"out={tmp_path / 'study'}", f"model={tiny_llama_dir}", f"general={general_corpus_dir}",
                 "recipe.train.block_size=32", "recipe.train.batch_size=4", "recipe.optim.lr=[3e-3,1e-3]",
                 "recipe.eval_every=0", "recipe.save_every=0", "test_eval.batch_size=8", "probes.run=[]",
                 "only=[alpha]"]
        cfg = resolve(StudyConfig, overrides=items + list(over))
        cfg.domains = [{"name": "alpha", "path": str(tiny_corpus_dir), "kind": "register"}]
        return StudyConfig.model_validate(cfg.model_dump())
    return make


def _direct(model_dir, corpus, tmp_path):
    """The accuracies computed here, without the study: load the saved model, call the harness."""
    from odyssey.evaluate.harness import task_accuracy
    from odyssey.models import load_model, load_tokenizer

    return task_accuracy(load_model(model_dir), load_tokenizer(model_dir), ["odyssey-general"], limit=LIMIT,
                         corpus=corpus, work_dir=tmp_path)


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for task, row in want.items():
        assert got[task]["n"] == row["n"] == LIMIT
        for metric in ("acc", "acc_stderr"):
            assert got[task][metric] == pytest.approx(row[metric], abs=1e-12), (task, metric)


def test_study_records_task_accuracy_before_and_after(study_cfg, tmp_path, tiny_llama_dir, general_corpus_dir,
                                                      monkeypatch):
    pytest.importorskip("lm_eval")
    import odyssey.study.runner as runner
    from odyssey.cli import study as cli_study

    measured = []
    real = runner.measure_tasks
    monkeypatch.setattr(runner, "measure_tasks", lambda cfg, model, *a: (measured.append(model), real(cfg, model, *a))[1])
    cfg = study_cfg("forgetting.tasks=odyssey-general", f"forgetting.limit={LIMIT}", "forgetting.batch_size=4")
    results = run_study(cfg, progress=False)
    out = tmp_path / "study"
    runs = {r["run"]: r for r in results["cells"]}
    assert sorted(runs) == ["alpha", "alpha@lr=0.001"]  # the rate variant is measured too
    # the base once (the store serves it to both runs), each adapted model once
    assert measured.count(str(tiny_llama_dir)) == 1 and len(measured) == 3

    base = _direct(tiny_llama_dir, general_corpus_dir, tmp_path / "direct-base")
    assert results["base"]["tasks"] == runs["alpha"]["tasks_before"]
    for name, rec in runs.items():
        _same(rec["tasks_before"], base)
        after = _direct(out / "runs" / name / "model", general_corpus_dir, tmp_path / f"direct-{name}")
        _same(rec["tasks_after"], after)
        changes = [100 * (after[t]["acc"] - base[t]["acc"]) for t in base]
        assert rec["task_acc_change"] == pytest.approx(sum(changes) / len(changes))
        assert rec["task_acc_after"] - rec["task_acc_before"] == pytest.approx(rec["task_acc_change"])
        assert rec["run_config"]["forgetting"] == {"tasks": ["odyssey-general"], "limit": LIMIT}
        saved = json.loads((out / "runs" / name / "tasks.json").read_text())
        assert saved["task_acc_change"] == pytest.approx(rec["task_acc_change"])
        card = (out / "runs" / name / "model" / "README.md").read_text()
        assert "## Downstream tasks" in card and "odyssey-general-cloze" in card
        assert "accuracy (%) after adaptation" in card  # in the Hub's model-index too
        assert f"{rec['task_acc_change']:+.1f} points" in card
        # the energy of the task evaluation is part of the run's
        assert (out / "runs" / name / "evals" / "adapted-tasks" / "energy.csv").is_file()

    html = (out / "report.html").read_text()
    assert 'id="tasks"' in html and "odyssey-general-continuation" in html and "alpha@lr=0.001" in html

    buf = io.StringIO()
    monkeypatch.setattr(cli_study, "console", Console(file=buf, width=220, markup=False))
    cli_study.render_results(results)
    assert "task change" in buf.getvalue() and f"{runs['alpha']['task_acc_change']:+.1f} pts" in buf.getvalue()

    measured.clear()  # everything is stored: a second study measures nothing again
    again = run_study(cfg, progress=False)
    assert measured == [] and again["cells"][0]["tasks_after"] == results["cells"][0]["tasks_after"]


def test_fingerprint_has_forgetting_only_when_tasks_are_set(study_cfg, tmp_path, tiny_llama_dir, general_corpus_dir,
                                                            tiny_corpus_dir):
    from odyssey.study.config import DomainSpec
    from odyssey.study.plan import plan_runs

    targets = Targets(str(tiny_llama_dir), str(general_corpus_dir),
                      [DomainSpec(name="alpha", path=str(tiny_corpus_dir))])

    def fingerprint(cfg):
        study = Study(cfg, progress=False, targets=targets)
        planned = plan_runs(["alpha"], cfg.recipe.lrs, [], None)[0]
        return study.run_fingerprint(study.adapt_config(targets, targets.domains[0], planned), planned,
                                     targets.domains[0])

    plain = fingerprint(study_cfg())
    assert "forgetting" not in plain  # studies without tasks keep the fingerprints of their runs
    with_tasks = fingerprint(study_cfg("forgetting.tasks=odyssey-general", "forgetting.limit=5"))
    assert with_tasks.pop("forgetting") == {"tasks": ["odyssey-general"], "limit": 5}
    assert _sha(with_tasks) == _sha(plain)  # nothing else moved
    # the batch size decides how fast, not what: it does not change the fingerprint
    faster = fingerprint(study_cfg("forgetting.tasks=odyssey-general", "forgetting.limit=5",
                                   "forgetting.batch_size=32"))
    assert faster["forgetting"] == {"tasks": ["odyssey-general"], "limit": 5}


def test_tasks_without_the_harness_are_refused_before_any_run(study_cfg, tmp_path, monkeypatch):
    import odyssey.adapt.loop as loop

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a))
    monkeypatch.setattr(loop, "adapt", lambda *a, **kw: pytest.fail("adapted although the study must refuse"))
    with pytest.raises(ConfigError, match="needs lm-evaluation-harness") as err:
        run_study(study_cfg("forgetting.tasks=odyssey-general"), progress=False)
    assert "pip install" in err.value.hint and "\n" not in str(err.value)
    assert not (tmp_path / "study" / "results.sqlite").exists()


def test_tasks_setting_accepts_a_comma_separated_list():
    cfg = resolve(StudyConfig, overrides=["forgetting.tasks=odyssey-general, lambada_openai,odyssey-general"])
    assert cfg.forgetting.tasks == ["odyssey-general", "lambada_openai"]
    assert StudyConfig().forgetting.tasks == []  # off by default
