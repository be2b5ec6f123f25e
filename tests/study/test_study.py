"""`odyssey study` end to end on tiny models: outputs, store, resume, report rebuild."""

import json

import pytest

from odyssey.cli import run as cli_run
from odyssey.config import resolve
from odyssey.results_store import ResultsStore
from odyssey.study.config import StudyConfig
from odyssey.study.runner import run_study

RESULT_KEYS = {"name", "ppl_before", "ppl_after", "bpb_before", "bpb_after", "general_ppl_before",
               "general_ppl_after", "train_tokens", "seconds"}


@pytest.fixture
def study_cfg(tmp_path, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir):
    def make(**over):
        items = [f"out={tmp_path / 'study'}", f"model={tiny_llama_dir}", f"general={general_corpus_dir}",
                 "recipe.train.block_size=32", "recipe.train.batch_size=4", "recipe.optim.lr=3e-3",
                 "recipe.eval_every=2", "test_eval.batch_size=8", "probes.run=[]"]
        cfg = resolve(StudyConfig, overrides=items + [f"{k}={v}" for k, v in over.items()])
        cfg.domains = [{"name": "alpha", "path": str(tiny_corpus_dir), "kind": "register"},
                       {"name": "beta", "path": str(tiny_corpus_dir), "kind": "wikipedia-topic"}]
        return StudyConfig.model_validate(cfg.model_dump())
    return make


def test_study_writes_results_report_and_store(study_cfg, tmp_path):
    results = run_study(study_cfg(), progress=False)
    out = tmp_path / "study"
    saved = json.loads((out / "results.json").read_text())
    assert [d["name"] for d in saved["domains"]] == ["alpha", "beta"]
    for d in saved["domains"]:
        assert d.keys() >= RESULT_KEYS
        assert d["delta_ppl_pct"] == pytest.approx(100 * (d["ppl_after"] / d["ppl_before"] - 1))
        assert d["ppl_after"] < d["ppl_before"]  # lr 3e-3 on its own domain must help a random model
        assert (out / "runs" / d["name"] / "evals" / "adapted-test" / "tokens.safetensors").is_file()
    # The same base evaluated on the same test split gives the same figure for both domains (up to
    # float summation order: CPU kernels may split the work across threads differently per call).
    assert saved["domains"][0]["ppl_before"] == pytest.approx(saved["domains"][1]["ppl_before"], rel=1e-7)
    html = (out / "report.html").read_text()
    assert "alpha" in html and "<svg" in html
    assert results["base"]["general_ppl"] == saved["domains"][0]["general_ppl_before"]


def test_killed_study_resumes_and_skips_finished_runs(study_cfg, tmp_path, monkeypatch):
    import odyssey.adapt.loop as loop

    calls = []
    real_adapt = loop.adapt

    def adapt_then_die(cfg, **kw):
        calls.append(cfg.out)
        if cfg.out.endswith("beta"):
            raise KeyboardInterrupt  # the study is killed while adapting its second domain
        return real_adapt(cfg, **kw)

    monkeypatch.setattr(loop, "adapt", adapt_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_study(study_cfg(), progress=False)
    with ResultsStore(tmp_path / "study" / "results.sqlite") as store:
        assert [r["name"] for r in store.runs("done")] == ["alpha"]
    monkeypatch.setattr(loop, "adapt", real_adapt)
    calls.clear()
    monkeypatch.setattr(loop, "adapt", lambda cfg, **kw: (calls.append(cfg.out), real_adapt(cfg, **kw))[1])
    results = run_study(study_cfg(), progress=False)
    assert [c.rsplit("/", 1)[-1] for c in calls] == ["beta"]  # alpha was not redone
    assert len(results["domains"]) == 2


def test_report_command_rebuilds_from_the_store(study_cfg, tmp_path, capsys):
    run_study(study_cfg(only=["alpha"]), progress=False)
    out = tmp_path / "study"
    (out / "report.html").unlink()
    (out / "results.json").unlink()
    assert cli_run(["report", str(out)]) == 0
    assert (out / "report.html").is_file() and json.loads((out / "results.json").read_text())["domains"]
    assert cli_run(["report", str(tmp_path / "nothing")]) == 2
    assert "results.sqlite" in capsys.readouterr().err


def test_unknown_domain_in_only_is_a_clear_error(study_cfg):
    from odyssey.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown domain"):
        run_study(study_cfg(only=["gamma"]), progress=False)


def test_mitigation_variants_probes_and_model_cards(study_cfg, tmp_path, monkeypatch):
    from odyssey.config import load_yaml

    cfg = study_cfg(only="[alpha]")
    cfg.mitigations = ["l2sp", "lr=1e-3"]
    cfg.probes.run = ["bias", "memorization"]
    cfg.probes.bias = cfg.probes.bias.model_copy(update={"categories": ["gender"], "n_boot": 100})
    cfg.probes.memorization = cfg.probes.memorization.model_copy(
        update={"sequences": 4, "prefix_tokens": 8, "suffix_tokens": 8, "membership_documents": 4, "n_boot": 100})
    cfg = StudyConfig.model_validate(cfg.model_dump())
    results = run_study(cfg, progress=False)
    out = tmp_path / "study"
    assert [d["name"] for d in results["domains"]] == ["alpha"]
    assert sorted(m["variant"] for m in results["mitigations"]) == ["l2sp", "lr=0.001"]
    assert all(m["domain"] == "alpha" for m in results["mitigations"])
    assert load_yaml(out / "runs" / "alpha@l2sp" / "config.yaml")["mitigation"]["methods"] == ["l2sp"]
    assert load_yaml(out / "runs" / "alpha@lr=0.001" / "config.yaml")["optim"]["lr"] == pytest.approx(1e-3)
    assert load_yaml(out / "runs" / "alpha" / "config.yaml")["mitigation"]["methods"] == []
    # The base is evaluated once per domain, whatever the number of variants.
    base = [m["ppl_before"] for m in results["mitigations"]] + [results["domains"][0]["ppl_before"]]
    assert len(set(base)) == 1
    plain = results["domains"][0]
    assert set(plain["probes"]) >= {"bias", "memorization", "summary"}
    assert (out / "runs" / "alpha" / "probes" / "bias.json").is_file()
    assert "probes" not in results["mitigations"][0]  # only the plain run is probed
    for run in ("alpha", "alpha@l2sp", "alpha@lr=0.001"):
        assert (out / "runs" / run / "model" / "README.md").is_file()
    html = (out / "report.html").read_text()
    assert 'id="mitigations"' in html and 'id="probes"' in html

    import odyssey.adapt.loop as loop

    monkeypatch.setattr(loop, "adapt", lambda *a, **k: pytest.fail("a finished run was redone"))
    again = run_study(cfg, progress=False)
    assert len(again["mitigations"]) == 2
