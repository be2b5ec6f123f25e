"""Charts of the controlled experiment: the phase diagram (domains × learning rate) and
the base model's pretraining curve. Same conventions as :mod:`odyssey.report.plots`
(inline SVG, glyphs as paths, labels cleaned)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib as mpl
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from odyssey.report.plots import CHART_RC, clean_label, finite, to_svg


def phase_heatmap(phase: Mapping) -> str | None:
    """Cells coloured by the in-domain change (red: worse, green: better; a symmetric
    log-like scale so that −90% and +5% are both visible), labelled with the change and,
    below it, the forgetting."""
    rows, rates = phase["rows"], phase["rates"]
    if not rows or len(rates) < 2:
        return None
    values = [[(c or {}).get("delta_ppl_pct") for c in r["cells"]] for r in rows]
    # signed log1p of |%|: compresses the distant registers' large gains
    z = [[math.copysign(math.log1p(abs(v)), v) if finite(v) else math.nan for v in row] for row in values]
    magnitudes = [abs(v) for row in z for v in row if math.isfinite(v)] or [1.0]
    top = max(magnitudes)
    with mpl.rc_context({**CHART_RC, "axes.grid": False}):
        fig = Figure(figsize=(1.35 * len(rates) + 3.2, 0.42 * len(rows) + 1.4), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(z, cmap="RdYlGn_r", norm=TwoSlopeNorm(0.0, -top, top), aspect="auto")
        for i, r in enumerate(rows):
            for j, c in enumerate(r["cells"]):
                if not c or not finite(c.get("delta_ppl_pct")):
                    continue
                f = c.get("forgetting_pct")
                label = f"{c['delta_ppl_pct']:+.1f}%" + (f"\n(gen {f:+.1f}%)" if finite(f) else "")
                ax.text(j, i, label.replace("-", "\u2212"), ha="center", va="center", fontsize=7.2,
                        color="#111111")
        ratios = phase.get("ratios") or [None] * len(rates)
        ax.set_xticks(range(len(rates)),
                      [f"{lr:g}" + (f"\n×{q:g}" if finite(q) else "") for lr, q in zip(rates, ratios, strict=True)])
        ax.set_yticks(range(len(rows)), [clean_label(r["name"], 32) for r in rows])
        ax.set_xlabel("peak learning rate (× the base's final pretraining rate)")
        ax.set_title("in-domain perplexity change (general-text change below)\n"
                     "rows: most similar to the pretraining data first", fontsize=9)
        return to_svg(fig, "phase")


def pretraining_curve(curve: Sequence[Mapping], title: str = "") -> str | None:
    """Validation bits per byte (and loss) of the base's pretraining against tokens seen."""
    pts = [(p["tokens_seen"], p["bits_per_byte"]) for p in curve
           if finite(p.get("tokens_seen")) and finite(p.get("bits_per_byte")) and p["tokens_seen"] > 0]
    if len(pts) < 2:
        return None
    xs, ys = zip(*pts, strict=True)
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(6.2, 3.0), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([x / 1e6 for x in xs], ys, marker="o", markersize=3, color="#0072B2")
        ax.set_xlabel("pretraining tokens seen (millions)")
        ax.set_ylabel("general valid bits per byte")
        if title:
            ax.set_title(clean_label(title, 90), fontsize=9)
        return to_svg(fig, "pretraining")
