"""`odyssey lmul`: the precision of L-Mul, and a model run with L-Mul products."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from odyssey.cli import make_console
from odyssey.cli.options import option_for
from odyssey.lmul.config import LMulEvalConfig, PrecisionConfig

console = make_console()
lmul_app = typer.Typer(help="L-Mul (multiplication by one integer addition): precision and model studies.",
                       no_args_is_help=True)


@lmul_app.command("precision")
def precision_command(
    samples: int = option_for(PrecisionConfig, "samples", "--samples"),
    seed: int = option_for(PrecisionConfig, "seed", "--seed"),
    config: Path = typer.Option(None, "--config", help="YAML file with a PrecisionConfig"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on stdout"),
    overrides: list[str] = typer.Argument(None, help="PrecisionConfig key=value overrides, e.g. mantissas=[2,4]"),
) -> None:
    """Mean and max relative error of L-Mul at each mantissa width beside fp8 e4m3 and e5m2,
    and whether the paper's claims hold."""
    from odyssey.config import resolve
    from odyssey.lmul.studies import precision_study

    cfg = resolve(PrecisionConfig, config, overrides, values={"samples": samples, "seed": seed})
    study = precision_study(cfg)
    if as_json:
        print(json.dumps(study))
        return
    render_precision(study)


def render_precision(study: dict) -> None:
    dists = list(study["distributions"])
    table = Table(title=f"relative error of products vs exact ({study['config']['samples']:,} pairs each)")
    table.add_column("method")
    for d in dists:
        table.add_column(f"{d} mean", justify="right")
        table.add_column(f"{d} max", justify="right")
    for method in study["distributions"][dists[0]]:
        cells = []
        for d in dists:
            e = study["distributions"][d][method]
            cells += [f"{e['mean']:.4f}", f"{e['max']:.4f}"]
        table.add_row(method, *cells)
    console.print(table)
    console.print("normal: x, y ~ N(0, 1); log-uniform: |x| = 2^U[{:g}, {:g}), random sign. "
                  "L-Mul truncates each mantissa to m bits; fp8 rounds each input to nearest, then "
                  "multiplies exactly.".format(*study["config"]["log2_range"]), highlight=False)
    for v in study["verdict"]:
        console.print(f"{v['claim']}: {v['text']}", highlight=False)


@lmul_app.command("evaluate")
def evaluate_command(
    model: str = typer.Option(None, "--model", help="hub id, local path or odyssey run directory"),
    data: str = typer.Option(None, "--data", help="domain text: CORPUS[:split] (default split test) or a .txt/.jsonl path"),
    general: str = typer.Option(None, "--general", help="general text to measure too (CORPUS[:split] or path)"),
    where: str = option_for(LMulEvalConfig, "where", "--where"),
    mantissa: int = option_for(LMulEvalConfig, "mantissa", "--mantissa"),
    max_tokens: int = option_for(LMulEvalConfig, "eval.max_tokens", "--max-tokens"),
    context_length: int = option_for(LMulEvalConfig, "eval.context_length", "--context-length"),
    config: Path = typer.Option(None, "--config", help="YAML file with an LMulEvalConfig"),
    revision: str = typer.Option(None, "--revision", help="model revision on the hub"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="allow non-safetensors weights"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="run the model repo's own code"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on stdout"),
    overrides: list[str] = typer.Argument(None, help="LMulEvalConfig key=value overrides, e.g. energy.fp32_mul=1.2"),
) -> None:
    """Perplexity change when the model's products are L-Mul, and the estimated energy of a
    forward pass with and without it."""
    from odyssey.config import resolve
    from odyssey.errors import ConfigError
    from odyssey.lmul.studies import evaluate_lmul

    missing = [flag for flag, v in (("--model", model), ("--data", data)) if not v]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} required",
                          "odyssey lmul evaluate --model M --data CORPUS[:split] --where all --mantissa 4")
    cfg = resolve(LMulEvalConfig, config, overrides, values={
        "where": where, "mantissa": mantissa, "eval.max_tokens": max_tokens,
        "eval.context_length": context_length,
    })
    result = evaluate_lmul(model, data, cfg, general=general, revision=revision, allow_pickle=allow_pickle,
                           trust_remote_code=trust_remote_code)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    render_evaluation(result)


def render_evaluation(result) -> None:
    table = Table(title=f"{result.model}: L-Mul on {result.where}, m={result.mantissa} ({result.dtype})")
    for col in ("text", "perplexity exact", "perplexity L-Mul", "change", "bits/byte change", "tokens"):
        table.add_column(col, justify="left" if col == "text" else "right")
    for name, r in (("domain", result.domain), ("general", result.general)):
        if r is None:
            continue
        table.add_row(name, f"{r['exact']['perplexity']:.3f}", f"{r['lmul']['perplexity']:.3f}",
                      f"{r['delta_ppl_pct']:+.2f}%", f"{r['delta_bpb']:+.4f}", f"{r['exact']['tokens']:,}")
    console.print(table)
    console.print(f"domain: {result.data}", highlight=False)
    e = result.energy
    console.print(f"one forward pass of {result.seq_len} tokens: {e['mults']:,} multiplications, "
                  f"{e['adds']:,} additions in matrix products; energy {e['exact_pj'] / 1e6:.2f} µJ exact "
                  f"({e['precision']}) vs {e['lmul_pj'] / 1e6:.2f} µJ with L-Mul: {100 * e['saving']:.1f}% less "
                  f"(estimated from {e['table']['source']} pJ/op)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(lmul_app, name="lmul")
