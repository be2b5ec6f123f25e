"""The study as a controlled experiment: the phase diagram (domains × learning rate), the
token attribution of every cell that got worse beside the cells that improved, and the
readout of the Adaptation Odyssey's three findings. Plain data from ``results.json``
(and the cells' attributions); :mod:`odyssey.report.html` renders it.

The criteria of the readout were written down before the study's results were seen,
and are applied as written:

1. *Degradation on similar domains*: at a learning rate, reproduced when at least one
   domain near the pretraining data (kind ``in-distribution``, ``seen`` or
   ``wikipedia-topic``) gets worse in-domain (perplexity up) while the registers
   improve on median; partly when a near domain gets worse but the registers do not
   improve, not reproduced when no near domain gets worse.
2. *Correlation with similarity*: at a learning rate, Spearman's ρ between the base
   model's bits per byte on each domain's test text (lower: more similar to the
   pretraining data) and the in-domain change; reproduced when ρ ≤ −0.5 with
   p < 0.05 (the more similar the domain, the worse adapting does), over at least 5
   domains.
3. *Carried by uninformative tokens*: over the cells that got worse, the share of the
   loss increase carried by newline, whitespace, punctuation and function-word tokens;
   reproduced when it is above one half in most such cells *and* above those tokens'
   share of the text (they carry more than their weight); not testable when no cell got
   worse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

UNINFORMATIVE = ("newline", "whitespace", "punctuation", "function")
NEAR_KINDS = ("in-distribution", "seen", "wikipedia-topic")
MIN_DOMAINS_FOR_RHO = 5


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _rate_label(lr: float) -> str:
    return f"{lr:g}"


# -- the phase diagram ------------------------------------------------------------------------
def phase_section(results: Mapping) -> dict | None:
    """Domains (rows, most similar to the pretraining data first: lowest base bits per
    byte) × learning rates (columns, ascending), each cell the run's in-domain change
    and forgetting; per domain the largest rate that still improved it. None for a
    study with one rate."""
    cells = [c for c in results.get("cells", []) if _finite(c.get("lr"))]
    rates = sorted({c["lr"] for c in cells})
    if len(rates) < 2:
        return None
    by_domain: dict[str, dict] = {}
    for c in cells:
        row = by_domain.setdefault(c["domain"], {"name": c["domain"], "kind": c.get("kind"),
                                                 "bpb_before": c.get("bpb_before"), "cells": {}})
        row["cells"][c["lr"]] = {"run": c.get("run", c.get("name")), "lr": c["lr"], "lr_ratio": c.get("lr_ratio"),
                                 "delta_ppl_pct": c.get("delta_ppl_pct"), "forgetting_pct": c.get("forgetting_pct"),
                                 "ppl_before": c.get("ppl_before"), "ppl_after": c.get("ppl_after")}
    rows = sorted(by_domain.values(), key=lambda r: (not _finite(r["bpb_before"]), r["bpb_before"] or 0.0))
    for r in rows:
        improved = [lr for lr, c in r["cells"].items() if _finite(c["delta_ppl_pct"]) and c["delta_ppl_pct"] < 0]
        r["largest_improving_lr"] = max(improved) if improved else None
        r["cells"] = [r["cells"].get(lr) for lr in rates]
    ratios = {c["lr"]: c.get("lr_ratio") for c in cells}
    worse = sum(1 for r in rows for c in r["cells"] if c and _finite(c["delta_ppl_pct"]) and c["delta_ppl_pct"] > 0)
    return {"rates": rates, "ratios": [ratios.get(lr) for lr in rates], "rows": rows,
            "worse_cells": worse, "cells": sum(1 for r in rows for c in r["cells"] if c)}


# -- attribution of degradation ------------------------------------------------------------------
def uninformative_share(summary: Mapping) -> dict:
    """Of one attribution: the share of the total change carried by the uninformative
    categories, and their share of the tokens (the share they would carry if every token
    changed alike)."""
    cats = summary.get("by_category") or {}
    total = summary.get("total_delta")
    tokens = sum(v.get("tokens", 0) for v in cats.values())
    delta = sum(cats.get(c, {}).get("delta", 0.0) for c in UNINFORMATIVE)
    count = sum(cats.get(c, {}).get("tokens", 0) for c in UNINFORMATIVE)
    return {"share_of_change": delta / total if _finite(total) and total else None,
            "share_of_tokens": count / tokens if tokens else None}


def degradation_section(results: Mapping, attributions: Mapping[str, Mapping]) -> dict | None:
    """Every plain cell with an attribution, worse ones first: which categories carry its
    change, the uninformative share against the uninformative tokens' share of the text,
    and how many token types carry half of the change.

    ``attributions``: run name -> the compact attribution of its test text (base
    against adapted; :func:`odyssey.report.sections.compact_attribution`)."""
    rows = []
    for c in results.get("cells", []):
        run = c.get("run", c.get("name"))
        att = attributions.get(run)
        if not att or not _finite(c.get("delta_ppl_pct")):
            continue
        shares = uninformative_share({"by_category": {x["category"]: x for x in att["categories"]},
                                      "total_delta": att["total_delta"]})
        rows.append({"run": run, "domain": c["domain"], "kind": c.get("kind"), "lr": c.get("lr"),
                     "delta_ppl_pct": c["delta_ppl_pct"], "worse": c["delta_ppl_pct"] > 0,
                     "categories": {x["category"]: x.get("share") for x in att["categories"]},
                     "uninformative_share": shares["share_of_change"],
                     "uninformative_tokens": shares["share_of_tokens"],
                     "half_mass_types": att.get("half_mass_types"), "half_mass_share": att.get("half_mass_share"),
                     "top_worse": [t.get("token") for t in att.get("worse", [])[:5]]})
    if not rows:
        return None
    rows.sort(key=lambda r: (not r["worse"], -r["delta_ppl_pct"]))
    return {"rows": rows, "uninformative": list(UNINFORMATIVE)}


# -- the paper's findings ------------------------------------------------------------------------
def _spearman(xs: Sequence[float], ys: Sequence[float]) -> tuple[float | None, float | None]:
    from scipy.stats import spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None, None
    r = spearmanr(xs, ys)
    return float(r.statistic), float(r.pvalue)


def _median(values: Sequence[float]) -> float | None:
    vals = sorted(v for v in values if _finite(v))
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def finding_degradation(cells: Sequence[Mapping]) -> dict:
    per_rate = []
    for lr in sorted({c["lr"] for c in cells}):
        at = [c for c in cells if c["lr"] == lr and _finite(c.get("delta_ppl_pct"))]
        near_worse = sorted(c["domain"] for c in at if c.get("kind") in NEAR_KINDS and c["delta_ppl_pct"] > 0)
        registers = _median([c["delta_ppl_pct"] for c in at if c.get("kind") == "register"])
        verdict = ("not reproduced" if not near_worse else
                   "reproduced" if registers is not None and registers < 0 else "partly")
        per_rate.append({"lr": lr, "near_worse": near_worse,
                         "near": sum(1 for c in at if c.get("kind") in NEAR_KINDS),
                         "register_median_pct": registers, "verdict": verdict})
    return {"finding": "Domains similar to the pretraining data get worse in-domain", "per_rate": per_rate,
            "verdict": _overall([p["verdict"] for p in per_rate])}


def finding_similarity(cells: Sequence[Mapping]) -> dict:
    per_rate = []
    for lr in sorted({c["lr"] for c in cells}):
        pts = [(c["bpb_before"], c["delta_ppl_pct"]) for c in cells
               if c["lr"] == lr and _finite(c.get("bpb_before")) and _finite(c.get("delta_ppl_pct"))]
        rho, p = _spearman(*zip(*pts, strict=True)) if pts else (None, None)
        ok = rho is not None and len(pts) >= MIN_DOMAINS_FOR_RHO
        verdict = ("not testable" if not ok else
                   "reproduced" if rho <= -0.5 and p < 0.05 else "not reproduced")
        per_rate.append({"lr": lr, "rho": rho, "p_value": p, "n": len(pts), "verdict": verdict})
    return {"finding": "The more similar the domain, the less adapting helps (or the more it hurts)",
            "per_rate": per_rate, "verdict": _overall([p["verdict"] for p in per_rate])}


def finding_tokens(degradation: Mapping | None) -> dict:
    worse = [r for r in (degradation or {}).get("rows", []) if r["worse"] and _finite(r["uninformative_share"])]
    if not worse:
        return {"finding": "The degradation is carried by a handful of uninformative tokens",
                "verdict": "not testable", "worse_cells": 0, "per_cell": []}
    carried = [r for r in worse if r["uninformative_share"] > 0.5
               and _finite(r["uninformative_tokens"]) and r["uninformative_share"] > r["uninformative_tokens"]]
    verdict = "reproduced" if len(carried) > len(worse) / 2 else "partly" if carried else "not reproduced"
    return {"finding": "The degradation is carried by a handful of uninformative tokens", "verdict": verdict,
            "worse_cells": len(worse), "carried": len(carried),
            "median_uninformative_share": _median([r["uninformative_share"] for r in worse]),
            "median_uninformative_tokens": _median([r["uninformative_tokens"] for r in worse]),
            "median_half_mass_share": _median([r["half_mass_share"] for r in worse]),
            "per_cell": [{k: r[k] for k in ("run", "lr", "delta_ppl_pct", "uninformative_share",
                                            "uninformative_tokens", "half_mass_types", "half_mass_share")}
                         for r in worse]}


def _overall(verdicts: Sequence[str]) -> str:
    """One word over the rates: reproduced at some rate is "reproduced under some
    conditions" unless at all of them."""
    tested = [v for v in verdicts if v != "not testable"]
    if not tested:
        return "not testable"
    if all(v == "reproduced" for v in tested):
        return "reproduced"
    if any(v in ("reproduced", "partly") for v in tested):
        return "under some conditions"
    return "not reproduced"


def findings_section(results: Mapping, degradation: Mapping | None) -> dict | None:
    """The readout of the paper's three findings (criteria in the module docstring)."""
    cells = [c for c in results.get("cells", []) if _finite(c.get("lr"))]
    if not cells:
        return None
    return {"degradation": finding_degradation(cells), "similarity": finding_similarity(cells),
            "tokens": finding_tokens(degradation)}


def findings_sentences(findings: Mapping | None) -> list[str]:
    """The readout as sentences with numbers (README and report)."""
    if not findings:
        return []
    out = []
    deg = findings["degradation"]
    for p in deg["per_rate"]:
        worse = ", ".join(p["near_worse"]) or "none"
        reg = "–" if p["register_median_pct"] is None else f"{p['register_median_pct']:+.1f}%"
        out.append(f"lr {_rate_label(p['lr'])}: near domains that got worse: {worse} "
                   f"(of {p['near']}); registers' median change {reg} → {p['verdict']}.")
    for p in findings["similarity"]["per_rate"]:
        rho = "–" if p["rho"] is None else f"{p['rho']:+.2f}"
        pv = "–" if p["p_value"] is None else f"{p['p_value']:.2g}"
        out.append(f"lr {_rate_label(p['lr'])}: Spearman ρ(base bits/byte, change) = {rho} "
                   f"(p = {pv}, {p['n']} domains) → {p['verdict']}.")
    tok = findings["tokens"]
    if tok["worse_cells"]:
        out.append(f"Token attribution of the {tok['worse_cells']} cells that got worse: newline, whitespace, "
                   f"punctuation and function words carried a median {tok['median_uninformative_share']:.0%} "
                   f"of the increase while being {tok['median_uninformative_tokens']:.0%} of the tokens; "
                   f"more than half and more than their weight in {tok['carried']} of {tok['worse_cells']} "
                   f"cells; half of the change sat in a median {tok['median_half_mass_share']:.1%} of the token "
                   f"types → {tok['verdict']}.")
    else:
        out.append("No cell got worse, so the token attribution of a degradation is not testable.")
    return out
