"""The study report's charts, as inline SVG markup.

Built on :class:`matplotlib.figure.Figure` directly (no ``pyplot``): no global
figure registry, no backend switch, nothing left behind between calls. Style
settings are applied with ``rc_context`` around each whole chart, including the
save, because tick labels are created lazily at draw time.

Labels come from corpus-controlled names, so:

- math text is off (``text.parse_math``): a ``$`` in a name stays a dollar sign;
- control characters are dropped and long names shortened (the table has them in full);
- glyphs are written as paths (``svg.fonttype = "path"``) so the chart looks the same
  on any machine; the label text itself only survives in XML comments, which
  matplotlib escapes (``&``, ``<``, ``>`` and ``--``). ``tests/report`` checks it.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, LogFormatter, NullFormatter

# Colour-blind-safe (Okabe-Ito) colours per domain kind; other kinds take the rest in order.
KIND_COLORS = {"wikipedia-topic": "#0072B2", "register": "#E69F00", "custom": "#009E73",
               "in-distribution": "#CC79A7", "seen": "#D55E00"}
_EXTRA_COLORS = ("#56B4E9", "#999999", "#F0E442", "#000000")
KIND_LABELS = {"wikipedia-topic": "Wikipedia topic", "register": "register", "custom": "custom",
               "in-distribution": "in-distribution (control)", "seen": "seen in pretraining (control)"}
GENERAL_COLOR = "#666666"

CHART_RC = {
    "svg.fonttype": "path",
    "text.parse_math": False,
    "font.family": "DejaVu Sans",  # shipped with matplotlib: same metrics everywhere
    "font.size": 9.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#444444",
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
}
# No <metadata> block: it would carry a date (non-reproducible) and external URIs.
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def kind_colors(kinds: Iterable[str]) -> dict[str, str]:
    """Colour per kind: the fixed ones for known kinds, then a palette in order of appearance."""
    colors: dict[str, str] = {}
    extra = iter(_EXTRA_COLORS * 4)
    for kind in kinds:
        if kind not in colors:
            colors[kind] = KIND_COLORS.get(kind) or next(extra, "#777777")
    return colors


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, clean_label(kind, 24))


def clean_label(text: object, limit: int = 30) -> str:
    """One line of plain text, at most ``limit`` characters (ellipsis when cut)."""
    s = " ".join(_CONTROL.sub(" ", str(text)).split())
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def finite(v: object) -> bool:
    """Whether ``v`` is a real, finite number (a bool is not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def to_svg(fig: Figure, salt: str) -> str:
    """The figure as an ``<svg>`` element that scales to its container.

    ``svg.hashsalt`` keeps the clip-path ids of different charts on one page distinct
    (and the output deterministic)."""
    buf = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and the DOCTYPE (a DTD URL)
    head, rest = svg.split(">", 1)
    width = re.search(r'\swidth="([0-9.]+)pt"', head)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    # Scales down to its container, never up past its natural size (a lone panel stays small).
    cap = f' style="max-width: {float(width.group(1)):.0f}pt"' if width else ""
    return f'{head} class="chart"{cap} preserveAspectRatio="xMidYMid meet">{rest}'


def _kind_legend(fig: Figure, kinds: Sequence[str], colors: Mapping[str, str]) -> None:
    """One legend entry per kind shown, in the order of ``colors``."""
    handles = [Patch(color=c, label=kind_label(k)) for k, c in colors.items() if k in kinds]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4),
               fontsize=8.5, handlelength=1.2, columnspacing=1.2)


def change_bars(domains: Sequence[Mapping], colors: Mapping[str, str]) -> str | None:
    """Horizontal bars of in-domain perplexity change (%), worst at the top, coloured by kind.

    ``domains``: dicts with ``name``, ``kind``, ``delta_ppl_pct``. None when nothing to plot."""
    rows = [(clean_label(d["name"]), d["kind"], d["delta_ppl_pct"])
            for d in domains if finite(d.get("delta_ppl_pct"))]
    if not rows:
        return None
    rows.sort(key=lambda r: r[2], reverse=True)
    names, kinds, deltas = zip(*rows, strict=True)
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(6.4, 1.3 + 0.3 * len(rows)), layout="constrained")
        ax = fig.add_subplot()
        y = range(len(rows))
        bars = ax.barh(y, deltas, height=0.65, color=[colors[k] for k in kinds], zorder=2)
        ax.bar_label(bars, labels=[f"{d:+.1f}%".replace("-", "\u2212") for d in deltas], padding=3, fontsize=8)
        ax.axvline(0, color="#222222", linewidth=0.9, zorder=3)
        ax.set_yticks(list(y), names)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        lo, hi = min(0.0, *deltas), max(0.0, *deltas)
        pad = 0.2 * (hi - lo or 1.0)  # room for the value labels
        ax.set_xlim(lo - (pad if lo < 0 else 0.05 * pad), hi + (pad if hi > 0 else 0.05 * pad))
        ax.set_xlabel("in-domain perplexity change (%)    ← better | worse →")
        _kind_legend(fig, kinds, colors)
        return to_svg(fig, "bars")


def _label_candidates() -> list[tuple[float, float, str, str]]:
    """Offsets (points) and alignments to try for a label, nearest first."""
    near = [(6, 3, "left", "bottom"), (6, -3, "left", "top"),
            (-6, 3, "right", "bottom"), (-6, -3, "right", "top"),
            (0, 8, "center", "bottom"), (0, -8, "center", "top")]
    far = []
    for r in (20, 32, 46):  # further out, joined to the point by a leader line
        for deg in (30, -30, 150, -150, 90, -90, 0, 180):
            dx, dy = r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg))
            ha = "left" if dx > 1 else "right" if dx < -1 else "center"
            far.append((dx, dy, ha, "bottom" if dy > 0 else "top" if dy < 0 else "center"))
    return near + far


def _place_labels(fig: Figure, ax, points: Sequence[tuple[float, float, str]]) -> int:
    """Label each point where its label overlaps neither another label nor a point nor
    the axes' edge (a greedy pass over a few offsets); leave it out where no such place
    is found. Returns how many labels were left out."""
    canvas = FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # run the layout so that pixel positions are final
    renderer = canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    pixels = [tuple(ax.transData.transform((x, y))) for x, y, _ in points]
    taken = [(px - 4, py - 4, px + 4, py + 4) for px, py in pixels]  # the markers

    def free(box) -> bool:
        if box[0] < inside.x0 or box[2] > inside.x1 or box[1] < inside.y0 or box[3] > inside.y1:
            return False
        return all(min(box[2], o[2]) <= max(box[0], o[0]) or min(box[3], o[3]) <= max(box[1], o[1])
                   for o in taken)

    # Isolated points first: they are easy, and the crowd then fills in around them.
    def crowding(i: int) -> float:
        return sum(math.exp(-math.dist(pixels[i], p) / 30) for p in pixels)

    probe = ax.annotate("", (0, 0), xytext=(0, 0), textcoords="offset points", fontsize=8)
    left_out = 0
    for i in sorted(range(len(points)), key=crowding):
        x, y, label = points[i]
        probe.xy = (x, y)
        probe.set_text(label)
        for dx, dy, ha, va in _label_candidates():
            probe.set_position((dx, dy))
            probe.set_ha(ha)
            probe.set_va(va)
            e = probe.get_window_extent(renderer)
            box = (e.x0 - 1.5, e.y0 - 1.5, e.x1 + 1.5, e.y1 + 1.5)
            if free(box):
                break
        else:
            left_out += 1
            continue
        leader = ({"arrowstyle": "-", "color": "#9a9a9a", "linewidth": 0.6, "shrinkA": 1,
                   "shrinkB": 4} if math.hypot(dx, dy) > 10 else None)
        ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8,
                    ha=ha, va=va, zorder=4, arrowprops=leader)
        taken.append(box)
    probe.remove()
    return left_out


def change_scatter(domains: Sequence[Mapping], colors: Mapping[str, str]) -> str | None:
    """In-domain change % (x) against general-text change % (y), one labelled point per domain.

    ``domains``: dicts with ``name``, ``kind``, ``delta_ppl_pct``, ``forgetting_pct``."""
    rows = [(d["delta_ppl_pct"], d["forgetting_pct"], clean_label(d["name"], 24), d["kind"])
            for d in domains
            if finite(d.get("delta_ppl_pct")) and finite(d.get("forgetting_pct"))]
    if not rows:
        return None
    xs, ys, labels, kinds = zip(*rows, strict=True)
    with mpl.rc_context(CHART_RC):
        fig = Figure(figsize=(6.4, 4.9), layout="constrained")
        ax = fig.add_subplot()
        ax.axhline(0, color="#222222", linewidth=0.8, zorder=1)
        ax.axvline(0, color="#222222", linewidth=0.8, zorder=1)
        ax.scatter(xs, ys, s=42, c=[colors[k] for k in kinds], edgecolors="white",
                   linewidths=0.8, zorder=3)

        def limits(vals):  # include 0, and leave room for labels
            lo, hi = min(0.0, *vals), max(0.0, *vals)
            pad = 0.22 * (hi - lo or 1.0)
            return lo - pad, hi + pad

        ax.set_xlim(*limits(xs))
        ax.set_ylim(*limits(ys))
        ax.set_xlabel("in-domain perplexity change (%)    ← better | worse →")
        ax.set_ylabel("general-text perplexity change (%)\n← less | more forgetting →")
        _kind_legend(fig, kinds, colors)
        _place_labels(fig, ax, list(zip(xs, ys, labels, strict=True)))
        return to_svg(fig, "scatter")


def _series(rows: Iterable[Mapping], split: str) -> tuple[list[float], list[float], bool]:
    """(x, perplexity, x_is_tokens) of one split's eval rows, in training order."""
    pts = []
    tokens = True
    for r in rows:
        if not isinstance(r, Mapping) or r.get("kind") != "eval" or r.get("split") != split:
            continue
        ppl = r.get("perplexity")
        x = r.get("tokens_seen")
        if not finite(x):
            x, tokens = r.get("step"), False
        if finite(x) and finite(ppl) and ppl > 0:
            pts.append((float(x), float(ppl)))
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts], tokens


def _perplexity_axis(ax, values: Sequence[float], color: str) -> None:
    """Linear y, or log y when the series spans more than a factor of 10 (a loss spike);
    plain tick labels (the default log formatter writes math text, which is off)."""
    if not values:
        return
    ax.tick_params(axis="y", which="both", colors=color, labelsize=7.5)
    if max(values) > 10 * min(values):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))
    else:
        ax.locator_params(axis="y", nbins=5)
        # At least a 5% span, so a 0.2% wobble does not fill the panel like a real change.
        lo, hi = min(values), max(values)
        mid = (lo + hi) / 2
        if hi - lo < 0.05 * mid:
            ax.set_ylim(mid * 0.975, mid * 1.025)


def curve_panels(curves: Mapping[str, Sequence[Mapping]], kinds: Mapping[str, str],
                 colors: Mapping[str, str], order: Sequence[str] = ()) -> str | None:
    """Small multiples, one panel per domain: in-domain validation perplexity (left axis)
    and general-text perplexity (right axis) against tokens seen.

    Two y axes because the two perplexities can differ several-fold, which on one
    shared axis flattens the change that matters. ``curves``: domain name -> metrics
    rows; ``kinds``: domain name -> kind; ``order``: names to draw first (the rest
    follow in ``curves`` order)."""
    names = [n for n in dict.fromkeys([*order, *curves]) if n in curves]
    panels = []
    for name in names:
        valid = _series(curves[name], "valid")
        general = _series(curves[name], "general")
        if valid[0] or general[0]:
            panels.append((name, valid, general))
    if not panels:
        return None
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with mpl.rc_context(CHART_RC):
        # At least 5 inches wide, so the legend fits above a lone panel.
        fig = Figure(figsize=(max(5.0, 3.05 * ncols + 0.3), 2.3 * nrows + 0.5 + (ncols < 3) * 0.2),
                     layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        any_steps = False
        for ax, (name, valid, general) in zip(axes.flat, panels, strict=False):
            color = colors.get(kinds.get(name, ""), "#777777")
            any_steps |= not (valid[2] and general[2])
            ax.set_title(clean_label(name, 34), loc="left", fontsize=9)
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", labelsize=7.5)
            ax.locator_params(axis="x", nbins=4)
            if valid[0]:
                ax.plot(valid[0], valid[1], color=color, marker="o", markersize=2.5,
                        linewidth=1.6, zorder=3)
                _perplexity_axis(ax, valid[1], color)
            else:
                ax.set_yticks([])
            if general[0]:
                gx = ax.twinx()
                gx.spines["right"].set_visible(True)
                gx.spines["right"].set_color(GENERAL_COLOR)
                gx.grid(False)
                gx.plot(general[0], general[1], color=GENERAL_COLOR, linestyle="--",
                        marker="o", markersize=2, linewidth=1.1, zorder=2)
                _perplexity_axis(gx, general[1], GENERAL_COLOR)
        fig.supxlabel("steps" if any_steps else "tokens seen", fontsize=9)
        handles = [
            Line2D([], [], color="#333333", marker="o", markersize=3,
                   label="in-domain validation perplexity (left axis; colour = kind)"),
            Line2D([], [], color=GENERAL_COLOR, linestyle="--", marker="o", markersize=2,
                   label="general-text perplexity (right axis)"),
        ]
        fig.legend(handles=handles, loc="outside upper center", ncols=2 if ncols >= 3 else 1,
                   fontsize=8.5)
        return to_svg(fig, "curves")
