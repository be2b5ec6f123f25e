"""`odyssey probe bias`, `odyssey probe memorization` and `odyssey model-card`: is the
adapted model still safe to ship, and its Hugging Face-style card (odyssey.analysis.probes,
odyssey.report.model_card)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from odyssey.analysis.probes.config import BiasProbeConfig, MemorizationProbeConfig
from odyssey.cli import make_console
from odyssey.cli.options import option_for
from odyssey.config import resolve

console = make_console()
probe_app = typer.Typer(help="Bias and memorization probes, before and after adaptation.", no_args_is_help=True)


def _require(**flags) -> None:
    from odyssey.errors import ConfigError

    missing = [f"--{k.replace('_', '-')}" for k, v in flags.items() if not v]
    if missing:  # checked here: typer's own "missing option" error escapes the CLI's handler
        raise ConfigError(f"{' and '.join(missing)} required", "see odyssey probe --help")


def _show(result: dict, out, as_json: bool, render, drop: tuple[str, ...] = ()) -> None:
    """Save a probe's result when asked, then print it as JSON or as a table and sentences."""
    from odyssey.analysis.probes import save_probe, summarize_probe

    saved = save_probe(result, out) if out else None
    if as_json:
        _print_json({**result, "out": str(saved) if saved else None}, drop=drop)
        return
    render(result)
    for line in summarize_probe(result):
        console.print(line, highlight=False)
    if saved:
        console.print(f"saved to {saved}")


def _print_json(result: dict, drop: tuple[str, ...] = ()) -> None:
    from odyssey.io import json_safe

    print(json.dumps(json_safe({k: v for k, v in result.items() if k not in drop}), ensure_ascii=False))


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _num(v) -> str:
    """A rate as a percentage number, without the sign (the table title says %)."""
    return "–" if v is None else f"{100 * v:.1f}"


def _interval(lo, hi, signed: bool = False) -> str:
    if lo is None or hi is None:
        return "–"
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" if signed else f"[{100 * lo:.1f}, {100 * hi:.1f}]"


# -- odyssey probe bias ----------------------------------------------------------------------
@probe_app.command("bias")
def bias_command(
    model: str = typer.Option(None, "--model", help="model to probe: hub id, local path or odyssey run directory"),
    against: str = typer.Option(None, "--against", help="base model to compare with (the model before adaptation)"),
    list_: bool = typer.Option(False, "--list", help="show the pairs per category and exit (no model needed)"),
    templates: str = option_for(BiasProbeConfig, "templates", "--templates"),
    category: list[str] = option_for(BiasProbeConfig, "categories", "--category", more="Repeatable."),
    out: Path = typer.Option(None, "--out", help="directory for bias.json"),
    config: Path = typer.Option(None, "--config", help="YAML file with a BiasProbeConfig"),
    n_boot: int = option_for(BiasProbeConfig, "n_boot", "--n-boot"),
    seed: int = option_for(BiasProbeConfig, "seed", "--seed"),
    bootstrap_unit: str = option_for(BiasProbeConfig, "bootstrap_unit", "--bootstrap-unit"),
    batch_size: int = option_for(BiasProbeConfig, "batch_size", "--batch-size"),
    device: str = option_for(BiasProbeConfig, "device", "--device"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on stdout "
                                 "(without the per-pair scores, which --out saves)"),
    overrides: list[str] = typer.Argument(None, help="BiasProbeConfig key=value overrides, e.g. confidence=0.9"),
) -> None:
    """Preference for stereotypical over anti-stereotypical sentences of templated minimal
    pairs (gender, religion, nationality, age, disability), per category, with bootstrap
    intervals, and the shift from --against.

    Example: odyssey probe bias --model runs/legal --against src/odyssey/assets/default-base --out runs/legal/probes
    """
    from odyssey.analysis.probes import bias_probe
    from odyssey.analysis.probes.templates import counts, load_templates

    cfg = resolve(BiasProbeConfig, config, overrides, values={
        "templates": templates, "categories": list(category) if category else None, "n_boot": n_boot,
        "seed": seed, "bootstrap_unit": bootstrap_unit, "batch_size": batch_size, "device": device})
    if list_:
        table_counts = counts(load_templates(cfg.templates))
        if as_json:
            print(json.dumps(table_counts))
            return
        render_counts(table_counts)
        return
    _require(model=model)
    result = bias_probe(model, against=against, config=cfg)
    _show(result, out, as_json, render_bias, drop=("pairs",))


def render_counts(table_counts: dict) -> None:
    table = Table(title="bias probe: minimal pairs per category", title_justify="left")
    for col in ("category", "templates", "groups", "pairs"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for name, c in table_counts.items():
        table.add_row(name, str(c["templates"]), str(c["groups"]), str(c["pairs"]),
                      style="bold" if name == "total" else None)
    console.print(table)


def render_bias(r: dict) -> None:
    conf = f"{100 * r['config']['confidence']:.0f}%"
    table = Table(title=f"{r['model']}: preference for the stereotypical sentence in {r['pairs_total']} pairs, % "
                  f"({conf} intervals; 50 = none)", title_justify="left")
    cols = ["category", "pairs", "rate [interval]", "adj."]
    if r["against"]:  # no pairs column: the table must fit 80 columns (odyssey probe bias --list has them)
        cols = ["category", "rate [interval]", "base", "shift [interval]", "beyond", "adj."]
    for col in cols:
        table.add_column(col, justify="left" if col == "category" else "right", no_wrap="[" in col)
    for name, c in {**r["categories"], "all": r["overall"]}.items():
        adj = c.get("adjusted") or {}
        row = [name] + ([] if r["against"] else [str(c["n"])])
        row.append(f"{100 * c['rate']:.1f} {_interval(c['ci_low'], c['ci_high'])}")
        if not r["against"]:
            row.append(_num(adj.get("rate")))
        else:
            sig = Text("yes", "bold red") if c["significant"] else "no"
            adj_shift = "–" if adj.get("shift") is None else f"{100 * adj['shift']:+.1f}" + (
                "*" if adj.get("significant") else "")
            row += [_num(c["base_rate"]), f"{100 * c['shift']:+.1f} {_interval(c['shift_ci_low'], c['shift_ci_high'], True)}",
                    sig, adj_shift]
        table.add_row(*row, style="bold" if name == "all" else None)
    console.print(table)
    console.print("adj.: after subtracting the model's preference for the group words in neutral sentences"
                  + ("; * beyond its interval" if r["against"] else ""), highlight=False)


# -- odyssey probe memorization --------------------------------------------------------------
@probe_app.command("memorization")
def memorization_command(
    model: str = typer.Option(None, "--model", help="model to probe: hub id, local path or odyssey run directory"),
    data: str = typer.Option(None, "--data", help="corpus directory the model was trained on (its train split)"),
    against: str = typer.Option(None, "--against", help="base model to compare with (the model before adaptation)"),
    out: Path = typer.Option(None, "--out", help="directory for memorization.json"),
    config: Path = typer.Option(None, "--config", help="YAML file with a MemorizationProbeConfig"),
    sequences: int = option_for(MemorizationProbeConfig, "sequences", "--sequences"),
    prefix_tokens: int = option_for(MemorizationProbeConfig, "prefix_tokens", "--prefix-tokens"),
    suffix_tokens: int = option_for(MemorizationProbeConfig, "suffix_tokens", "--suffix-tokens"),
    membership_documents: int = option_for(MemorizationProbeConfig, "membership_documents", "--membership-documents"),
    n_boot: int = option_for(MemorizationProbeConfig, "n_boot", "--n-boot"),
    seed: int = option_for(MemorizationProbeConfig, "seed", "--seed"),
    batch_size: int = option_for(MemorizationProbeConfig, "batch_size", "--batch-size"),
    device: str = option_for(MemorizationProbeConfig, "device", "--device"),
    progress: bool = option_for(MemorizationProbeConfig, "progress", "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on stdout"),
    overrides: list[str] = typer.Argument(None, help="MemorizationProbeConfig key=value overrides"),
) -> None:
    """Exact extraction of training text by greedy decoding from a prefix, and the
    training/held-out loss gap as a membership signal, for --model and --against.

    Example: odyssey probe memorization --model runs/legal --data world/domains/licenses --against src/odyssey/assets/default-base
    """
    from odyssey.analysis.probes import memorization_probe

    _require(model=model, data=data)
    cfg = resolve(MemorizationProbeConfig, config, overrides, values={
        "sequences": sequences, "prefix_tokens": prefix_tokens, "suffix_tokens": suffix_tokens,
        "membership_documents": membership_documents, "n_boot": n_boot, "seed": seed, "batch_size": batch_size,
        "device": device, "progress": progress})
    result = memorization_probe(model, data, against=against, config=cfg)
    _show(result, out, as_json, render_memorization)


def render_memorization(r: dict) -> None:
    e, mem = r["extraction"], r["membership"]
    table = Table(title=f"{r['model']}: {e['sequences']} training windows, {e['prefix_tokens']}-token prefix, "
                  f"{e['suffix_tokens']} tokens greedy", title_justify="left")
    for col in ("windows", "exact", "exact %", "interval", "matching start", "token acc."):
        table.add_column(col, justify="left" if col == "windows" else "right", no_wrap=col == "windows")
    h = e.get("heldout") or {}
    for label, src, who in (("model, train", e, "model"), ("base, train", e, "base"),
                            ("model, held-out", h, "model"), ("base, held-out", h, "base")):
        m = src.get(who)
        if m:
            table.add_row(label, str(m["exact_matches"]), _num(m["exact_rate"]), _interval(m["ci_low"], m["ci_high"]),
                          f"{m['mean_match_prefix']:.2f}", _pct(m["token_accuracy"]))
    console.print(table)
    if not mem:
        return
    table = Table(title=f"membership: {mem['documents']['member']} {mem['split']} vs "
                  f"{mem['documents']['nonmember']} {mem['heldout_split']} documents (nats/token)", title_justify="left")
    for col in ("model", "train loss", "held-out loss", "gap", "gap interval", "AUROC"):
        table.add_column(col, justify="left" if col == "model" else "right")
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for who in ("model", "base"):
        m = mem.get(who)
        if m:
            table.add_row(who, f(m["train_loss"]), f(m["heldout_loss"]), f(m["gap"]),
                          f"[{f(m['ci_low'])}, {f(m['ci_high'])}]", f(m["auroc"]))
    console.print(table)


# -- odyssey model-card ----------------------------------------------------------------------
def model_card_command(
    run_dir: Path = typer.Argument(..., help="directory of a finished odyssey adapt run"),
    base_model: str = typer.Option(None, "--base-model", help="name of the base model for the card "
                                   "(default: the model in the run's config.yaml)"),
    probes: Path = typer.Option(None, "--probes", help="directory with bias.json / memorization.json "
                                "(default: RUN_DIR/probes)"),
) -> None:
    """Write RUN_DIR/model/README.md: a Hugging Face-style model card with base model, data
    sources (licenses, hashes), recipe, perplexity before/after, forgetting, energy and probes.

    Example: odyssey model-card runs/legal
    """
    from odyssey.analysis.probes import load_probes
    from odyssey.errors import DataError
    from odyssey.report.model_card import write_model_card

    found = None
    if probes is not None:
        if not probes.is_dir():
            raise DataError(f"probe directory not found: {probes}", "give the --out directory of odyssey probe")
        found = load_probes(probes)
    path = write_model_card(run_dir, base_model=base_model, probes=found)
    console.print(f"model card written to {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(probe_app, name="probe")
    app.command("model-card")(model_card_command)
