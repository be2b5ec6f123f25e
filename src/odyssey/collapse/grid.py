"""The detection grid: how well each statistic tells generated text from real text, by
decoding method and generation (`odyssey detect grid`).

One collapse experiment (:func:`odyssey.collapse.run.run_collapse`, no real data kept) per
domain and decoding, each scoring the text of the generations asked for; the grid collects
their detection results into one table. Each experiment keeps its own directory, report and
resume rules, so an interrupted grid continues where it stopped.

Layout of ``OUT``: ``grid.json``, ``grid.md`` and one experiment per ``<domain>/<decoding>/``.

>>> grid = run_grid(["world/domains/wiki-history"], "grid", overrides=["max_blocks=96"])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from odyssey.collapse.config import STATISTICS, CollapseConfig
from odyssey.config import resolve
from odyssey.errors import ConfigError

# The decodings of the grid: GenerationConfig settings by name.
DECODINGS: dict[str, dict] = {
    "beam": {"strategy": "beam"},
    "sample-t1.0": {"strategy": "sample", "temperature": 1.0, "top_p": 1.0},
    "sample-t0.7": {"strategy": "sample", "temperature": 0.7, "top_p": 1.0},
    "top-p-0.9": {"strategy": "sample", "temperature": 1.0, "top_p": 0.9},
}


def grid_configs(data: Sequence[str], out: str | Path, *, decodings: Sequence[str] = tuple(DECODINGS),
                 generations: Sequence[int] = (1, 3), overrides: Sequence[str] = (),
                 model: str | None = None, detect_model: str | None = None) -> list[tuple[str, str, CollapseConfig]]:
    """``(domain, decoding, config)`` of every experiment of the grid."""
    unknown = [d for d in decodings if d not in DECODINGS]
    if unknown:
        raise ConfigError(f"unknown decoding(s) {', '.join(unknown)}", f"choose from {', '.join(DECODINGS)}")
    names = [Path(str(d).rstrip("/")).name for d in data]
    if len(set(names)) != len(names):
        raise ConfigError("two domains of the grid have the same folder name", "give each domain once")
    out = Path(out)
    configs = []
    for spec, name in zip(data, names, strict=True):
        for decoding in decodings:
            values = {"data": str(spec), "out": str(out / name / decoding), "model": model, "detect_model": detect_model,
                      "generations": max(generations), "keep_real": [0.0],
                      "detect_generations": sorted(set(generations)),
                      **{f"generation.{k}": v for k, v in DECODINGS[decoding].items()}}
            configs.append((name, decoding, resolve(CollapseConfig, None, list(overrides), values=values)))
    return configs


def grid_rows(domain: str, decoding: str, results: dict) -> list[dict]:
    """One row per detected generation: each statistic's AUROC (generated scoring higher;
    below 0.5 it scores lower) and the detector fitted on the valid blocks, on test."""
    rows = []
    for det in (results.get("detection") or {}).values():
        for g, entry in sorted((det.get("by_generation") or {}).items(), key=lambda kv: int(kv[0])):
            stats = entry.get("statistics", {})
            auto = entry.get("auto") or {}
            rows.append({"domain": domain, "decoding": decoding, "generation": int(g),
                         "scorer": scorer_name(entry.get("scorer")),
                         "real": next(iter(stats.values()), {}).get("real"),
                         "generated": next(iter(stats.values()), {}).get("generated"),
                         "auroc_higher": {s: v["auroc_higher"] for s, v in stats.items()},
                         "fitted": {k: auto.get(k) for k in ("statistic", "direction", "auroc", "fpr", "tpr")}
                         if auto else None})
    return rows


def scorer_name(scorer: str | None) -> str:
    """A scoring model as the grid shows it: a model directory by its folder name."""
    if not scorer:
        return "–"
    return Path(scorer).name if Path(scorer).exists() else scorer


def run_grid(data: Sequence[str], out: str | Path, *, decodings: Sequence[str] = tuple(DECODINGS),
             generations: Sequence[int] = (1, 3), overrides: Sequence[str] = (), model: str | None = None,
             detect_model: str | None = None,
             progress: bool = True, console: Console | None = None) -> dict:
    """Run (or continue) every experiment of the grid; write ``grid.json`` and ``grid.md``."""
    from odyssey import __version__
    from odyssey.collapse.run import run_collapse
    from odyssey.io import atomic_write, write_json
    from odyssey.machine import describe

    console = console or Console(stderr=True)
    configs = grid_configs(data, out, decodings=decodings, generations=generations, overrides=overrides,
                           model=model, detect_model=detect_model)
    rows, seconds = [], {}
    for domain, decoding, cfg in configs:
        console.print(f"grid: {domain}, {decoding}", highlight=False)
        started = time.perf_counter()
        results = run_collapse(cfg, progress=progress, console=console)
        seconds[f"{domain}/{decoding}"] = results["experiment"].get("seconds") or time.perf_counter() - started
        rows += grid_rows(domain, decoding, results)
    grid = {"model": configs[0][2].model if configs else model, "data": list(map(str, data)),
            "decodings": {d: DECODINGS[d] for d in decodings}, "generations": sorted(set(generations)),
            "overrides": list(overrides), "rows": rows, "seconds": seconds,
            "total_seconds": sum(seconds.values()), "odyssey_version": __version__, "machine": describe()}
    out = Path(out)
    write_json(out / "grid.json", grid)
    with atomic_write(out / "grid.md") as f:
        f.write(grid_markdown(rows))
    return grid


def grid_markdown(rows: Sequence[dict]) -> str:
    """The grid as a Markdown table: AUROC with generated text scoring higher per statistic
    (below 0.5: it scores lower), and the fitted detector's statistic, direction and test AUROC."""
    stats = [s for s in STATISTICS if any(s in r["auroc_higher"] for r in rows)]
    head = ["domain", "decoding", "gen", "scorer", *stats, "fitted on valid: statistic", "test AUROC"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * 4 + ["---:"] * len(stats) + ["---", "---:"])
             + " |"]
    for r in rows:
        fit = r.get("fitted") or {}
        arrow = {"higher": "↑", "lower": "↓"}.get(fit.get("direction"), "")
        cells = [r["domain"], r["decoding"], str(r["generation"]), r.get("scorer", "–"),
                 *(_fmt(r["auroc_higher"].get(s)) for s in stats),
                 f"{fit['statistic']} {arrow}" if fit else "–", _fmt(fit.get("auroc"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"
