"""`odyssey study` and `odyssey report`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from odyssey.cli import make_console
from odyssey.cli.edge import energy_section
from odyssey.cli.options import option_for
from odyssey.config import resolve
from odyssey.study.config import StudyConfig

console = make_console()


def study_command(
    config: Path = typer.Option(None, "--config", help="study YAML: model, general, domains, recipe"),
    out: Path = option_for(StudyConfig, "out", "--out"),
    model: str = option_for(StudyConfig, "model", "--model"),
    only: list[str] = option_for(StudyConfig, "only", "--only", more="(repeatable)"),
    executor: str = option_for(StudyConfig, "executor", "--executor", more="(ray needs the ray extra of odyssey)"),
    jobs: str = option_for(StudyConfig, "jobs", "--jobs"),
    address: str = option_for(StudyConfig, "ray_address", "--address", more="(with --executor ray)"),
    mitigations: str = option_for(StudyConfig, "mitigations", "--mitigations", more="(comma-separated)"),
    probes: bool = typer.Option(None, "--probes/--no-probes", help="run the bias and memorization probes on "
                                "each plainly adapted model (default: on)"),
    lr: str = option_for(StudyConfig, "recipe.optim.lr", "--lr", more="(comma-separated: one run per rate and "
                         "domain, the first the reference)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="start the study over: remove the runs, store, "
                                   "results and report an earlier study wrote into --out"),
    rerun_changed: bool = typer.Option(False, "--rerun-changed", help="redo the stored runs whose config "
                                       "changed (otherwise the study refuses to run, naming what differs)"),
    redo: list[str] = typer.Option(None, "--redo", help="redo this domain's runs from scratch (repeatable)"),
    overrides: list[str] = typer.Argument(None, help="dotted key=value overrides, e.g. recipe.optim.lr=1e-4"),
) -> None:
    """Evaluate, adapt one epoch and evaluate again on every domain; write results and a report."""
    from odyssey.study.runner import run_study

    cfg = resolve(StudyConfig, config, overrides, base={"energy": energy_section()}, values={
        "out": str(out) if out else None, "model": model, "only": only or None, "executor": executor, "jobs": jobs,
        "ray_address": address, "mitigations": mitigations, "recipe.optim.lr": lr,
        "probes.run": None if probes is None else (["bias", "memorization"] if probes else [])})
    results = run_study(cfg, overwrite=overwrite, rerun_changed=rerun_changed, redo=redo or ())
    render_results(results)
    console.print(f"report: {Path(cfg.out) / 'report.html'}   results: {Path(cfg.out) / 'results.json'}")


def report_command(study_dir: Path = typer.Argument(..., help="a study directory")) -> None:
    """Rebuild results.json and report.html of a study from its results.sqlite."""
    from odyssey.errors import DataError
    from odyssey.results_store import ResultsStore
    from odyssey.study.runner import write_outputs

    if not (study_dir / "results.sqlite").is_file():
        raise DataError(f"{study_dir} has no results.sqlite", "give the directory an `odyssey study` wrote")
    with ResultsStore(study_dir / "results.sqlite") as store:
        results = write_outputs(study_dir, store)
    render_results(results)
    console.print(f"report: {study_dir / 'report.html'}")


def render_results(results: dict) -> None:
    table = Table(title=f"{results['study']['name']}: perplexity on each domain's test split, before → after")
    # forgetting.tasks: mean task accuracy before → after, and its change in points
    tasks = any(d.get("task_acc_change") is not None for d in results["domains"])
    cols = ("domain", "kind", "before", "after", "change", "general change") + (
        ("task acc before → after", "task change") if tasks else ())
    for col in cols:
        table.add_column(col, justify="left" if col in ("domain", "kind") else "right")
    for d in sorted(results["domains"], key=lambda d: d["delta_ppl_pct"]):
        style = "red" if d["delta_ppl_pct"] > 0 else "green"
        row = [d["name"], d["kind"], f"{d['ppl_before']:.2f}", f"{d['ppl_after']:.2f}",
               Text(f"{d['delta_ppl_pct']:+.2f}%", style), f"{d['forgetting_pct']:+.2f}%"]
        if tasks:
            change = d.get("task_acc_change")
            row += ["–", "–"] if change is None else [
                f"{d['task_acc_before']:.1f}% → {d['task_acc_after']:.1f}%",
                Text(f"{change:+.1f} pts", "red" if change < 0 else "green" if change > 0 else "")]
        table.add_row(*row)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("study")(study_command)
    app.command("report")(report_command)
