"""The study report's analysis sections, as plain data computed from a study's results.

What the plain results table cannot show: why each domain's loss changed (the compact
form of a token attribution), what each run cost in energy, how the mitigation variants
compare, and what the probes found. The study runner gathers what these need from its
run directories (:mod:`odyssey.study.analyses`); :mod:`odyssey.report.html` renders them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from odyssey.report.plots import finite

TOP_TOKENS = 5  # token types listed per direction in the report


def compact_attribution(summary: Mapping) -> dict:
    """What the report shows of one attribution: categories by share of the change, how
    concentrated it is, and the token types that moved most in each direction."""
    cats = [{"category": c, **v} for c, v in summary["by_category"].items() if v["tokens"]]
    cats.sort(key=lambda c: -abs(c["delta"]))
    tokens = max(1, summary["tokens"])
    return {
        "tokens": summary["tokens"], "types": summary["types"],
        "total_delta": summary["total_delta"], "mean_delta_bits": summary["total_delta"] / tokens / math.log(2),
        "half_mass_types": summary["half_mass_types"], "half_mass_share": summary["half_mass_share"],
        "categories": cats,
        "worse": summary["top_types"]["worse"][:TOP_TOKENS],
        "better": summary["top_types"]["better"][:TOP_TOKENS],
        "domain_terms": summary.get("domain_terms", [])[:12],
    }


# -- energy ----------------------------------------------------------------------------------
def energy_section(results: Mapping) -> dict:
    """Energy per run and per percentage point of in-domain perplexity gained."""
    rows, methods = [], set()
    for d in results.get("domains", []):
        kwh = d.get("energy_kwh")
        if kwh is None:
            continue
        delta = d.get("delta_ppl_pct")
        gained = -delta if isinstance(delta, (int, float)) and delta < 0 else None
        methods.update((d.get("energy_method") or "estimated").split("+"))
        rows.append({"name": d["name"], "kind": d.get("kind"), "wh": 1000.0 * kwh, "method": d.get("energy_method"),
                     "points_gained": gained, "wh_per_point": 1000.0 * kwh / gained if gained else None,
                     "train_tokens": d.get("train_tokens")})
    total = sum(r["wh"] for r in rows)
    return {"rows": rows, "total_wh": total if rows else None, "methods": sorted(methods),
            "estimated": "estimated" in methods}



# -- mitigations --------------------------------------------------------------------------------
FORGETTING_GOAL_PCT = 1.0  # "general perplexity degrades by at most 1%"


def pareto_front(points: list[Mapping]) -> set[str]:
    """Names of the points no other point beats on both in-domain change and forgetting
    (lower is better on both)."""
    front = set()
    for p in points:
        dominated = any(q is not p and q["delta_ppl_pct"] <= p["delta_ppl_pct"]
                        and q["forgetting_pct"] <= p["forgetting_pct"]
                        and (q["delta_ppl_pct"], q["forgetting_pct"]) != (p["delta_ppl_pct"], p["forgetting_pct"])
                        for q in points)
        if not dominated:
            front.add(p["variant"])
    return front


def best_variant(points: list[Mapping], goal: float = FORGETTING_GOAL_PCT) -> tuple[str | None, str]:
    """The variant to recommend for one domain, and why.

    Among the variants that leave in-domain perplexity no worse than the base, take the
    best in-domain change among those that forget at most ``goal`` percent; when none
    does, the one that forgets least. None when every variant makes the domain worse."""
    safe = [p for p in points if p["delta_ppl_pct"] <= 0]
    if not safe:
        return None, "every variant made in-domain perplexity worse than the base"
    within = [p for p in safe if p["forgetting_pct"] <= goal]
    if within:
        best = min(within, key=lambda p: p["delta_ppl_pct"])
        return best["variant"], (f"best in-domain change ({best['delta_ppl_pct']:+.1f}%) among the variants that "
                                 f"forget at most {goal:g}% ({best['forgetting_pct']:+.1f}%)")
    best = min(safe, key=lambda p: p["forgetting_pct"])
    return best["variant"], (f"no variant kept forgetting within {goal:g}%; this one forgets least "
                             f"({best['forgetting_pct']:+.1f}%) while in-domain perplexity still falls "
                             f"({best['delta_ppl_pct']:+.1f}%)")


def mitigation_section(results: Mapping) -> dict | None:
    """Per domain: plain adaptation and every mitigation variant, with costs, the Pareto
    front and the recommended variant; None when the study ran no mitigations."""
    variants = results.get("mitigations") or []
    if not variants:
        return None
    plain = {d["name"]: d for d in results.get("domains", [])}
    domains = []
    for name in dict.fromkeys(v["domain"] for v in variants):
        rows = ([{**plain[name], "variant": "none"}] if name in plain else []) + \
               [v for v in variants if v["domain"] == name]
        rows = [r for r in rows if finite(r.get("delta_ppl_pct")) and finite(r.get("forgetting_pct"))]
        if not rows:
            continue
        front = pareto_front(rows)
        best, why = best_variant(rows)
        base_degrades = name in plain and plain[name]["delta_ppl_pct"] > 0
        domains.append({"name": name, "kind": rows[0].get("kind"), "best": best, "why": why,
                        "plain_degrades": base_degrades,
                        "rows": [{"variant": r["variant"], "delta_ppl_pct": r["delta_ppl_pct"],
                                  "forgetting_pct": r["forgetting_pct"], "train_tokens": r.get("train_tokens"),
                                  "train_seconds": r.get("train_seconds"), "seconds": r.get("seconds"),
                                  "energy_wh": None if r.get("energy_kwh") is None else 1000 * r["energy_kwh"],
                                  "energy_method": r.get("energy_method"), "pareto": r["variant"] in front,
                                  "best": r["variant"] == best} for r in rows]})
    return {"domains": domains, "goal_pct": FORGETTING_GOAL_PCT} if domains else None



# -- probes -----------------------------------------------------------------------------------
def probe_section(results: Mapping) -> dict | None:
    """Per domain, the bias and memorization headlines its record carries
    (:func:`odyssey.analysis.probes.summary.probe_headline`); None when no domain was probed."""
    rows = [{"name": d["name"], "kind": d.get("kind"), **d["probes"]}
            for d in results.get("domains", []) if d.get("probes")]
    if not rows:
        return None
    def mem(r):
        return r.get("memorization") or {}

    moved_bias = [r["name"] for r in rows if (r.get("bias") or {}).get("significant")]
    moved_categories = [r["name"] for r in rows if (r.get("bias") or {}).get("moved")]
    moved_mem = [r["name"] for r in rows if mem(r).get("specific_significant") or mem(r).get("exact_significant")]
    widened = [r["name"] for r in rows if mem(r).get("membership_significant") and (mem(r).get("membership_shift") or 0) > 0]
    return {"rows": rows, "moved_bias": moved_bias, "moved_categories": moved_categories,
            "moved_memorization": moved_mem, "membership_widened": widened}


# -- forgetting on tasks -------------------------------------------------------------------------
def task_section(results: Mapping) -> dict | None:
    """Every run that measured ``forgetting.tasks`` (each rate and variant), with each task's
    accuracy before and after adapting (in %) and the mean change in points; None when no
    run did. A group's aggregate row is left out: its tasks are listed themselves."""
    seen, runs = set(), []
    for r in [*results.get("domains", []), *results.get("cells", []), *results.get("mitigations", [])]:
        name = r.get("run", r.get("name"))
        if r.get("tasks_after") and name not in seen:
            seen.add(name)
            runs.append(r)
    if not runs:
        return None
    order = {d.get("name"): i for i, d in enumerate(results.get("domains", []))}
    runs.sort(key=lambda r: order.get(r.get("domain", r.get("name")), len(order)))  # a domain's runs together
    tasks = list(dict.fromkeys(t for r in runs for t, row in r["tasks_after"].items() if not row.get("group")))
    n = {t: next((r["tasks_before"][t].get("n") for r in runs if t in (r.get("tasks_before") or {})), None)
         for t in tasks}  # documents scored per task
    rows = []
    for r in runs:
        change = r.get("task_acc_change")
        rows.append({"run": r.get("run", r.get("name")), "kind": r.get("kind"),
                     "cells": [_task_cell((r.get("tasks_before") or {}).get(t), r["tasks_after"].get(t)) for t in tasks],
                     "mean_before": r.get("task_acc_before"), "mean_after": r.get("task_acc_after"),
                     "change": change, "worse": finite(change) and change < 0,
                     "better": finite(change) and change > 0})
    return {"tasks": [{"name": t, "n": n.get(t)} for t in tasks], "rows": rows,
            "fell": [r["run"] for r in rows if r["worse"]], "rose": [r["run"] for r in rows if r["better"]]}


def _task_cell(before: Mapping | None, after: Mapping | None) -> dict | None:
    """Accuracy before and after (%), with the larger of the two standard errors."""
    if not before or not after or not finite(before.get("acc")) or not finite(after.get("acc")):
        return None
    errors = [e for e in (before.get("acc_stderr"), after.get("acc_stderr")) if finite(e)]
    return {"before": 100.0 * before["acc"], "after": 100.0 * after["acc"],
            "change": 100.0 * (after["acc"] - before["acc"]), "stderr": 100.0 * max(errors) if errors else None}
