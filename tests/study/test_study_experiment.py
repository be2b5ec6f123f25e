"""The study as a controlled experiment: the learning-rate axis, runs keyed by their
config's fingerprint, refusing to reuse a changed run, redo/overwrite, resuming a killed
study mid-run, the phase diagram's data, and the plan of runs."""

import json

import pytest
import torch
from safetensors.torch import load_file

from odyssey.config import load_yaml, resolve
from odyssey.errors import ConfigError
from odyssey.report.experiment import degradation_section, findings_section, phase_section
from odyssey.results_store import ResultsStore
from odyssey.study.config import StudyConfig
from odyssey.study.plan import plan_runs
from odyssey.study.runner import run_study

RATES = "[3e-3,1e-2]"


@pytest.fixture
def make_cfg(tmp_path, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir):
    def make(*extra: str, out: str = "study", **over):
        items = [f"out={tmp_path / out}", f"model={tiny_llama_dir}", f"general={general_corpus_dir}",
                 "recipe.train.block_size=32", "recipe.train.batch_size=4", f"recipe.optim.lr={RATES}",
                 "recipe.eval_every=0", "test_eval.batch_size=8", "probes.run=[]", "base_final_lr=1e-3", *extra]
        cfg = resolve(StudyConfig, overrides=items + [f"{k}={v}" for k, v in over.items()])
        cfg.domains = [{"name": "alpha", "path": str(tiny_corpus_dir), "kind": "register"},
                       {"name": "beta", "path": str(tiny_corpus_dir), "kind": "wikipedia-topic"}]
        return StudyConfig.model_validate(cfg.model_dump())
    return make


def test_plan_is_the_factorial_of_domains_and_rates_with_the_reference_first():
    runs = plan_runs(["a", "b"], [2e-4, 2e-3], ["replay"], lr_sweep_domains=["a"])
    assert [(r.name, r.lr, r.reference, r.variant) for r in runs] == [
        ("a", 2e-4, True, None), ("a@lr=0.002", 2e-3, False, None), ("a@replay", 2e-4, False, "replay"),
        ("b", 2e-4, True, None), ("b@replay", 2e-4, False, "replay")]
    assert [r.position for r in runs] == list(range(5))
    with pytest.raises(ConfigError, match="already a rate"):
        plan_runs(["a"], [2e-4, 1e-3], ["lr=1e-3"])
    with pytest.raises(ConfigError, match="unknown domain"):
        plan_runs(["a"], [2e-4], [], lr_sweep_domains=["zz"])


def test_lr_list_parses_from_the_command_line_and_is_checked():
    cfg = resolve(StudyConfig, values={"recipe.optim.lr": "2e-4,5e-4,1e-3"})
    assert cfg.recipe.lrs == [2e-4, 5e-4, 1e-3]
    assert resolve(StudyConfig).recipe.lrs == [2e-4, 2e-3]  # the default study's two levels
    assert resolve(StudyConfig, overrides=["recipe.optim.lr=1e-4"]).recipe.lrs == [1e-4]
    for bad in ("0,1e-3", "1e-3,1e-3", "x"):
        with pytest.raises(ConfigError):
            resolve(StudyConfig, values={"recipe.optim.lr": bad})


def test_learning_rate_axis_runs_keys_and_phase_diagram(make_cfg, tmp_path):
    results = run_study(make_cfg(), progress=False)
    out = tmp_path / "study"
    cells = results["cells"]
    # one run per domain and rate, named and stored by it, at that rate
    assert sorted((c["domain"], c["lr"]) for c in cells) == [("alpha", 3e-3), ("alpha", 1e-2),
                                                            ("beta", 3e-3), ("beta", 1e-2)]
    assert {c["run"] for c in cells} == {"alpha", "alpha@lr=0.01", "beta", "beta@lr=0.01"}
    for c in cells:
        assert load_yaml(out / "runs" / c["run"] / "config.yaml")["optim"]["lr"] == pytest.approx(c["lr"])
        assert c["lr_ratio"] == pytest.approx(c["lr"] / 1e-3)
        assert len(c["config_sha256"]) == 64
    # the rate is part of the fingerprint (both domains read the same corpus here: same data, same key)
    assert len({c["config_sha256"] for c in cells}) == 2
    # the main table holds the reference rate only
    assert [(d["name"], d["lr"]) for d in results["domains"]] == [("alpha", 3e-3), ("beta", 3e-3)]
    with ResultsStore(out / "results.sqlite") as store:
        assert sorted(r["run"] for r in store.runs("done")) == sorted(c["run"] for c in cells)
    # the design is recorded before the results
    design = results["design"]
    assert design["factors"]["lr"] == [3e-3, 1e-2] and design["runs"] == 4
    assert [d["name"] for d in design["factors"]["domain"]] == ["alpha", "beta"]
    # the phase diagram's cells are exactly the runs' results
    phase = phase_section(results)
    assert phase["rates"] == [3e-3, 1e-2]
    for row in phase["rows"]:
        for cell in row["cells"]:
            run = next(c for c in cells if c["run"] == cell["run"])
            assert (cell["delta_ppl_pct"], cell["forgetting_pct"], cell["lr"]) == (
                run["delta_ppl_pct"], run["forgetting_pct"], run["lr"])
        improving = [c["lr"] for c in row["cells"] if c["delta_ppl_pct"] < 0]
        assert row["largest_improving_lr"] == (max(improving) if improving else None)
    html = (out / "report.html").read_text()
    assert 'id="experiment"' in html and "Phase diagram" in html


def test_a_changed_config_is_refused_then_redone_on_request(make_cfg, monkeypatch):
    import odyssey.adapt.loop as loop

    first = run_study(make_cfg(), progress=False)
    changed = make_cfg("recipe.optim.weight_decay=0.1")
    with pytest.raises(ConfigError, match=r"another config: .*weight_decay"):
        run_study(changed, progress=False)
    calls = []
    real = loop.adapt
    monkeypatch.setattr(loop, "adapt", lambda cfg, **kw: (calls.append(cfg.out), real(cfg, **kw))[1])
    again = run_study(changed, progress=False, rerun_changed=True)
    assert len(calls) == 4  # every run's config changed
    assert {c["config_sha256"] for c in again["cells"]}.isdisjoint({c["config_sha256"] for c in first["cells"]})
    assert all(c["run_config"]["adapt"]["optim"]["weight_decay"] == 0.1 for c in again["cells"])
    calls.clear()
    run_study(changed, progress=False, redo=["beta"])
    assert sorted(c.rsplit("/", 1)[-1] for c in calls) == ["beta", "beta@lr=0.01"]
    calls.clear()
    run_study(changed, progress=False)
    assert calls == []  # the same config: nothing is redone
    with pytest.raises(ConfigError, match="unknown domain"):
        run_study(changed, progress=False, redo=["gamma"])


def test_overwrite_starts_over_and_keeps_foreign_files(make_cfg, tmp_path):
    run_study(make_cfg(only="[alpha]"), progress=False)
    out = tmp_path / "study"
    (out / "notes.txt").write_text("mine")
    (out / "runs" / "alpha" / "marker").write_text("old")
    run_study(make_cfg("recipe.optim.weight_decay=0.1", only="[alpha]"), progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "runs" / "alpha" / "marker").exists()


def test_a_rejected_config_leaves_no_store(make_cfg, tmp_path):
    with pytest.raises(ConfigError):
        run_study(make_cfg(only="[alpha]", mitigations="[lr=3e-3]"), progress=False)
    assert not (tmp_path / "study" / "results.sqlite").exists()


def test_a_study_killed_mid_run_resumes_to_identical_weights(make_cfg, tmp_path, monkeypatch):
    import odyssey.adapt.loop as loop

    extra = ("recipe.save_every=2", "recipe.optim.lr=3e-3")
    run_study(make_cfg(*extra, only="[alpha]", out="whole"), progress=False)
    real_step = loop._train_step

    def die_at_5(run, step):
        if step == 5:
            raise KeyboardInterrupt  # killed after the checkpoint of step 4
        return real_step(run, step)

    monkeypatch.setattr(loop, "_train_step", die_at_5)
    with pytest.raises(KeyboardInterrupt):
        run_study(make_cfg(*extra, only="[alpha]", out="killed"), progress=False)
    assert (tmp_path / "killed" / "runs" / "alpha" / "checkpoint").is_dir()
    monkeypatch.setattr(loop, "_train_step", real_step)
    run_study(make_cfg(*extra, only="[alpha]", out="killed"), progress=False)
    metrics = [json.loads(x) for x in (tmp_path / "killed" / "runs" / "alpha" / "metrics.jsonl").read_text().split("\n") if x]
    # resumed from the checkpoint of step 4: one step-0 evaluation per split, not a restart
    assert sorted(m["split"] for m in metrics if m["kind"] == "eval" and m["step"] == 0) == ["general", "valid"]
    a = load_file(tmp_path / "whole" / "runs" / "alpha" / "model" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "runs" / "alpha" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_findings_follow_their_written_criteria():
    def cell(domain, kind, lr, delta, bpb):
        return {"name": domain, "run": domain, "domain": domain, "kind": kind, "lr": lr, "delta_ppl_pct": delta,
                "bpb_before": bpb, "forgetting_pct": 1.0}

    cells = [cell(f"near{i}", "wikipedia-topic", 1e-3, 2.0 - i, 1.0 + i / 10) for i in range(3)] + \
            [cell(f"far{i}", "register", 1e-3, -30.0 - 10 * i, 3.0 + i) for i in range(3)]
    results = {"cells": cells}
    att = {"near0": {"categories": [{"category": "newline", "delta": 3.0, "tokens": 10, "share": 0.75},
                                    {"category": "content", "delta": 1.0, "tokens": 90, "share": 0.25}],
                     "total_delta": 4.0, "half_mass_types": 1, "half_mass_share": 0.01, "worse": []},
           "near1": {"categories": [{"category": "content", "delta": 2.0, "tokens": 50, "share": 1.0},
                                    {"category": "function", "delta": 0.0, "tokens": 50, "share": 0.0}],
                     "total_delta": 2.0, "half_mass_types": 3, "half_mass_share": 0.2, "worse": []}}
    deg = degradation_section(results, att)
    assert [r["run"] for r in deg["rows"]] == ["near0", "near1"]
    assert deg["rows"][0]["uninformative_share"] == pytest.approx(0.75)
    assert deg["rows"][0]["uninformative_tokens"] == pytest.approx(0.10)
    f = findings_section(results, deg)
    assert f["degradation"]["per_rate"][0]["near_worse"] == ["near0", "near1"]
    assert f["degradation"]["verdict"] == "reproduced"
    # the nearer (lower bits per byte), the larger the change: rho = -1
    assert f["similarity"]["per_rate"][0]["rho"] == pytest.approx(-1.0)
    assert f["similarity"]["verdict"] == "reproduced"
    assert f["tokens"]["carried"] == 1 and f["tokens"]["worse_cells"] == 2
    assert f["tokens"]["verdict"] == "partly"


def test_a_second_writer_of_a_study_is_refused_naming_the_holder(make_cfg, tmp_path):
    import subprocess
    import sys
    import textwrap

    from odyssey.errors import InUseError

    hold = textwrap.dedent("""
        import sys
        from odyssey.runlock import run_lock
        with run_lock(sys.argv[1], what="study"):
            print("held", flush=True)
            sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "study")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(InUseError, match=f"held by pid {p.pid}"):
            run_study(make_cfg(only="[alpha]"), progress=False)
        assert not (tmp_path / "study" / "results.sqlite").exists()  # nothing was written
    finally:
        p.stdin.close()
        p.wait(timeout=30)
