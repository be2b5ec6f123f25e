"""`odyssey detect`: how likely each document is to be model-generated."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from odyssey.cli.options import option_for
from odyssey.collapse.config import DetectConfig
from odyssey.config import resolve
from odyssey.io import json_safe

console = Console()
TABLE_ROWS = 40  # documents shown in the terminal; --json gives all


def detect_command(
    data: str = typer.Option(None, "--data", help="CORPUS[:split] (default split test) or a .txt/.jsonl path"),
    eval_: Optional[tuple[str, str]] = typer.Option(  # noqa: UP045 (typer reads the annotation)
        None, "--eval", help="REAL GENERATED: two data specs; report AUROC and the threshold at --fpr",
        show_default=False),
    model: str = option_for(DetectConfig, "model", "--model"),
    observer: str = option_for(DetectConfig, "observer", "--observer"),
    score: str = option_for(DetectConfig, "score", "--score"),
    fpr: float = option_for(DetectConfig, "fpr", "--fpr"),
    max_tokens: int = option_for(DetectConfig, "max_tokens", "--max-tokens"),
    config: Path = typer.Option(None, "--config", help="YAML file with a DetectConfig"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on stdout"),
    overrides: list[str] = typer.Argument(None, help="DetectConfig key=value overrides, e.g. batch_size=16"),
) -> None:
    """Per-document scores of being model-generated: perplexity and token-rank statistics
    under a scoring model, and with --observer the Binoculars score. With --eval REAL
    GENERATED: how well the scores separate the two sets.
    """
    from odyssey.collapse.detect import evaluate_detection, load_scorers, score_documents
    from odyssey.corpora.store import load_documents
    from odyssey.errors import ConfigError

    cfg = resolve(DetectConfig, config, overrides, values={
        "model": model, "observer": observer, "score": score, "fpr": fpr, "max_tokens": max_tokens})
    pair = [p for p in (eval_ or ()) if p]
    if bool(data) == bool(pair) or (pair and len(pair) != 2):
        raise ConfigError("give either --data D or --eval REAL GENERATED",
                          "odyssey detect --data CORPUS[:split] | --eval REAL GENERATED")
    scorers = load_scorers(cfg)
    if data:
        rows = score_documents(load_documents(data, default_split="test"), cfg, scorers=scorers,
                               progress=not as_json)
        if as_json:
            print(json.dumps({"model": cfg.model, "observer": cfg.observer, "statistic": cfg.statistic(),
                              "documents": json_safe(rows)}))
            return
        render_scores(rows, cfg)
        return
    real = score_documents(load_documents(pair[0], default_split="test"), cfg, scorers=scorers, progress=not as_json)
    generated = score_documents(load_documents(pair[1], default_split="test"), cfg, scorers=scorers,
                                progress=not as_json)
    result = evaluate_detection(real, generated, cfg.fpr)
    if as_json:
        print(json.dumps({"real": pair[0], "generated": pair[1], "fpr": cfg.fpr, "statistic": cfg.statistic(),
                          "statistics": json_safe(result)}))
        return
    render_evaluation(result, cfg, pair)


def render_scores(rows: list[dict], cfg: DetectConfig) -> None:
    stat = cfg.statistic()
    table = Table(title=f"documents by {stat} (generated text scores {'high' if stat == 'top1' else 'low'})",
                  title_justify="left")
    cols = ["id", "tokens", "perplexity", "log_rank", "top1"] + (["binoculars"] if cfg.observer else [])
    for c in cols:
        table.add_column(c, justify="left" if c == "id" else "right")
    ordered = sorted(rows, key=lambda r: (not math.isfinite(r[stat]), -r[stat] if stat == "top1" else r[stat]))
    for r in ordered[:TABLE_ROWS]:
        table.add_row(r["id"], str(r["tokens"]), *(f"{r[c]:.4g}" for c in cols[2:]))
    console.print(table)
    if len(rows) > TABLE_ROWS:
        console.print(f"… {len(rows) - TABLE_ROWS} more documents (--json lists all)")


def render_evaluation(result: dict, cfg: DetectConfig, pair: list[str]) -> None:
    table = Table(title=f"real {pair[0]} vs generated {pair[1]}", title_justify="left")
    for c in ("statistic", "AUROC", f"threshold at {cfg.fpr:.0%} FPR", "FPR", "TPR"):
        table.add_column(c, justify="left" if c == "statistic" else "right")
    for stat, v in result.items():
        mark = " *" if stat == cfg.statistic() else ""
        table.add_row(stat + mark, f"{v['auroc']:.4f}", f"{v['rule']} {v['threshold']:.6g}", f"{v['fpr']:.1%}",
                      f"{v['tpr']:.1%}")
    console.print(table)
    console.print("* the statistic --score chose; a document counts as generated when its value passes the "
                  "threshold (odyssey corpus build --drop-synthetic THRESHOLD uses it)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("detect")(detect_command)
