"""The report's analysis sections: energy per point gained, attribution, predictor, escaping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from odyssey.report import render_report
from odyssey.report.html import visible_token
from odyssey.report.sections import compact_attribution, energy_section

EVIL = "<script>alert(1)</script>"


def test_energy_per_point_gained_is_energy_over_the_fall_in_perplexity():
    results = {"domains": [
        {"name": "a", "energy_kwh": 0.002, "energy_method": "estimated", "delta_ppl_pct": -8.0},
        {"name": "b", "energy_kwh": 0.001, "energy_method": "rapl", "delta_ppl_pct": 3.0},
        {"name": "c", "delta_ppl_pct": -1.0},  # no energy recorded: left out
    ]}
    sec = energy_section(results)
    a, b = sec["rows"]
    assert a["wh"] == pytest.approx(2.0) and a["wh_per_point"] == pytest.approx(2.0 / 8.0)
    assert b["points_gained"] is None and b["wh_per_point"] is None  # it got worse: no gain to divide by
    assert sec["total_wh"] == pytest.approx(3.0)
    assert sec["methods"] == ["estimated", "rapl"] and sec["estimated"]


def _summary():
    cats = {"newline": {"delta": -6.0, "share": 0.6, "abs_share": 0.5, "tokens": 3, "mean_delta": -2.0},
            "content": {"delta": -5.0, "share": 0.5, "abs_share": 0.4167, "tokens": 5, "mean_delta": -1.0},
            "digits": {"delta": 1.0, "share": -0.1, "abs_share": 0.0833, "tokens": 1, "mean_delta": 1.0},
            "other": {"delta": 0.0, "share": 0.0, "abs_share": 0.0, "tokens": 0, "mean_delta": None}}
    worse = [{"token": EVIL, "delta": 1.0, "count": 1, "category": "digits"}]
    better = [{"token": "\n", "delta": -6.0, "count": 3, "category": "newline"}]
    return {"tokens": 9, "types": 4, "total_delta": -10.0, "half_mass_types": 1, "half_mass_share": 0.25,
            "by_category": cats, "top_types": {"worse": worse, "better": better}, "domain_terms": ["x"]}


def test_compact_attribution_orders_categories_by_size_and_converts_to_bits():
    c = compact_attribution(_summary())
    assert [x["category"] for x in c["categories"]] == ["newline", "content", "digits"]  # empty "other" dropped
    assert c["mean_delta_bits"] == pytest.approx(-10.0 / 9 / math.log(2))


def test_sections_render_escaped_with_charts(tmp_path):
    results = {"study": {"name": "s"}, "domains": [
        {"name": "d1", "kind": "register", "ppl_before": 10.0, "ppl_after": 8.0, "delta_ppl_pct": -20.0,
         "energy_kwh": 0.001, "energy_method": "estimated"}]}
    sections = {"attribution": {"domains": {"d1": compact_attribution(_summary())}, "notes": []},
                "energy": energy_section(results)}
    html = render_report(results, {}, tmp_path / "r.html", sections=sections).read_text()
    assert EVIL not in html and "&lt;script&gt;" in html
    assert 'id="attribution"' in html and 'id="energy"' in html and 'id="similarity"' not in html
    assert html.count("<svg") >= 1  # the category chart
    assert "↵" in html  # the newline token is shown visibly


def test_visible_token_shows_whitespace_and_drops_controls():
    assert visible_token(" a\n\t") == "·a↵→"
    assert visible_token("\x00") == "∅"


def test_study_report_attribution_matches_the_token_arrays(tmp_path, tiny_llama_dir, tiny_corpus_dir,
                                                           general_corpus_dir):
    """The total change shown for a domain equals the sum of the saved per-token NLLs
    (after minus before), computed here straight from the two evaluations."""
    from odyssey.config import resolve
    from odyssey.evaluate.run import load_eval
    from odyssey.io import read_json
    from odyssey.study.config import StudyConfig
    from odyssey.study.runner import run_study

    cfg = resolve(StudyConfig, overrides=[f"out={tmp_path / 's'}", f"model={tiny_llama_dir}",
                                          f"general={general_corpus_dir}", "recipe.train.block_size=32",
                                          "recipe.train.batch_size=4", "recipe.optim.lr=3e-3"])
    cfg.domains = [{"name": "alpha", "path": str(tiny_corpus_dir), "kind": "register"}]
    run_study(StudyConfig.model_validate(cfg.model_dump()), progress=False)
    run = tmp_path / "s" / "runs" / "alpha"
    before, after = load_eval(run / "evals" / "base-test"), load_eval(run / "evals" / "adapted-test")
    expected = sum(float(np.sum(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
                   for a, b in zip(after.nll, before.nll, strict=True))
    cached = read_json(run / "attribution.json")["summary"]
    assert cached["total_delta"] == pytest.approx(expected, rel=1e-9)
    assert sum(c["delta"] for c in cached["by_category"].values()) == pytest.approx(expected, rel=1e-9)
    html = (tmp_path / "s" / "report.html").read_text()
    assert 'id="attribution"' in html and 'id="energy"' in html


def _variant(domain, variant, delta, forgetting, tokens=1000):
    return {"domain": domain, "variant": variant, "kind": "register", "delta_ppl_pct": delta,
            "forgetting_pct": forgetting, "train_tokens": tokens, "train_seconds": 10.0, "energy_kwh": 1e-4,
            "energy_method": "estimated"}


def test_pareto_front_and_recommendation():
    from odyssey.report.sections import best_variant, pareto_front

    pts = [_variant("d", "none", -10, 6), _variant("d", "replay", -8, 0.5), _variant("d", "l2sp", -9, 2),
           _variant("d", "lora", -5, 3), _variant("d", "bad", 4, 0.1)]
    # lora is beaten by replay on both axes; "bad" forgets least, so it is on the front
    assert pareto_front(pts) == {"none", "replay", "l2sp", "bad"}
    best, why = best_variant(pts)
    assert best == "replay" and "1%" in why
    # no variant within 1%: the one forgetting least among those not worse in-domain
    best, why = best_variant([_variant("d", "none", -10, 6), _variant("d", "l2sp", -3, 2)])
    assert best == "l2sp" and "no variant" in why
    assert best_variant([_variant("d", "none", 3, 6)])[0] is None


def test_mitigation_section_renders(tmp_path):
    from odyssey.report.sections import mitigation_section

    results = {"study": {"name": "s"},
               "domains": [{"name": "d", "kind": "register", "ppl_before": 10.0, "ppl_after": 9.0,
                            "delta_ppl_pct": -10.0, "forgetting_pct": 6.0, "train_tokens": 1000}],
               "mitigations": [_variant("d", "replay", -8, 0.5, 1300), _variant("d", EVIL, -2, 0.2)]}
    sec = mitigation_section(results)
    assert [r["variant"] for r in sec["domains"][0]["rows"]] == ["none", "replay", EVIL]
    html = render_report(results, {}, tmp_path / "r.html", sections={"mitigations": sec}).read_text()
    assert 'id="mitigations"' in html and EVIL not in html and "Recommended: <strong>replay</strong>" in html


def test_probe_section_sorts_domains_by_what_moved(tmp_path):
    from odyssey.report.sections import probe_section

    def rec(name, bias_sig, cats, spec_sig, gap_shift, gap_sig):
        return {"name": name, "kind": "register", "probes": {
            "bias": {"rate": 0.55, "base_rate": 0.5, "shift": 0.05, "shift_ci": [0.01, 0.09],
                     "significant": bias_sig, "moved": cats, "adjusted_moved": []},
            "memorization": {"sequences": 8, "exact": 0, "exact_base": 0, "exact_significant": False,
                             "specific": 1.0, "specific_ci": [0.1, 2.0], "specific_significant": spec_sig,
                             "membership_gap": 0.3, "membership_gap_base": 0.1, "membership_shift": gap_shift,
                             "membership_shift_ci": [0.1, 0.3], "membership_significant": gap_sig},
            "summary": [f"{EVIL} summary"]}}

    results = {"study": {"name": "s"}, "domains": [
        rec("a", True, ["gender"], False, 0.2, True), rec("b", False, [], True, -0.2, True), {"name": "c"}]}
    sec = probe_section(results)
    assert [r["name"] for r in sec["rows"]] == ["a", "b"]  # c was not probed
    assert sec["moved_bias"] == ["a"] and sec["moved_categories"] == ["a"]
    assert sec["moved_memorization"] == ["b"]
    assert sec["membership_widened"] == ["a"]  # b's gap narrowed: not a rise in memorization
    html = render_report(results, {}, tmp_path / "r.html", sections={"probes": sec}).read_text()
    assert 'id="probes"' in html and EVIL not in html


def test_task_section_lists_every_run_and_escapes_task_names(tmp_path):
    from odyssey.report.sections import task_section

    def rows(acc, evil_acc):
        return {"cont": {"acc": acc, "acc_stderr": 0.1, "n": 12}, EVIL: {"acc": evil_acc, "n": 8},
                "grp": {"acc": 0.9, "group": True}}  # a group's aggregate: not a column of its own

    def rec(run, domain, after, change):
        return {"name": domain, "run": run, "domain": domain, "kind": "register", "tasks_before": rows(0.5, 0.25),
                "tasks_after": rows(*after), "task_acc_before": 37.5, "task_acc_after": 37.5 + change,
                "task_acc_change": change}

    a, a_lr = rec("a", "a", (0.25, 0.25), -12.5), rec("a@lr=0.001", "a", (0.5, 0.5), 12.5)
    results = {"study": {"name": "s"}, "domains": [a, {"name": "b"}], "cells": [a, a_lr], "mitigations": []}
    sec = task_section(results)
    assert [r["run"] for r in sec["rows"]] == ["a", "a@lr=0.001"]  # each run once, the rate variant too
    assert [t["name"] for t in sec["tasks"]] == ["cont", EVIL] and sec["tasks"][0]["n"] == 12
    cell = sec["rows"][0]["cells"][0]
    assert (cell["before"], cell["after"], cell["change"], cell["stderr"]) == pytest.approx((50, 25, -25, 10))
    assert sec["rows"][0]["cells"][1]["stderr"] is None  # the harness gave none
    assert sec["fell"] == ["a"] and sec["rose"] == ["a@lr=0.001"]
    assert task_section({"domains": [{"name": "b"}]}) is None  # no task measured: no section
    html = render_report(results, {}, tmp_path / "r.html", sections={"tasks": sec}).read_text()
    assert 'id="tasks"' in html and EVIL not in html and "&lt;script&gt;" in html
    assert "50.0% → 25.0%" in html and f"{chr(0x2212)}12.5" in html
