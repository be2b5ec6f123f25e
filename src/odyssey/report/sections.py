"""The study report's analysis sections, gathered from a study directory.

:func:`study_sections` collects what the plain results table cannot show: why each
domain's loss changed (token attribution of its test text, before against after),
how the change relates to the domain's similarity to the pretraining data, and what
each run cost in energy. Each section is plain data; :mod:`odyssey.report.html`
renders it. A section that cannot be built (a run without per-token arrays, a study
never measured for similarity) is left out with a note, never an error: the report
must always be writable from the store.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

from odyssey.errors import OdysseyError
from odyssey.io import read_json, write_json

log = logging.getLogger(__name__)

ATTRIBUTION_FILE = "attribution.json"  # cached per run: runs/<domain>/attribution.json
ATTRIBUTION_FORMAT = 1
TOP_TOKENS = 5  # token types listed per direction in the report


def study_sections(study_dir: str | Path, results: Mapping) -> dict:
    """``{"attribution", "predictor", "energy", "mitigations", "probes"}`` sections for ``render_report``."""
    study_dir = Path(study_dir)
    return {
        "attribution": attribution_section(study_dir, results),
        "predictor": predictor_report(study_dir, results),
        "energy": energy_section(results),
        "mitigations": mitigation_section(results),
        "probes": probe_section(results),
    }


# -- attribution -------------------------------------------------------------------------------
def attribution_summary(run_dir: Path, reference: str | None) -> dict | None:
    """The token attribution of a domain's test text (base against adapted), cached in
    ``run_dir/attribution.json``; None when the run has no per-token evaluations."""
    before, after = run_dir / "evals" / "base-test", run_dir / "evals" / "adapted-test"
    if not ((before / "tokens.safetensors").is_file() and (after / "tokens.safetensors").is_file()):
        return None
    cache = run_dir / ATTRIBUTION_FILE
    stamp = {"format": ATTRIBUTION_FORMAT, "reference": reference,
             "before_mtime": (before / "tokens.safetensors").stat().st_mtime,
             "after_mtime": (after / "tokens.safetensors").stat().st_mtime}
    if cache.is_file():
        saved = read_json(cache)
        if saved.get("stamp") == stamp:
            return saved["summary"]
    from odyssey.analysis.tokens import attribute

    summary = attribute(before, after, reference=reference).summary()
    write_json(cache, {"stamp": stamp, "summary": summary})
    return summary


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


def attribution_section(study_dir: Path, results: Mapping) -> dict:
    general = (results.get("study") or {}).get("general")
    domains, notes = {}, []
    for d in results.get("domains", []):
        try:
            summary = attribution_summary(study_dir / "runs" / d["name"], general)
        except (OdysseyError, OSError, KeyError, ValueError) as e:
            notes.append(f"{d['name']}: attribution failed ({e})")
            continue
        if summary is None:
            notes.append(f"{d['name']}: no per-token evaluations to attribute")
            continue
        domains[d["name"]] = compact_attribution(summary)
    return {"domains": domains, "notes": notes}


# -- similarity and prediction -------------------------------------------------------------------
def predictor_report(study_dir: Path, results: Mapping) -> dict:
    """:func:`~odyssey.analysis.predictor.predictor_section` with the shipped default fit and
    the similarity measures cached in ``STUDY_DIR/features.json`` (written by
    ``odyssey diagnose fit STUDY_DIR``)."""
    from odyssey.analysis.diagnose import load_study_features
    from odyssey.analysis.predictor import load_fit, predictor_section

    try:
        fit = load_fit()
    except OdysseyError as e:
        log.info("no predictor fit: %s", e)
        fit = None
    features = load_study_features(study_dir) or None
    section = predictor_section(results, fit, features)
    section["measured_here"] = features is not None
    return section


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
        rows = [r for r in rows if _finite(r.get("delta_ppl_pct")) and _finite(r.get("forgetting_pct"))]
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


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


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
