"""The study report: one self-contained HTML file.

Everything is inline (CSS, SVG charts); nothing is fetched when the file is opened,
so it works offline and can be mailed around. Names, descriptions and samples come
from corpora and are untrusted: the template escapes everything (``autoescape``) and
the only markup passed through unescaped is the SVG that :mod:`odyssey.report.plots`
builds (matplotlib escapes the text it writes).
"""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from odyssey.errors import DataError
from odyssey.io import atomic_write
from odyssey.report import plots

DASH = "–"  # what a missing number renders as
MINUS = "−"  # U+2212, typographic minus for signed numbers
SAMPLE_CHARS = 4000  # longest sample shown per domain
_KIND_ORDER = ("seen", "in-distribution", "wikipedia-topic", "register", "custom")
_KIND_NOUNS = {"wikipedia-topic": ("Wikipedia-topic domain", "Wikipedia-topic domains"),
               "in-distribution": ("in-distribution control", "in-distribution controls"),
               "seen": ("seen-in-pretraining control", "seen-in-pretraining controls"),
               "register": ("register", "registers"),
               "custom": ("custom domain", "custom domains")}
_NUMBER_FIELDS = ("ppl_before", "ppl_after", "bpb_before", "bpb_after",
                  "general_ppl_before", "general_ppl_after",
                  "general_bpb_before", "general_bpb_after",
                  "delta_ppl_pct", "forgetting_pct",
                  "train_tokens", "test_tokens", "test_bytes", "seconds")
# C0/C1 controls other than tab and newline: invalid in HTML text, and meaningless here.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def render_report(results: Mapping, curves: Mapping[str, Sequence[Mapping]] | None,
                  out_path: str | os.PathLike, sections: Mapping | None = None) -> Path:
    """Write the study's HTML report to ``out_path`` (atomically) and return its path.

    Args:
        results: the study's ``results.json`` content: ``study`` (name, model, general,
            recipe, created, odyssey_version, seconds, machine), ``base`` (general_ppl,
            general_bpb) and ``domains`` (one dict per adapted domain, with before/after
            perplexities and bits per byte, ``delta_ppl_pct``, ``forgetting_pct``, token
            counts, seconds and a ``sample`` of its test text). Missing numbers render as "–".
        curves: domain name -> the rows of that run's ``metrics.jsonl`` (``kind`` "eval"
            rows with ``split`` "valid"/"general", ``tokens_seen`` and ``perplexity``
            are plotted; other rows are ignored). May be empty.
        out_path: where to write the ``.html`` file; parent folders are created.
        sections: the analysis sections of :func:`odyssey.study.analyses.study_sections`
            (token attribution, similarity and prediction, energy, probes, downstream tasks);
            each one is optional.

    Example:
        >>> from odyssey.io import read_json
        >>> render_report(read_json("study/results.json"), {}, "study/report.html")
        PosixPath('study/report.html')
    """
    context = build_context(results, curves or {})
    context.update(analysis_context(sections or {}, context["domains"]))
    html = _environment().get_template("report.html.j2").render(**context)
    out = Path(out_path)
    with atomic_write(out) as f:
        f.write(html)
    return out


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("odyssey.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ppl=fmt_ppl, bpb=fmt_bpb, pct=fmt_pct, count=fmt_count,
                       duration=fmt_duration, change_class=change_class, tok=visible_token,
                       num=_fmt_num, signed=_fmt_signed)
    return env


# -- numbers -------------------------------------------------------------------------


def _number(v: Any) -> float | None:
    """A float, or None for anything missing, non-numeric or NaN (inf is kept)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


def _signed(v: float, fmt: str) -> str:
    s = format(abs(v), fmt)
    return ("+" if v > 0 else MINUS if v < 0 else "") + s


def fmt_ppl(v: float | None) -> str:
    if v is None:
        return DASH
    if math.isinf(v):
        return "∞"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}"


def fmt_bpb(v: float | None) -> str:
    return DASH if v is None else "∞" if math.isinf(v) else f"{v:.3f}"


def fmt_pct(v: float | None) -> str:
    if v is None:
        return DASH
    if math.isinf(v):
        return "+∞%" if v > 0 else f"{MINUS}∞%"
    return _signed(v, ".1f") + "%"


def fmt_count(v: float | None) -> str:
    return DASH if v is None or math.isinf(v) else f"{round(v):,}"


def fmt_duration(v: float | None) -> str:
    if v is None or math.isinf(v) or v < 0:
        return DASH
    if v < 60:
        return f"{v:.1f} s"
    m, s = divmod(round(v), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def change_class(v: float | None) -> str:
    """CSS class of a change in perplexity: up is worse, down is better."""
    return "" if v is None or v == 0 else "worse" if v > 0 else "better"


def _median(vals: Sequence[float]) -> float | None:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else None


# -- inputs --------------------------------------------------------------------------


def plain_text(v: Any, limit: int | None = None) -> str:
    """``v`` as one line of text without control characters, cut at ``limit`` with " …"."""
    s = "" if v is None else _CONTROL.sub("", str(v))
    if limit is not None and len(s) > limit:
        s = s[:limit].rstrip() + " …"
    return s


def _pct_change(after: float | None, before: float | None) -> float | None:
    if after is None or before is None or before <= 0 or math.isinf(before):
        return None
    return 100.0 * (after / before - 1.0)


def _domain(i: int, d: Any) -> dict:
    if not isinstance(d, Mapping):
        raise DataError(f"results: domains[{i}] is a {type(d).__name__}, not an object",
                        "each domain must be a JSON object with at least a name")
    out = {k: _number(d.get(k)) for k in _NUMBER_FIELDS}
    out["name"] = " ".join(plain_text(d.get("name")).split()) or f"domain {i + 1}"
    out["kind"] = " ".join(plain_text(d.get("kind")).split()) or "custom"
    out["description"] = plain_text(d.get("description"), 500)
    out["sample"] = plain_text(d.get("sample"), SAMPLE_CHARS)
    # The study writes both; recompute them only when missing.
    if out["delta_ppl_pct"] is None:
        out["delta_ppl_pct"] = _pct_change(out["ppl_after"], out["ppl_before"])
    if out["forgetting_pct"] is None:
        out["forgetting_pct"] = _pct_change(out["general_ppl_after"], out["general_ppl_before"])
    return out


def _kinds_in_order(domains: Sequence[dict]) -> list[str]:
    present = list(dict.fromkeys(d["kind"] for d in domains))
    return [k for k in _KIND_ORDER if k in present] + [k for k in present if k not in _KIND_ORDER]


def _format_date(v: Any) -> str:
    if not v:
        return DASH
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return plain_text(v, 40)
    zone = t.strftime(" %Z") if t.tzinfo else ""
    return t.strftime("%Y-%m-%d %H:%M") + (" UTC" if zone in (" UTC", " UTC+00:00") else zone)


def _scalar(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, Mapping):  # an empty mapping
        return "{}"
    return plain_text(v, 120)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mapping -> [(dotted.key, value text)], in insertion order."""
    if not isinstance(d, Mapping):
        return [] if d is None else [(prefix or "recipe", _scalar(d))]
    items: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else plain_text(k)
        items.extend(_flatten(v, key) if isinstance(v, Mapping) and v else [(key, _scalar(v))])
    return items


def _recipe_rows(recipe: Any) -> list[list[tuple[str, str] | None]]:
    """The recipe as table rows of up to three (key, value) cells, filled column by column."""
    items = _flatten(recipe)
    if not items:
        return []
    ncols = 1 if len(items) <= 4 else 2 if len(items) <= 12 else 3
    per = math.ceil(len(items) / ncols)
    cols = [items[c * per:(c + 1) * per] for c in range(ncols)]
    return [[col[r] if r < len(col) else None for col in cols] for r in range(per)]


# -- the readout ---------------------------------------------------------------------


def _noun(kind: str, n: int) -> str:
    one, many = _KIND_NOUNS.get(kind, (f"“{kind}” domain", f"“{kind}” domains"))
    return one if n == 1 else many


def _kind_clause(kind: str, deltas: Sequence[float | None]) -> str:
    """E.g. "3 of 4 Wikipedia-topic domains got worse (1 improved)"."""
    n = len(deltas)
    worse = sum(1 for v in deltas if v is not None and v > 0)
    better = sum(1 for v in deltas if v is not None and v < 0)
    same = sum(1 for v in deltas if v == 0)
    missing = n - worse - better - same
    noun = _noun(kind, n)
    if worse > better:
        head, rest = f"{worse} of {n} {noun} got worse", [f"{better} improved"] if better else []
    elif better > worse:
        head, rest = f"{better} of {n} {noun} improved", [f"{worse} got worse"] if worse else []
    elif worse:
        head, rest = f"{worse} of {n} {noun} got worse and {better} improved", []
    elif same:
        head, rest = f"none of {n} {noun} changed", []
    else:
        head, rest = f"{missing} of {n} {noun} {'was' if n == 1 else 'were'} not measured", []
        missing = 0
    rest += [f"{same} unchanged"] if same and (worse or better) else []
    rest += [f"{missing} not measured"] if missing else []
    return head + (f" ({', '.join(rest)})" if rest else "")


def readout(domains: Sequence[Mapping]) -> list[str]:
    """The summary paragraph, as sentences computed from the numbers.

    ``domains``: dicts with ``kind``, ``delta_ppl_pct`` and ``forgetting_pct`` (None when
    missing). Up in perplexity is "worse"."""
    if not domains:
        return ["This study has no domains, so there is nothing to compare."]
    deltas = [d.get("delta_ppl_pct") for d in domains]
    n = len(domains)
    worse = sum(1 for v in deltas if v is not None and v > 0)
    better = sum(1 for v in deltas if v is not None and v < 0)
    clauses = [_kind_clause(k, [d.get("delta_ppl_pct") for d in domains if d["kind"] == k])
               for k in _kinds_in_order(domains)]
    clauses[0] = clauses[0][0].upper() + clauses[0][1:]
    missing = sum(1 for v in deltas if v is None)
    sentences = [
        f"After additional pretraining, {worse} of {n} domain{'s' if n != 1 else ''} got worse "
        f"on {'its' if n == 1 else 'their'} own test split and {better} improved"
        + (f" ({missing} not measured)." if missing else "."),
        "; ".join(clauses) + ".",
    ]
    forgetting = [d.get("forgetting_pct") for d in domains]
    med = _median(forgetting)
    if med is None:
        sentences.append("Forgetting on general text was not measured.")
    else:
        finite = [v for v in forgetting if v is not None and math.isfinite(v)]
        direction = "rose" if med > 0 else "fell" if med < 0 else "did not change"
        sentences.append(
            f"Median forgetting: general-text perplexity {direction}"
            f"{' by ' + fmt_pct(abs(med)).lstrip('+') if med else ''} "
            f"(range {fmt_pct(min(finite))} to {fmt_pct(max(finite))}).")
    wiki = _median([d.get("delta_ppl_pct") for d in domains if d["kind"] == "wikipedia-topic"])
    # the controls (in-distribution, seen) answer another question: compared with the other real domains
    other = _median([d.get("delta_ppl_pct") for d in domains
                     if d["kind"] not in ("wikipedia-topic", "in-distribution", "seen")])
    if wiki is not None and other is not None:
        sentences.append(_paper_comparison(wiki, other))
    return sentences


def _paper_comparison(wiki: float, other: float) -> str:
    """Compare with the paper's finding: Wikipedia domains got *worse* (absolute), the
    distant ones better. A smaller improvement is only a partial agreement."""
    medians = (f"(median in-domain change {fmt_pct(wiki)} for Wikipedia topics, {fmt_pct(other)} for the other "
               "real domains)")
    if wiki > 0 >= other:
        return f"As in the Adaptation Odyssey paper, the Wikipedia-topic domains got worse while the others improved {medians}."
    if wiki > other:
        return ("Unlike the Adaptation Odyssey paper, the Wikipedia-topic domains did not get worse; they only "
                f"changed less favourably than the others {medians}.")
    return f"Unlike the Adaptation Odyssey paper, the Wikipedia-topic domains fared no worse than the others {medians}."


def _base_line(base: Mapping) -> str:
    ppl, bpb = _number(base.get("general_ppl")), _number(base.get("general_bpb"))
    if ppl is None and bpb is None:
        return DASH
    return f"perplexity {fmt_ppl(ppl)} · {fmt_bpb(bpb)} bits/byte"


# -- the context ---------------------------------------------------------------------


def build_context(results: Mapping, curves: Mapping[str, Sequence[Mapping]]) -> dict:
    """Everything the template shows, as plain values (the template only formats)."""
    if not isinstance(results, Mapping):
        raise DataError(f"results must be an object, got {type(results).__name__}",
                        "pass the content of the study's results.json")
    if not isinstance(curves, Mapping):
        raise DataError(f"curves must map domain names to metric rows, got {type(curves).__name__}")
    study = results.get("study") if isinstance(results.get("study"), Mapping) else {}
    base = results.get("base") if isinstance(results.get("base"), Mapping) else {}
    raw = results.get("domains") or []
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise DataError("results: 'domains' must be a list", "check the study's results.json")
    domains = [_domain(i, d) for i, d in enumerate(raw)]
    # Worst change first; unmeasured last.
    domains.sort(key=lambda d: (d["delta_ppl_pct"] is None, -(d["delta_ppl_pct"] or 0.0)))

    colors = plots.kind_colors(_kinds_in_order(domains))
    for d in domains:
        d["color"] = colors[d["kind"]]
        d["kind_label"] = plots.kind_label(d["kind"])
    curves = {str(k): v for k, v in curves.items() if isinstance(v, Sequence)}
    kinds = {d["name"]: d["kind"] for d in domains}
    charts = {}
    if domains:
        charts = {
            "bars": plots.change_bars(domains, colors),
            "scatter": plots.change_scatter(domains, colors),
            "curves": plots.curve_panels(curves, kinds, colors,
                                         order=[d["name"] for d in domains]),
        }
    # The SVG comes from matplotlib, which escapes its text: the one trusted markup here.
    charts = {k: Markup(v) for k, v in charts.items() if v}

    name = plain_text(study.get("name")) or "study"
    meta = [
        ("Model", plain_text(study.get("model")) or DASH),
        ("General corpus", plain_text(study.get("general")) or DASH),
        ("Created", _format_date(study.get("created"))),
        ("Machine", plain_text(study.get("machine")) or DASH),
        ("Total time", fmt_duration(_number(study.get("seconds")))),
        ("Base model on general text", _base_line(base)),
        ("odyssey", plain_text(study.get("odyssey_version")) or DASH),
    ]
    return {
        "name": name,
        "meta": meta,
        "recipe_rows": _recipe_rows(study.get("recipe")),
        "readout": readout(domains),
        "domains": domains,
        "kinds": [(plots.kind_label(k), colors[k]) for k in colors],
        "charts": charts,
    }


def _fmt_num(v: Any, fmt: str = ".3g") -> str:
    v = _number(v)
    return DASH if v is None else format(v, fmt)


def _fmt_signed(v: Any, fmt: str = ".2f") -> str:
    v = _number(v)
    return DASH if v is None else _signed(v, fmt)


# -- the analysis sections -------------------------------------------------------------------
_VISIBLE = str.maketrans({"\n": "↵", "\r": "␍", "\t": "→", " ": "·"})


def visible_token(s: Any) -> str:
    """A token string with its whitespace made visible (the report escapes the rest)."""
    return _CONTROL.sub("", str(s)).translate(_VISIBLE) or "∅"


def analysis_context(sections: Mapping, domains: Sequence[Mapping]) -> dict:
    """Template values of the attribution, predictor and energy sections; each is None
    when its data is missing."""
    from odyssey.report import analysis_plots

    order = [d["name"] for d in domains]
    colors = {d["kind"]: d["color"] for d in domains}
    kinds = {d["name"]: d["kind"] for d in domains}
    att = sections.get("attribution") or {}
    attribution = None
    if att.get("domains"):
        rows = [{"name": n, "kind": kinds.get(n, "custom"), **att["domains"][n]} for n in order if n in att["domains"]]
        attribution = {"rows": rows, "notes": att.get("notes", []),
                       "chart": _markup(analysis_plots.category_bars(att["domains"], order))}
    pred = sections.get("predictor") or {}
    predictor = None
    # Fewer than three measured domains give no correlation to show (the fit's own
    # leave-one-out figures belong with a study it can be compared to).
    if pred.get("available") and any(m.get("rho") is not None for m in pred.get("measures", [])):
        points = [{**p, "kind": kinds.get(p["name"], p.get("kind") or "custom")} for p in pred["points"]]
        predictor = {**pred, "labels": analysis_plots.MEASURE_LABELS,
                     "similarity_chart": _markup(analysis_plots.similarity_panels(points, pred["measures"], colors)),
                     "loo_chart": _markup(analysis_plots.loo_scatter(points, colors))}
    energy = sections.get("energy") or {}
    mitigations = sections.get("mitigations")
    if mitigations:
        mitigations = {**mitigations, "chart": _markup(analysis_plots.pareto_panels(mitigations["domains"],
                                                                                     mitigations["goal_pct"]))}
    return {"attribution": attribution, "predictor": predictor,
            "energy": energy if energy.get("rows") else None, "mitigations": mitigations or None,
            "probes": sections.get("probes"), "tasks": sections.get("tasks"),
            "experiment": experiment_context(sections)}


def experiment_context(sections: Mapping) -> dict | None:
    """Template values of the controlled-experiment section: the design, the readout of
    the paper's findings, the phase diagram, the attribution of degradation and the base
    model's pretraining curve; None for a study with nothing of it."""
    from odyssey.report import experiment_plots
    from odyssey.report.experiment import findings_sentences

    design, phase = sections.get("design") or {}, sections.get("phase")
    findings, degradation = sections.get("findings"), sections.get("degradation")
    base = design.get("base") or {}
    curve = base.get("pretraining_curve") or []
    if not (phase or findings or curve):
        return None
    factors = design.get("factors") or {}
    return {
        "design": design, "factors": factors,
        "domains": [plain_text(d.get("name")) for d in factors.get("domain", [])],
        "world": (design.get("data") or {}).get("world"),
        "base": base,
        "findings": findings_sentences(findings), "verdicts": findings,
        "phase": phase, "phase_chart": _markup(experiment_plots.phase_heatmap(phase)) if phase else None,
        "degradation": degradation,
        "curve_chart": _markup(experiment_plots.pretraining_curve(curve, plain_text(base.get("pretraining_command"), 90))),
    }


def _markup(svg: str | None) -> Markup | None:
    # matplotlib's SVG escapes its text: the one trusted markup here.
    return Markup(svg) if svg else None
