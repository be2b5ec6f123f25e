"""`odyssey collapse`: recursive training on generated text (model collapse)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from odyssey.cli import make_console
from odyssey.cli.options import option_for
from odyssey.collapse.config import CollapseConfig
from odyssey.config import resolve

console = make_console()


def collapse_command(
    data: str = option_for(CollapseConfig, "data", "--data"),
    model: str = option_for(CollapseConfig, "model", "--model"),
    out: Path = option_for(CollapseConfig, "out", "--out", more="(default: collapse/<data name>)"),
    generations: int = option_for(CollapseConfig, "generations", "--generations"),
    keep_real: str = option_for(CollapseConfig, "keep_real", "--keep-real"),
    sampling: bool = typer.Option(None, "--sampling/--beam", help="sample (temperature, top-p) instead of 5-way beam search"),
    temperature: float = option_for(CollapseConfig, "generation.temperature", "--temperature"),
    top_p: float = option_for(CollapseConfig, "generation.top_p", "--top-p"),
    start: str = option_for(CollapseConfig, "start", "--start"),
    max_blocks: int = option_for(CollapseConfig, "max_blocks", "--max-blocks"),
    detect_model: str = option_for(CollapseConfig, "detect_model", "--detect-model"),
    config: Path = typer.Option(None, "--config", help="YAML file with a CollapseConfig"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
    overrides: list[str] = typer.Argument(None, help="dotted key=value overrides, e.g. recipe.train.epochs=2"),
) -> None:
    """Train generation after generation on text written by the previous one; measure the
    real test split each time; write results.json and report.html.

    Example: odyssey collapse --data corpora/wiki --generations 5 --keep-real 0,0.1
    """
    from odyssey.collapse.run import run_collapse
    from odyssey.errors import ConfigError

    if not data and not config:
        raise ConfigError("--data required", "odyssey collapse --data CORPUS [--generations N] [--keep-real 0,0.1]")
    default_out = f"collapse/{Path(data.rstrip('/')).name}" if data else None
    cfg = resolve(CollapseConfig, config, overrides, values={
        "data": data, "model": model, "generations": generations, "keep_real": keep_real,
        "generation.strategy": None if sampling is None else ("sample" if sampling else "beam"),
        "generation.temperature": temperature, "generation.top_p": top_p, "start": start,
        "max_blocks": max_blocks, "detect_model": detect_model, "out": str(out) if out else None,
    } | ({} if out or (config and "out" in _yaml_keys(config)) else {"out": default_out}))
    results = run_collapse(cfg, progress=progress, console=console)
    render_results(results)
    console.print(f"report: {Path(cfg.out) / 'report.html'}   results: {Path(cfg.out) / 'results.json'}")


def _yaml_keys(path: Path) -> set[str]:
    from odyssey.config import load_yaml

    return set(load_yaml(path))


def render_results(results: dict) -> None:
    for s in results["series"]:
        table = Table(title=f"{s['keep_real'] * 100:g}% real data kept: the real test split by generation",
                      title_justify="left")
        for col in ("gen", "test ppl", "change", "tail", "distinct-2", "vocab", "repetition"):
            table.add_column(col, justify="right")
        for r in s["generations"]:
            change = r.get("ppl_change_pct")
            table.add_row(str(r["generation"]), f"{r['test_ppl']:.2f}",
                          "–" if change is None else f"{change:+.1f}%", f"{r['tail_mass']:.1%}",
                          f"{r['distinct_2']:.3f}", f"{r['vocab_size']:,}", f"{r['repetition_rate']:.1%}")
        console.print(table)
    from odyssey.collapse.report import detection_entries
    from odyssey.collapse.run import detection_line

    for name, det in (results.get("detection") or {}).items():
        for entry in detection_entries(det):
            console.print("detection:" + detection_line(name, entry)[1:], highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("collapse")(collapse_command)
