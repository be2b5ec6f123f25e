"""`odyssey evaluate`: perplexity and bits per byte of a model on held-out text."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from odyssey.cli import make_console
from odyssey.cli.edge import energy_config
from odyssey.cli.options import option_for
from odyssey.config import resolve
from odyssey.evaluate.config import EvalConfig

console = make_console()


def evaluate_command(
    model: str = typer.Option(None, "--model", help="hub id, local or run directory, .gguf file, adapter "
                              "directory, or a name from `odyssey models`"),
    data: str = typer.Option(None, "--data", help="CORPUS[:split] (default split test) or a .txt/.jsonl path"),
    tasks: str = typer.Option(None, "--tasks", help="lm-evaluation-harness tasks to run too, comma-separated "
                              "(odyssey-general: offline, from the default world's general test split)"),
    task_limit: int = typer.Option(None, "--task-limit", help="documents per task (default: all)"),
    out: Path = typer.Option(None, "--out", help="directory for eval.json and tokens.safetensors"),
    config: Path = typer.Option(None, "--config", help="YAML file with an EvalConfig"),
    context_length: int = option_for(EvalConfig, "context_length", "--context-length"),
    stride: int = option_for(EvalConfig, "stride", "--stride"),
    batch_size: int = option_for(EvalConfig, "batch_size", "--batch-size"),
    max_documents: int = option_for(EvalConfig, "max_documents", "--max-documents"),
    max_tokens: int = option_for(EvalConfig, "max_tokens", "--max-tokens"),
    dtype: str = option_for(EvalConfig, "dtype", "--dtype"),
    device: str = option_for(EvalConfig, "device", "--device"),
    progress: bool = option_for(EvalConfig, "progress", "--progress/--no-progress"),
    revision: str = typer.Option(None, "--revision", help="model revision (branch, tag or commit) on the hub"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="allow non-safetensors weights"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="run the model repo's own code"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on stdout"),
    overrides: list[str] = typer.Argument(None, help="EvalConfig key=value overrides, e.g. batch_size=16"),
) -> None:
    """Per-token NLLs with sliding windows: perplexity and bits per byte."""
    from odyssey.errors import ConfigError
    from odyssey.evaluate.metrics import finite_or_none
    from odyssey.evaluate.run import evaluate

    missing = [flag for flag, v in (("--model", model), ("--data", data)) if not v]
    if missing:  # checked here: typer's own "missing option" error escapes the CLI's handler
        raise ConfigError(f"{' and '.join(missing)} required",
                          "odyssey evaluate --model M --data CORPUS[:split]")
    cfg = resolve(EvalConfig, config, overrides, values={
        "context_length": context_length, "stride": stride, "batch_size": batch_size,
        "max_documents": max_documents, "max_tokens": max_tokens, "dtype": dtype, "device": device,
        "progress": progress,
    })
    result = evaluate(model, data, cfg, out_dir=out, revision=revision, allow_pickle=allow_pickle,
                      trust_remote_code=trust_remote_code, tasks=tasks, task_limit=task_limit,
                      energy=energy_config())
    if as_json:
        summary = {k: finite_or_none(v) if isinstance(v, float) else v for k, v in result.summary().items()}
        print(json.dumps({**summary, "model": result.model, "data": result.data,
                          "model_source": result.model_source, "tasks": result.tasks,
                          "out": str(out) if out else None}))
        return
    render_result(result, out)


def render_result(result, out: Path | None = None) -> None:
    table = Table(title=f"{result.model} on {result.data}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("perplexity", f"{result.perplexity:.4f}")
    table.add_row("bits/byte", f"{result.bits_per_byte:.4f}")
    table.add_row("word perplexity (lm-eval)", f"{result.word_perplexity:.4f}")
    table.add_row("byte perplexity (lm-eval)", f"{result.byte_perplexity:.4f}")
    table.add_row("tokens", f"{result.tokens:,}")
    table.add_row("bytes", f"{result.bytes:,}")
    table.add_row("documents", f"{result.documents:,}")
    table.add_row("window", f"context {result.context_length}, stride {result.stride}")
    if result.model_source:
        table.add_row("dequantized from", f"{result.model_source.get('file')} "
                      f"({result.model_source.get('quantization')})")
    console.print(table)
    if result.tasks:
        render_tasks(result.tasks)
    if out:
        console.print(f"per-token NLLs saved to {out}")


def render_tasks(tasks: dict[str, dict]) -> None:
    """Accuracy (± standard error) of each lm-evaluation-harness task."""
    table = Table(title="lm-evaluation-harness tasks")
    for col in ("task", "metric", "value", "± stderr", "n"):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right")
    for task, row in tasks.items():
        for metric, value in row.items():
            if metric in ("n", "higher_is_better") or metric.endswith("_stderr") or value is None:
                continue
            err = row.get(f"{metric}_stderr")
            table.add_row(task, metric, f"{value:.4f}", "" if err is None else f"{err:.4f}", str(row.get("n") or ""))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("evaluate")(evaluate_command)
