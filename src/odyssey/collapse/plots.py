"""Charts of the collapse report, as inline SVG (same style and safety as
:mod:`odyssey.report.plots`: no pyplot, math text off, glyphs as paths)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator, PercentFormatter

from odyssey.collapse.metrics import histogram, log_bin_edges
from odyssey.report.plots import CHART_RC, clean_label, finite, to_svg

# One colour per series (Okabe-Ito), in order of the fractions kept.
SERIES_COLORS = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def series_label(keep_real: float) -> str:
    return f"{keep_real * 100:g}% real data kept"


def _log_axis(ax, axis: str, values: Sequence[float]) -> None:
    """Log scale when the values span more than a factor of 10, with plain tick labels."""
    vals = [v for v in values if finite(v) and v > 0]
    if vals and max(vals) > 10 * min(vals):
        getattr(ax, f"set_{axis}scale")("log")
        target = ax.yaxis if axis == "y" else ax.xaxis
        target.set_major_formatter(LogFormatter(labelOnlyBase=False))
        target.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))


def _output(fig: Figure, salt: str, png: str | Path | None) -> str:
    """The figure as inline SVG; also saved as a PNG at ``png`` (for a README) if given."""
    if png is not None:
        from odyssey.io import atomic_write

        with atomic_write(png, "wb") as f:
            fig.savefig(f, format="png", dpi=150, metadata={"Software": None})
    return to_svg(fig, salt)


def perplexity_by_generation(series: Sequence[Mapping], png: str | Path | None = None) -> str | None:
    """Real-test perplexity (y) by generation (x), one line per fraction of real data kept.

    ``series``: dicts with ``keep_real`` and ``generations`` (rows with ``generation`` and
    ``test_ppl``). None when nothing to plot."""
    lines = []
    for s in series:
        pts = [(r["generation"], r["test_ppl"]) for r in s.get("generations", []) if finite(r.get("test_ppl"))]
        if pts:
            lines.append((s["keep_real"], pts))
    if not lines:
        return None
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(5.6, 3.4), layout="constrained")
        ax = fig.add_subplot()
        for i, (keep, pts) in enumerate(lines):
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, color=SERIES_COLORS[i % len(SERIES_COLORS)], marker="o", markersize=4,
                    linewidth=1.8, label=series_label(keep))
        _log_axis(ax, "y", [p[1] for _, pts in lines for p in pts])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("generation")
        ax.set_ylabel("perplexity on the real test split")
        ax.legend(loc="upper left", fontsize=8.5)
        return _output(fig, "collapse-ppl", png)


def histogram_panels(series: Sequence[Mapping], bins: int | None = None, tail_quantile: float = 0.95,
                     png: str | Path | None = None) -> str | None:
    """Small multiples, one panel per series: the distribution of per-sequence perplexity of
    each generation's text, scored by generation 0 (x log scale; y share of sequences),
    one step line per generation from light (early) to dark (late), as in the published
    figure; a dashed line marks generation 0's ``tail_quantile`` (the tail-mass cut).
    ``bins`` defaults to twice the square root of the sequences per generation (10 to 40)."""
    panels = [(s["keep_real"], [r for r in s.get("generations", []) if r.get("seq_ppl")]) for s in series]
    panels = [(k, rows) for k, rows in panels if rows]
    if not panels:
        return None
    if bins is None:
        n = max(len(r["seq_ppl"]) for _, rows in panels for r in rows)
        bins = int(min(40, max(10, round(2 * math.sqrt(n)))))
    edges = log_bin_edges([r["seq_ppl"] for _, rows in panels for r in rows], bins)
    gen0 = next((r["seq_ppl"] for _, rows in panels for r in rows if r["generation"] == 0), None)
    cut = float(np.quantile(gen0, tail_quantile)) if gen0 else None
    last = max(r["generation"] for _, rows in panels for r in rows) or 1
    cmap = colormaps["viridis_r"]
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(max(5.0, 3.6 * len(panels) + 0.6), 3.2), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, (keep, rows) in zip(axes, panels, strict=True):
            for r in rows:
                counts = histogram(r["seq_ppl"], edges)
                total = max(1, sum(counts))
                share = [c / total for c in counts]
                ax.stairs(share, edges, color=cmap(0.15 + 0.8 * r["generation"] / last),
                          linewidth=1.4, label=f"generation {r['generation']}")
            if cut is not None:
                ax.axvline(cut, color="#444444", linestyle="--", linewidth=0.9,
                           label=f"generation 0's {tail_quantile:.0%} quantile")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
            ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))
            ax.tick_params(axis="x", which="both", labelsize=7.5)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.set_title(clean_label(series_label(keep), 40), loc="left", fontsize=9)
        axes[0].set_ylabel("share of sequences")
        fig.supxlabel("perplexity of the generated text under generation 0", fontsize=9)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
        return _output(fig, "collapse-hist", png)


def text_stat_panels(series: Sequence[Mapping], real: Mapping) -> str | None:
    """distinct-2, vocabulary size and repetition rate of each generation's text by
    generation, one line per series; the real test text as a dashed reference."""
    stats = (("distinct_2", "distinct-2"), ("vocab_size", "vocabulary (token types)"),
             ("repetition_rate", "repetition rate (4-grams)"))
    if not any(s.get("generations") for s in series):
        return None
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(9.6, 2.8), layout="constrained")
        axes = fig.subplots(1, len(stats), squeeze=False)[0]
        for ax, (key, title) in zip(axes, stats, strict=True):
            for i, s in enumerate(series):
                pts = [(r["generation"], r[key]) for r in s.get("generations", []) if finite(r.get(key))]
                if pts:
                    x, y = zip(*pts, strict=True)
                    ax.plot(x, y, color=SERIES_COLORS[i % len(SERIES_COLORS)], marker="o", markersize=3,
                            linewidth=1.5, label=series_label(s["keep_real"]))
            if finite(real.get(key)):
                ax.axhline(real[key], color="#555555", linestyle="--", linewidth=1, label="real test text")
            ax.set_title(title, loc="left", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if key == "repetition_rate":
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        fig.supxlabel("generation", fontsize=9)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=min(4, max(1, len(labels))), fontsize=8.5)
        return to_svg(fig, "collapse-text")
