"""`odyssey diagnose` (will adapting help? adapt, rely or mitigate) and `odyssey diagnose
fit` (refit the predictor on your own studies) over odyssey.analysis.diagnose."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from odyssey.analysis.config import DiagnoseConfig
from odyssey.cli import make_console
from odyssey.cli.options import option_for
from odyssey.config import resolve
from odyssey.io import json_safe

console = make_console()
err_console = make_console(stderr=True)

diagnose_app = typer.Typer(
    help="Will adapting help? Predict the change of in-domain perplexity from the data's similarity "
    "to the pretraining data; recommend adapt, rely or mitigate.",
    invoke_without_command=True, no_args_is_help=False)


def _resolve(config: Path | None, overrides: list[str] | None, values: dict) -> DiagnoseConfig:
    return resolve(DiagnoseConfig, config, overrides or [], values=values)


@diagnose_app.callback(invoke_without_command=True)
def diagnose_command(
    ctx: typer.Context,
    data: str = typer.Option(None, "--data", help="CORPUS[:split] (default split train) or a text path"),
    model: str = typer.Option(None, "--model", help="base model (default: the shipped default base)"),
    reference: str = typer.Option(None, "--reference", help="the base model's pretraining corpus (default: "
                                  "the one its provenance.json records)"),
    fit: Path = typer.Option(None, "--fit", help="predictor fit file (default: the shipped default fit)"),
    probe: bool = typer.Option(False, "--probe", help="also run a short adapt run on a slice of the data "
                               "and extrapolate its change of valid perplexity to one epoch"),
    config: Path = typer.Option(None, "--config", help="YAML file with a DiagnoseConfig"),
    overrides: list[str] = typer.Option(None, "--set", help="DiagnoseConfig key=value override (repeatable), "
                                        "e.g. --set decision.clear_gain_pct=3"),
    lr: float = typer.Option(None, "--lr", help="peak learning rate to predict at (a fit made on several "
                             "rates; default: the base's final pretraining rate)"),
    base_final_lr: float = typer.Option(None, "--base-final-lr", help="the rate the base's pretraining ended "
                                        "at (default: from its provenance.json)"),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="show progress on stderr"),
    as_json: bool = typer.Option(False, "--json", help="print the diagnosis as one JSON object on stdout"),
) -> None:
    """Recommend adapt, rely or mitigate for adapting --model to --data, with the predicted
    change of in-domain perplexity, its interval and the evidence; with --lr, at that
    learning rate, and the largest rate predicted not to make in-domain perplexity worse.

    Example: odyssey diagnose --data corpora/legal --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from odyssey.analysis.diagnose import diagnose
    from odyssey.errors import ConfigError

    if not data:
        raise ConfigError("--data required", "odyssey diagnose --data CORPUS [--model M], or odyssey diagnose fit STUDY_DIR")
    from odyssey.study.config import Recipe
    from odyssey.study.probe import run_probe

    cfg = _resolve(config, overrides, {"similarity.progress": progress})
    result = diagnose(data, model=model, reference=reference, fit=fit, config=cfg,
                      probe=run_probe if probe else None, progress=progress,
                      lr=lr, base_final_lr=base_final_lr, probe_recipe=Recipe().model_dump(mode="json"))
    if as_json:
        print(json.dumps(json_safe(result, drop_private=True), ensure_ascii=False))
        return
    render_diagnosis(result)


@diagnose_app.command("fit")
def fit_command(
    studies: list[Path] = typer.Argument(..., help="study directories (results.json of odyssey study)"),
    out: Path = typer.Option(None, "--out", help="write the fit here (default: fit.json in the first study)"),
    features: str = option_for(DiagnoseConfig, "fit.features", "--features", more=(
        "Comma-separated (default: " + ",".join(DiagnoseConfig().fit.features) + ").")),
    probe: bool = typer.Option(False, "--probe", help="also probe every domain and use the probe as a feature"),
    config: Path = typer.Option(None, "--config", help="YAML file with a DiagnoseConfig"),
    overrides: list[str] = typer.Option(None, "--set", help="DiagnoseConfig key=value override (repeatable)"),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="show progress on stderr"),
    as_json: bool = typer.Option(False, "--json", help="print the fit as JSON on stdout"),
) -> None:
    """Refit the predictor on finished studies; features are cached in STUDY_DIR/features.json.

    Example: odyssey diagnose fit studies/default studies/mine --out my-fit.json
    """
    from odyssey.analysis.diagnose import fit_studies

    cfg = _resolve(config, overrides, {
        "fit.features": [f.strip() for f in features.split(",") if f.strip()] if features else None,
        "similarity.progress": progress})
    out = out or studies[0] / "fit.json"
    from odyssey.study.probe import run_probe

    fit = fit_studies([str(s) for s in studies], cfg, out=out, probe=run_probe if probe else None, progress=progress,
                      log=lambda msg: err_console.print(msg, highlight=False))
    if as_json:
        print(json.dumps(json_safe(fit, drop_private=True), ensure_ascii=False))
        return
    render_fit(fit)
    console.print(f"fit written to {out}")


def _pct(v) -> str:
    return "–" if v is None else f"{v:+.2f}%"


def render_diagnosis(r: dict) -> None:
    lo, hi = r["interval"]
    rec = r["recommendation"] + (f" ({', '.join(r['mitigations'])})" if r["mitigations"] else "")
    color = {"adapt": "green", "rely": "red", "mitigate": "yellow"}[r["recommendation"]]
    console.print(Text.assemble((rec, f"bold {color}"), f": {r['reason']}"), highlight=False)
    at = f" at lr {r['lr']:.3g} ({r['lr_ratio']:.3g}× the base's final rate)" if r.get("lr") else ""
    console.print(f"predicted change of in-domain perplexity{at} {_pct(r['predicted_delta_ppl_pct'])} "
                  f"({r['interval_level']:.0%} interval {_pct(lo)} to {_pct(hi)}); general perplexity "
                  f"{_pct(r['predicted_forgetting_pct'])}", highlight=False)
    safe = r.get("safe_lr")
    if safe:
        lo_q, hi_q = safe["studied"]
        if safe["ratio"] is None:
            best = "none: every studied rate is predicted to make it worse"
        else:
            at_rate = f"{safe['lr']:.3g} ({safe['ratio']:.3g}×, " if safe["lr"] is not None else f"{safe['ratio']:.3g}× ("
            best = f"{at_rate}predicted {_pct(safe['predicted_delta_ppl_pct'])})"
        console.print(f"largest learning rate predicted not to worsen in-domain perplexity, of {lo_q:.3g}× to "
                      f"{hi_q:.3g}× the base's final rate: {best}", highlight=False)
    table = Table(title=f"evidence (against {r['reference']}, {r['reference_kind']})", title_justify="left")
    for col in ("feature", "value", "z", "multiplies perplexity by", "training range"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    table.add_row("(a typical training domain)", "", "", f"×{math.exp(r['intercept_log']):.3f}", "")
    for f in r["features"]:
        lo_, hi_ = f["training_range"]
        rng = "–" if lo_ is None else f"{lo_:.4g} – {hi_:.4g}" + (" (outside)" if f["outside_training_range"] else "")
        table.add_row(f["name"], f"{f['value']:.4g}", f"{f['z']:+.2f}", f"×{math.exp(f['contribution_log']):.3f}", rng)
    console.print(table)
    fit = r["fit"]
    rows = (f"{fit['domains']} cells of {fit['loo_domains']} domains" if fit.get("loo_domains")
            and fit["loo_domains"] != fit["domains"] else f"{fit['domains']} domains")
    worse = (f", {fit['loo_sign_accuracy_worse']:.0%} of the cells that got worse"
             if fit.get("loo_sign_accuracy_worse") is not None else "")
    console.print(f"fit: {fit['path']} ({rows}; leave-one-domain-out sign accuracy {fit['loo_sign_accuracy']:.0%}"
                  f"{worse}, mean abs. error {fit['loo_mae']:.2f} points)", highlight=False)
    if r.get("probe"):
        p = r["probe"]
        console.print(f"probe: {p['steps']} steps, valid perplexity {p['valid_ppl_before']:.2f} → "
                      f"{p['valid_ppl_after']:.2f} ({_pct(p['delta_ppl_pct'])}), extrapolated to one epoch "
                      f"{_pct(p['probe_delta_ppl_pct'])}", highlight=False)
    for note in r["notes"]:
        console.print(f"note: {note}", highlight=False)


def render_fit(fit: dict) -> None:
    t = fit["targets"]["delta_ppl_pct"]
    table = Table(title="leave-one-domain-out: change of in-domain perplexity", title_justify="left")
    for col in ("domain", "actual", "predicted (LOO)", "sign"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for d in sorted(fit["domains"], key=lambda d: d["delta_ppl_pct"]):
        ok = (d["delta_ppl_pct"] > 0) == (d["loo_delta_ppl_pct"] > 0)
        table.add_row(d["name"], _pct(d["delta_ppl_pct"]), _pct(d["loo_delta_ppl_pct"]),
                      Text("right", "green") if ok else Text("wrong", "red"))
    console.print(table)
    loo = t["loo"]
    console.print(f"features {', '.join(fit['features'])}; lambda {t['lambda']:.3g}; coefficients (log ratio per SD): "
                  + ", ".join(f"{k} {v:+.2f}" for k, v in t["coefficients"].items()), highlight=False)
    console.print(f"sign accuracy {loo['sign_accuracy']:.0%} (mean-only baseline {loo['sign_accuracy_mean_only']:.0%}), "
                  f"MAE {loo['mae']:.2f} points (mean-only {loo['mae_mean_only']:.2f}), "
                  f"interval ±{t['interval']['half_width_log']:.3f} in log ratio ({t['interval']['level']:.0%})",
                  highlight=False)
    for note in fit.get("notes", []):
        console.print(f"note: {note}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `odyssey diagnose` and `odyssey diagnose fit` to `app`."""
    app.add_typer(diagnose_app, name="diagnose")
