"""Charts of the report's analysis sections: similarity against change, leave-one-out
predictions against actual changes, and the token categories that carry a change.
Same conventions as :mod:`odyssey.report.plots` (inline SVG, escaped labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from odyssey.report.plots import CHART_RC, _kind_legend, _place_labels, clean_label, finite, to_svg

MEASURE_LABELS = {
    "js_divergence": "unigram Jensen-Shannon divergence",
    "ngram_overlap": "n-gram overlap with the reference",
    "embed_cosine_of_means": "embedding distance (1 − cosine of means)",
    "embed_mmd": "embedding MMD",
    "embed_frechet": "embedding Fréchet distance",
    "base_bits_per_byte": "base model bits per byte",
    "rare_token_rate": "rate of words rare in the reference",
    "probe_delta_ppl_pct": "probe run change (%)",
}


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def similarity_panels(points: Sequence[Mapping], measures: Sequence[Mapping],
                      colors: Mapping[str, str]) -> str | None:
    """One small scatter per similarity measure: its value (x) against the in-domain
    perplexity change (y), titled with Spearman's rho and its p-value."""
    shown = [m for m in measures if m["n"] >= 3]
    if not shown:
        return None
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    kinds = [p.get("kind") or "custom" for p in points]
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(3.0 * cols, 2.6 * rows + 0.5), layout="constrained")
        for i, m in enumerate(shown):
            ax = fig.add_subplot(rows, cols, i + 1)
            pts = [(p["features"].get(m["measure"]), p["delta_ppl_pct"], colors.get(p.get("kind") or "custom", "#777"))
                   for p in points if finite(p["features"].get(m["measure"])) and finite(p["delta_ppl_pct"])]
            xs, ys, cs = zip(*pts, strict=True)
            ax.axhline(0, color="#222222", linewidth=0.7, zorder=1)
            ax.scatter(xs, ys, s=26, c=cs, edgecolors="white", linewidths=0.6, zorder=3)
            rho = "–" if m["rho"] is None else f"{m['rho']:+.2f}".replace("-", "\u2212")
            ax.set_title(f"ρ = {rho}, p = {_p(m['p_value'])}", fontsize=9)
            ax.set_xlabel(MEASURE_LABELS.get(m["measure"], m["measure"]), fontsize=8.5)
            if i % cols == 0:
                ax.set_ylabel("in-domain change (%)")
        _kind_legend(fig, kinds, colors)
        return to_svg(fig, "similarity")


def loo_scatter(points: Sequence[Mapping], colors: Mapping[str, str]) -> str | None:
    """Leave-one-domain-out predicted change (x) against the actual change (y), with the
    diagonal; a point off the diagonal's quadrant got its sign wrong."""
    rows = [(p["loo_predicted"], p["delta_ppl_pct"], clean_label(p["name"], 22), p.get("kind") or "custom")
            for p in points if finite(p.get("loo_predicted")) and finite(p.get("delta_ppl_pct"))]
    if len(rows) < 2:
        return None
    xs, ys, labels, kinds = zip(*rows, strict=True)
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(5.2, 4.4), layout="constrained")
        ax = fig.add_subplot()
        lo, hi = min(0.0, *xs, *ys), max(0.0, *xs, *ys)
        pad = 0.12 * (hi - lo or 1.0)
        lo, hi = lo - pad, hi + pad
        ax.fill_between([lo, 0], lo, 0, color="#e6f4ea", zorder=0)  # right sign, both better
        ax.fill_between([0, hi], 0, hi, color="#fdecea", zorder=0)  # right sign, both worse
        ax.plot([lo, hi], [lo, hi], color="#888888", linewidth=0.8, linestyle="--", zorder=1)
        ax.scatter(xs, ys, s=40, c=[colors.get(k, "#777") for k in kinds], edgecolors="white",
                   linewidths=0.8, zorder=3)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("predicted change (%), domain left out of the fit")
        ax.set_ylabel("actual in-domain change (%)")
        _kind_legend(fig, kinds, colors)
        _place_labels(fig, ax, list(zip(xs, ys, labels, strict=True)))
        return to_svg(fig, "loo")


CATEGORY_COLORS = {"newline": "#D55E00", "whitespace": "#E69F00", "punctuation": "#CC79A7", "digits": "#F0E442",
                   "function": "#56B4E9", "content": "#0072B2", "domain": "#009E73", "other": "#999999"}


def category_bars(domains: Mapping[str, Mapping], order: Sequence[str]) -> str | None:
    """Per domain, the change of total NLL split by token category as stacked bars of each
    category's share of the absolute change (so that gains and losses both show)."""
    names = [n for n in order if n in domains]
    if not names:
        return None
    cats = list(CATEGORY_COLORS)
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(7.2, 1.2 + 0.34 * len(names)), layout="constrained")
        ax = fig.add_subplot()
        for row, name in enumerate(names):
            by = {c["category"]: c for c in domains[name]["categories"]}
            total_abs = sum(abs(c["delta"]) for c in by.values()) or 1.0
            left = 0.0
            for cat in cats:
                c = by.get(cat)
                if not c or not c["delta"]:
                    continue
                width = 100 * c["delta"] / total_abs
                ax.barh(row, abs(width), left=left, height=0.62, color=CATEGORY_COLORS[cat],
                        hatch="///" if width > 0 else None, edgecolor="white", linewidth=0.4, zorder=2)
                left += abs(width)
        ax.set_yticks(range(len(names)), [clean_label(n) for n in names])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("share of the absolute change in test-set NLL (%); hatched: the category got worse")
        fig.legend(handles=[Patch(color=CATEGORY_COLORS[c], label=c) for c in cats], loc="outside upper center",
                   ncols=4, fontsize=8.5, handlelength=1.2, columnspacing=1.2)
        return to_svg(fig, "categories")


def pareto_panels(domains: Sequence[Mapping], goal_pct: float) -> str | None:
    """One panel per domain: forgetting on general text (x) against in-domain change (y)
    for plain adaptation and each mitigation; marker area grows with training tokens, the
    Pareto front is joined, and the region that meets the goal (no worse in-domain,
    forgetting at most ``goal_pct``) is shaded."""
    shown = [d for d in domains if d["rows"]]
    if not shown:
        return None
    cols = min(3, len(shown))
    nrows = -(-len(shown) // cols)
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(4.1 * cols, 3.5 * nrows), layout="constrained")
        for i, d in enumerate(shown):
            ax = fig.add_subplot(nrows, cols, i + 1)
            rows = d["rows"]
            xs = [r["forgetting_pct"] for r in rows]
            ys = [r["delta_ppl_pct"] for r in rows]
            tokens = [r.get("train_tokens") or 0 for r in rows]
            top = max(tokens) or 1
            sizes = [24 + 90 * t / top for t in tokens]
            colors = ["#222222" if r["variant"] == "none" else "#D55E00" if r["best"] else "#0072B2" for r in rows]
            lo_x, hi_x = min(0.0, *xs), max(goal_pct, *xs)
            lo_y, hi_y = min(0.0, *ys), max(0.0, *ys)
            px, py = 0.15 * (hi_x - lo_x or 1), 0.15 * (hi_y - lo_y or 1)
            ax.set_xlim(lo_x - px, hi_x + px)
            ax.set_ylim(lo_y - py, hi_y + py)
            ax.fill_between([lo_x - px, goal_pct], lo_y - py, 0, color="#e6f4ea", zorder=0)
            ax.axhline(0, color="#222222", linewidth=0.7, zorder=1)
            ax.axvline(goal_pct, color="#0a7a3f", linewidth=0.7, linestyle=":", zorder=1)
            front = sorted((r["forgetting_pct"], r["delta_ppl_pct"]) for r in rows if r["pareto"])
            if len(front) > 1:
                ax.plot(*zip(*front, strict=True), color="#999999", linewidth=0.8, zorder=2)
            ax.scatter(xs, ys, s=sizes, c=colors, edgecolors="white", linewidths=0.7, zorder=3)
            ax.set_title(clean_label(d["name"], 40), fontsize=9.5)
            ax.set_xlabel("forgetting: general-text change (%)")
            if i % cols == 0:
                ax.set_ylabel("in-domain change (%)")
            _place_labels(fig, ax, [(x, y, clean_label(r["variant"], 18)) for x, y, r in zip(xs, ys, rows, strict=True)])
        handles = [Patch(color="#222222", label="plain adaptation"), Patch(color="#0072B2", label="mitigation"),
                   Patch(color="#D55E00", label="recommended"),
                   Patch(color="#e6f4ea", label=f"goal: no worse in-domain, forgetting ≤ {goal_pct:g}%")]
        fig.legend(handles=handles, loc="outside upper center", ncols=4, fontsize=8.5, handlelength=1.2)
        return to_svg(fig, "pareto")
