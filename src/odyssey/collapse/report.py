"""The collapse report: one self-contained HTML file (inline CSS and SVG) with the
readout, perplexity by generation per fraction of real data kept, histograms of the
generated text's perplexity under generation 0, text statistics, detection results and
samples. Generated text is untrusted: the template escapes everything; the only markup
passed through is the SVG that matplotlib writes."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from odyssey.collapse import plots
from odyssey.io import atomic_write
from odyssey.report.html import fmt_duration, fmt_pct, fmt_ppl, plain_text


def readout(results: Mapping) -> list[str]:
    """Sentences computed from the numbers: the rise of real-test perplexity per series,
    and how well the last generation's text is detected."""
    out = []
    for s in results.get("series", []):
        rows = s.get("generations", [])
        if len(rows) < 2:
            continue
        first, last = rows[0], rows[-1]
        rises = sum(1 for a, b in zip(rows, rows[1:], strict=False) if b["test_ppl"] > a["test_ppl"])
        out.append(
            f"With {s['keep_real'] * 100:g}% real data kept, perplexity on the real test split went from "
            f"{fmt_ppl(first['test_ppl'])} (generation 0) to {fmt_ppl(last['test_ppl'])} at generation "
            f"{last['generation']} ({fmt_pct(last.get('ppl_change_pct'))}); it rose in {rises} of "
            f"{len(rows) - 1} steps. Tail mass: {last['tail_mass']:.1%} of generation {last['generation']}'s "
            f"sequences lie above generation 0's {results['experiment']['config'].get('tail_quantile', 0.95):.0%} "
            f"quantile of perplexity.")
    for name, det in (results.get("detection") or {}).items():
        for entry in detection_entries(det):
            auto = entry.get("auto")
            if auto:
                out.append(f"Series {name}: a detector fitted on the valid blocks ({auto['statistic']}, generated "
                           f"text scoring {auto['direction']}) tells generation {entry['generation']}'s text from "
                           f"real held-out text with AUROC {auto['auroc']:.3f}.")
            elif entry.get("statistics"):
                stats = entry["statistics"]
                best = max(stats, key=lambda k: stats[k].get("best_auroc", stats[k]["auroc"]))
                out.append(f"Series {name}: generation {entry['generation']}'s text is told from real held-out "
                           f"text with AUROC {stats[best].get('best_auroc', stats[best]['auroc']):.3f} ({best}, "
                           "direction chosen on the same text).")
    return out or ["No generation has finished yet."]


def detection_entries(det: Mapping) -> list[Mapping]:
    """A series' detection results, one per detected generation, in order (results written
    before ``by_generation`` existed hold only the last)."""
    by_gen = det.get("by_generation")
    if not by_gen:
        return [det]
    return [by_gen[k] for k in sorted(by_gen, key=int)]


def build_context(results: Mapping, figures_dir: Path | None = None) -> dict:
    """What the template shows; with ``figures_dir``, the two main charts are also saved
    there as ``perplexity.png`` and ``histograms.png``."""
    exp = results.get("experiment", {})
    cfg = exp.get("config", {})
    gen = cfg.get("generation", {})
    series = results.get("series", [])
    png = (lambda name: figures_dir / name) if figures_dir else (lambda name: None)
    charts = {
        "ppl": plots.perplexity_by_generation(series, png=png("perplexity.png")),
        "hist": plots.histogram_panels(series, tail_quantile=cfg.get("tail_quantile", 0.95),
                                       png=png("histograms.png")),
        "text": plots.text_stat_panels(series, results.get("real", {})),
    }
    decoding = (f"{gen.get('num_beams')}-way beam search" if gen.get("strategy") == "beam"
                else f"sampling (temperature {gen.get('temperature')}, top-p {gen.get('top_p')})")
    meta = [
        ("Model", plain_text(exp.get("model")) or "–"),
        ("Data", plain_text(exp.get("data")) or "–"),
        ("Generation", f"{gen.get('prompt_tokens')}-token prompts continued by {gen.get('new_tokens')} tokens, "
                       f"{decoding}"),
        ("Training", f"from the {'pretrained start' if cfg.get('start') == 'base' else 'previous generation'}, "
                     f"{cfg.get('recipe', {}).get('train', {}).get('epochs')} epochs, "
                     f"{cfg.get('select')} checkpoint by validation"),
        ("Blocks", ", ".join(f"{k} {v:,}" for k, v in results.get("real", {}).get("blocks", {}).items())),
        ("Machine", plain_text(exp.get("machine")) or "–"),
        ("Total time", fmt_duration(exp.get("seconds"))),
        ("odyssey", plain_text(exp.get("odyssey_version")) or "–"),
    ]
    samples = []
    for s in series:
        rows = s.get("generations", [])
        if rows:
            for r in (rows[0], rows[-1]) if len(rows) > 1 else rows[:1]:
                samples.append({"title": f"{s['name']}, generation {r['generation']}",
                                "texts": [plain_text(t, 2000) for t in r.get("samples", [])]})
    detection, fitted = [], []
    for name, det in (results.get("detection") or {}).items():
        for entry in detection_entries(det):
            for stat, v in (entry.get("statistics") or {}).items():
                detection.append({"series": name, "generation": entry.get("generation"), "statistic": stat,
                                  "auroc_higher": v.get("auroc_higher", v["auroc"] if v.get("rule") == ">" else None),
                                  "auroc_lower": v.get("auroc_lower", v["auroc"] if v.get("rule") == "<" else None),
                                  **{k: v.get(k) for k in ("rule", "threshold", "tpr", "real", "generated")}})
            if entry.get("auto"):
                fitted.append({"series": name, "generation": entry.get("generation"), **entry["auto"]})
    return {"meta": meta, "readout": readout(results), "series": series, "real": results.get("real", {}),
            "charts": {k: Markup(v) for k, v in charts.items() if v}, "detection": detection, "fitted": fitted,
            "samples": samples, "fpr": cfg.get("detect_fpr")}


def render_report(results: Mapping, out_path: str | os.PathLike, figures_dir: str | os.PathLike | None = None) -> Path:
    """Write the collapse report for ``results`` (the content of ``results.json``); with
    ``figures_dir``, also its two main charts as PNG files there."""
    env = Environment(loader=PackageLoader("odyssey.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ppl=fmt_ppl, pct=fmt_pct, duration=fmt_duration, num=_num)
    html = env.get_template("collapse.html.j2").render(
        **build_context(results, Path(figures_dir) if figures_dir else None))
    out = Path(out_path)
    with atomic_write(out) as f:
        f.write(html)
    return out


def _num(v, fmt: str = ".3f") -> str:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "–"
    return format(v, fmt)
