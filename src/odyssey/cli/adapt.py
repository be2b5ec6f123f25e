"""`odyssey adapt`: continued pretraining of a causal LM on a domain."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.mitigations.registry import MITIGATIONS
from odyssey.cli import make_console
from odyssey.cli.edge import energy_section
from odyssey.cli.options import option_for
from odyssey.config import resolve

console = make_console()


def adapt_command(
    model: str = option_for(AdaptConfig, "model", "--model"),
    data: str = option_for(AdaptConfig, "data", "--data"),
    out: Path = option_for(AdaptConfig, "out", "--out"),
    general: str = option_for(AdaptConfig, "general", "--general"),
    config: Path = typer.Option(None, "--config", help="YAML file with an AdaptConfig"),
    lr: float = option_for(AdaptConfig, "optim.lr", "--lr"),
    epochs: float = option_for(AdaptConfig, "train.epochs", "--epochs"),
    max_steps: int = option_for(AdaptConfig, "train.max_steps", "--max-steps"),
    batch_size: int = option_for(AdaptConfig, "train.batch_size", "--batch-size"),
    grad_accum: int = option_for(AdaptConfig, "train.grad_accum", "--grad-accum"),
    block_size: int = option_for(AdaptConfig, "train.block_size", "--block-size"),
    eval_every: int = option_for(AdaptConfig, "eval_every", "--eval-every"),
    save_every: int = option_for(AdaptConfig, "save_every", "--save-every"),
    precision: str = option_for(AdaptConfig, "train.precision", "--precision"),
    seed: int = option_for(AdaptConfig, "train.seed", "--seed"),
    report_to: list[str] = option_for(AdaptConfig, "report_to", "--report-to", more="(repeat for both)"),
    resume: bool = option_for(AdaptConfig, "resume", "--resume/--no-resume"),
    overwrite: bool = option_for(AdaptConfig, "overwrite", "--overwrite"),
    allow_pickle: bool = option_for(AdaptConfig, "allow_pickle", "--allow-pickle"),
    trust_remote_code: bool = option_for(AdaptConfig, "trust_remote_code", "--trust-remote-code"),
    mitigation: str = typer.Option(None, "--mitigation", help=(
        f"comma list of mitigations: {', '.join(MITIGATIONS.names())} "
        "(settings as overrides, e.g. mitigation.replay.ratio=0.25)")),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    overrides: list[str] = typer.Argument(None, help="dotted key=value overrides, e.g. optim.weight_decay=0.1"),
) -> None:
    """Adapt a model to a domain; evaluate it before, during and after."""
    from odyssey.adapt.loop import adapt

    cfg = resolve(AdaptConfig, config, overrides, base={"energy": energy_section()}, values={
        "model": model, "data": data, "out": str(out) if out else None, "general": general,
        "optim.lr": lr, "train.epochs": epochs, "train.max_steps": max_steps, "train.batch_size": batch_size,
        "train.grad_accum": grad_accum, "train.block_size": block_size, "eval_every": eval_every,
        "save_every": save_every, "train.precision": precision, "train.seed": seed,
        "report_to": report_to or None, "resume": resume, "overwrite": overwrite,
        "allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code,
        "mitigation.methods": [m.strip() for m in mitigation.split(",") if m.strip()] if mitigation else None,
    })
    reused = _finished(cfg)
    result = adapt(cfg, progress=not as_json)
    if not reused:
        write_card(cfg.out)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    render_result(result)


def _finished(cfg) -> bool:
    """Whether adapt will reuse a finished run (``--resume`` on a run with a result): its card stays."""
    return bool(cfg.resume) and (Path(cfg.out) / "result.json").is_file()


def write_card(run_dir) -> None:
    """The model card of the run just trained (``OUT/model/README.md``, with its energy),
    written once under ``accelerate launch``."""
    from accelerate import PartialState

    from odyssey.report.model_card import write_model_card

    if PartialState().is_main_process:
        write_model_card(run_dir)


def render_result(result) -> None:
    table = Table(title=f"{result.out_dir}: {result.steps} steps, {result.tokens:,} tokens, {result.seconds:.1f} s")
    for col in ("eval set", "ppl before", "ppl after", "change", "bits/byte before", "bits/byte after"):
        table.add_column(col, justify="right" if col != "eval set" else "left")
    for split, ev in result.evals.items():
        b, a = ev.get("before"), ev.get("after")
        if not (b and a):
            continue
        change = 100 * (a["perplexity"] / b["perplexity"] - 1)
        table.add_row(split, f"{b['perplexity']:.3f}", f"{a['perplexity']:.3f}", f"{change:+.2f}%",
                      f"{b['bits_per_byte']:.4f}", f"{a['bits_per_byte']:.4f}")
    console.print(table)
    for method, info in (getattr(result, "mitigation", None) or {}).items():
        console.print(f"{method}: {json.dumps(info)}", highlight=False)
    if getattr(result, "best_step", None) is not None:
        stopped = f", stopped at step {result.stopped_at}" if result.stopped_at is not None else ""
        console.print(f"early stop: best step {result.best_step}{stopped}")
    console.print(f"model saved to {Path(result.out_dir) / 'model'}")


def pretrain_command(
    preset: str = typer.Option(None, "--preset", help="recipe: default (the shipped base's) or saturated "
                               "(the same shape trained 4x longer)"),
    data: str = typer.Option(None, "--data", help="training corpus (default: the default world's general corpus)"),
    out: Path = typer.Option(None, "--out", help="run directory (default: $ODYSSEY_HOME/base)"),
    config: Path = typer.Option(None, "--config", help="YAML file with a PretrainConfig"),
    vocab_size: int = typer.Option(None, "--vocab-size", help="BPE vocabulary size when training a tokenizer"),
    # PretrainConfig is an AdaptConfig (importing it here would import torch); the preset's
    # recipe, not the field, gives the defaults.
    epochs: float = option_for(AdaptConfig, "train.epochs", "--epochs", show_default=False),
    max_steps: int = option_for(AdaptConfig, "train.max_steps", "--max-steps", show_default=False),
    resume: bool = option_for(AdaptConfig, "resume", "--resume/--no-resume"),
    overwrite: bool = option_for(AdaptConfig, "overwrite", "--overwrite"),
    export: Path = typer.Option(None, "--export", help="also copy the model here in fp16 (how the base is shipped)"),
    overrides: list[str] = typer.Argument(None, help="dotted key=value overrides"),
) -> None:
    """Pretrain a base model from scratch (tokenizer, random init, the adapt loop)."""
    import shlex
    import sys

    from odyssey.adapt.pretrain import (
        RECIPES,
        PretrainConfig,
        default_pretrain_paths,
        export_model,
        pretrain,
    )

    name = preset or "default"
    data_default, out_default = default_pretrain_paths(name) if not (data and out) else (None, None)
    base = {**RECIPES.get(name, {"preset": name}), "energy": energy_section()}
    cfg = resolve(PretrainConfig, config, overrides, base=base, values={
        # a recipe name (default, saturated) sets the shape itself; another name is a shape
        "preset": None if name in RECIPES else preset, "data": data or data_default,
        "out": str(out or out_default), "vocab_size": vocab_size, "train.epochs": epochs,
        "train.max_steps": max_steps, "resume": resume, "overwrite": overwrite,
    })

    reused = _finished(cfg)
    result = pretrain(cfg, command=shlex.join(["odyssey", *sys.argv[1:]]))
    if not reused:
        write_card(cfg.out)
    render_result(result)
    if export:
        console.print(f"exported to {export_model(cfg.out, export)}")


def register(app: typer.Typer) -> None:
    app.command("adapt")(adapt_command)
    app.command("pretrain")(pretrain_command)
