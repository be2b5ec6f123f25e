"""`odyssey detect`: how likely each document is to be model-generated; `odyssey detect fit`
learns a detector (statistic, direction, threshold) from labelled text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from odyssey.cli import make_console
from odyssey.cli.options import option_for
from odyssey.collapse.config import CollapseConfig, DetectConfig
from odyssey.config import resolve
from odyssey.io import json_safe

console = make_console()
TABLE_ROWS = 40  # documents shown in the terminal; --json gives all

detect_app = typer.Typer(
    help="How likely each document is to be model-generated; fit a detector on labelled text.",
    invoke_without_command=True, no_args_is_help=False)


def _config(config: Path | None, overrides: list[str] | None, values: dict) -> DetectConfig:
    return resolve(DetectConfig, config, list(overrides or []), values=values)


def _model_options():
    """The options every detect command shares (one definition, so their help agrees)."""
    return dict(
        model=option_for(DetectConfig, "model", "--model"),
        reference=option_for(DetectConfig, "reference", "--reference", "--observer"),
        score=option_for(DetectConfig, "score", "--score"),
        fpr=option_for(DetectConfig, "fpr", "--fpr"),
        max_tokens=option_for(DetectConfig, "max_tokens", "--max-tokens"),
        config=typer.Option(None, "--config", help="YAML file with a DetectConfig"),
        overrides=typer.Option(None, "--set", help="DetectConfig key=value override (repeatable), e.g. "
                               "--set batch_size=16"),
        as_json=typer.Option(False, "--json", help="print the result as one JSON object on stdout"),
    )


_O = _model_options()


@detect_app.callback(invoke_without_command=True)
def detect_command(
    ctx: typer.Context,
    data: str = typer.Option(None, "--data", help="CORPUS[:split] (default split test) or a .txt/.jsonl path"),
    eval_: Optional[tuple[str, str]] = typer.Option(  # noqa: UP045 (typer reads the annotation)
        None, "--eval", help="REAL GENERATED: two data specs; report every statistic's AUROC both ways, the "
        "threshold at --fpr and the statistic cross-validation chooses", show_default=False),
    detector: Path = typer.Option(None, "--detector", help="a detector from `odyssey detect fit`: score with "
                                  "its models and flag the documents it calls generated"),
    model: str = _O["model"], reference: str = _O["reference"], score: str = _O["score"],
    fpr: float = _O["fpr"], max_tokens: int = _O["max_tokens"], config: Path = _O["config"],
    overrides: list[str] = _O["overrides"], as_json: bool = _O["as_json"],
) -> None:
    """Per-document scores of being model-generated: perplexity, token-rank statistics and
    Fast-DetectGPT's sampling discrepancy under a scoring model, and with --reference the
    Binoculars score. With --eval REAL GENERATED: how well each separates the two sets.

    Example: odyssey detect --eval corpora/wiki:test generated.jsonl --reference runs/wiki/model
    """
    if ctx.invoked_subcommand is not None:
        return
    from odyssey.collapse.calibrate import choose_statistic, evaluate_detection
    from odyssey.collapse.detect import load_scorers, score_documents
    from odyssey.corpora.store import load_documents
    from odyssey.errors import ConfigError

    pair = [p for p in (eval_ or ()) if p]
    if bool(data) == bool(pair) or (pair and len(pair) != 2):
        raise ConfigError("give either --data D or --eval REAL GENERATED",
                          "odyssey detect --data CORPUS[:split] | --eval REAL GENERATED | fit REAL GENERATED --out F")
    if data and detector:
        return _apply(data, detector, as_json)
    cfg = _config(config, overrides, {"model": model, "reference": reference, "score": score, "fpr": fpr,
                                      "max_tokens": max_tokens})
    scorers = load_scorers(cfg)
    if data:
        rows = score_documents(load_documents(data, default_split="test"), cfg, scorers=scorers,
                               progress=not as_json)
        if as_json:
            print(json.dumps({"model": cfg.model, "reference": cfg.reference, "statistic": cfg.statistic(),
                              "documents": json_safe(rows)}))
            return
        render_scores(rows, cfg.statistic(), reference=bool(cfg.reference))
        return
    real, generated = (score_documents(load_documents(spec, default_split="test"), cfg, scorers=scorers,
                                       progress=not as_json) for spec in pair)
    result = evaluate_detection(real, generated, cfg.fpr)
    only = None if cfg.score == "auto" else [cfg.score]
    chosen, cv = choose_statistic(real, generated, folds=cfg.folds, seed=cfg.seed, statistics=only)
    if as_json:
        print(json.dumps({"real": pair[0], "generated": pair[1], "fpr": cfg.fpr, "statistic": chosen,
                          "cv_auroc": json_safe(cv), "statistics": json_safe(result)}))
        return
    render_evaluation(result, cv, chosen, cfg, pair)


def _apply(data: str, detector_path: Path, as_json: bool) -> None:
    from odyssey.collapse.calibrate import flagged
    from odyssey.collapse.detect import score_documents
    from odyssey.corpora.store import load_documents

    det = load_detector(detector_path)
    rows = score_documents(load_documents(data, default_split="test"), det.scoring_config(), progress=not as_json)
    for r in rows:
        r["generated"] = flagged(r[det.statistic], det.direction, det.threshold)
    if as_json:
        print(json.dumps({"detector": str(detector_path), "statistic": det.statistic, "direction": det.direction,
                          "threshold": det.threshold, "documents": json_safe(rows)}))
        return
    render_scores(rows, det.statistic, reference=bool(det.reference), direction=det.direction)
    n = sum(r["generated"] for r in rows)
    console.print(f"{n} of {len(rows)} documents called generated ({det.statistic} {det.rule} "
                  f"{det.threshold:.6g})", highlight=False)


def load_detector(path: Path):
    """The :class:`Detector` saved at ``path``, or one clear error."""
    from pydantic import ValidationError

    from odyssey.collapse.config import Detector
    from odyssey.errors import ConfigError
    from odyssey.io import read_json

    try:
        return Detector.model_validate(read_json(path))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "the file"
        raise ConfigError(f"{path} is not a detector file ({where}: {first['msg']})",
                          "make one with: odyssey detect fit REAL GENERATED --out detector.json") from e


@detect_app.command("fit")
def fit_command(
    real: str = typer.Argument(..., help="real text: CORPUS[:split] (default split test) or a .txt/.jsonl path"),
    generated: str = typer.Argument(..., help="generated text, as REAL"),
    out: Path = typer.Option(..., "--out", "-o", help="where to write the detector (JSON)"),
    model: str = _O["model"], reference: str = _O["reference"], score: str = _O["score"],
    fpr: float = _O["fpr"], max_tokens: int = _O["max_tokens"], config: Path = _O["config"],
    overrides: list[str] = _O["overrides"], as_json: bool = _O["as_json"],
) -> None:
    """Learn a detector from a small labelled sample: the statistic with the best
    cross-validated AUROC (or --score), the direction in which generated text differs, and
    the threshold at --fpr. `odyssey corpus build --drop-synthetic FILE` applies it.

    Example: odyssey detect fit corpora/wiki:valid generated.jsonl --out detector.json --fpr 0.05
    """
    from odyssey.collapse.calibrate import fit_detector
    from odyssey.collapse.detect import load_scorers, score_documents
    from odyssey.corpora.split import split_digest
    from odyssey.corpora.store import load_documents
    from odyssey.io import write_json

    cfg = _config(config, overrides, {"model": model, "reference": reference, "score": score, "fpr": fpr,
                                      "max_tokens": max_tokens})
    scorers = load_scorers(cfg)
    docs = {name: load_documents(spec, default_split="test") for name, spec in (("real", real),
                                                                                ("generated", generated))}
    rows = {name: score_documents(d, cfg, scorers=scorers, progress=not as_json) for name, d in docs.items()}
    data = {name: {"spec": spec, "documents": len(docs[name]), "sha256": split_digest(docs[name])}
            for name, spec in (("real", real), ("generated", generated))}
    det = fit_detector(rows["real"], rows["generated"], cfg, max_tokens=scorers[3], data=data)
    write_json(out, json_safe(det.model_dump(mode="json")))
    if as_json:
        print(json.dumps(json_safe(det.model_dump(mode="json"))))
        return
    render_fit(det, out)


@detect_app.command("grid")
def grid_command(
    data: list[str] = option_for(CollapseConfig, "data", "--data", more="(repeat for several domains)"),
    out: Path = option_for(CollapseConfig, "out", "--out", "-o",
                           more="(here: the grid's; grid.json, grid.md and one experiment per domain and decoding)"),
    model: str = option_for(CollapseConfig, "model", "--model"),
    decodings: str = typer.Option("beam,sample-t1.0,sample-t0.7,top-p-0.9", "--decodings",
                                  help="comma list of: beam (5-way), sample-t1.0, sample-t0.7, top-p-0.9"),
    generations: str = option_for(CollapseConfig, "detect_generations", "--generations", more="(default: 1,3)"),
    detect_model: str = option_for(CollapseConfig, "detect_model", "--detect-model",
                                   more="(run the grid again with it: only the detection is redone)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
    overrides: list[str] = typer.Argument(None, help="CollapseConfig key=value overrides for every experiment, "
                                          "e.g. max_blocks=96 max_test_blocks=64"),
) -> None:
    """Detection by decoding method and generation: one collapse experiment per domain and
    decoding (no real data kept), each statistic's AUROC on held-out text, and a detector
    fitted on the valid blocks measured on the test blocks.

    Example: odyssey detect grid --data world/domains/wiki-history --out grid max_blocks=96
    [--detect-model smollm2-135m]
    """
    from odyssey.collapse.grid import grid_markdown, run_grid
    from odyssey.errors import ConfigError

    if not data or not out:
        raise ConfigError("--data and --out required", "odyssey detect grid --data DOMAIN [--data DOMAIN] --out DIR")
    try:
        gens = [int(g) for g in (generations or "1,3").replace(" ", ",").split(",") if g]
    except ValueError as e:
        raise ConfigError(f"--generations {generations!r} is not a comma list of numbers", "e.g. --generations 1,3") from e
    grid = run_grid(data, out, decodings=[d for d in decodings.split(",") if d], generations=gens,
                    overrides=list(overrides or []), model=model, detect_model=detect_model, progress=progress,
                    console=console)
    console.print(grid_markdown(grid["rows"]), highlight=False)
    console.print(f"{grid['total_seconds']:.0f} s; grid: {out / 'grid.md'}, {out / 'grid.json'}; a report per "
                  f"experiment under {out}", highlight=False)


def render_scores(rows: list[dict], stat: str, *, reference: bool, direction: str | None = None) -> None:
    from odyssey.collapse.config import conventional_direction

    direction = direction or conventional_direction(stat)
    table = Table(title=f"documents by {stat}, {'highest' if direction == 'higher' else 'lowest'} first "
                        "(the likeliest generated)", title_justify="left")
    cols = ["id", "tokens", "perplexity", "log_rank", "top1", "fast_detect"] + (["binoculars"] if reference else [])
    if rows and "generated" in rows[0]:
        cols.append("generated")
    for c in cols:
        table.add_column(c, justify="left" if c == "id" else "right")
    sign = -1 if direction == "higher" else 1
    ordered = sorted(rows, key=lambda r: (not math.isfinite(r[stat]), sign * r[stat] if math.isfinite(r[stat]) else 0))
    for r in ordered[:TABLE_ROWS]:
        cells = [f"{r[c]:.4g}" if c != "generated" else ("yes" if r[c] else "no") for c in cols[2:]]
        table.add_row(r["id"], str(r["tokens"]), *cells)
    console.print(table)
    if len(rows) > TABLE_ROWS:
        console.print(f"… {len(rows) - TABLE_ROWS} more documents (--json lists all)")


def render_evaluation(result: dict, cv: dict, chosen: str, cfg: DetectConfig, pair: list[str]) -> None:
    from odyssey.collapse.calibrate import fpr_resolution, weak_separation

    table = Table(title=f"real {pair[0]} vs generated {pair[1]}", title_justify="left")
    cols = ("statistic", "AUROC generated higher", "AUROC generated lower", f"{cfg.folds}-fold CV AUROC",
            f"threshold at {cfg.fpr:.0%} FPR", "FPR", "TPR")
    for c in cols:  # the statistic's name whole, however narrow the terminal
        table.add_column(c, justify="left" if c == "statistic" else "right",
                         min_width=len("fast_detect *") if c == "statistic" else None)
    for stat, v in result.items():
        table.add_row(stat + (" *" if stat == chosen else ""), f"{v['auroc_higher']:.4f}", f"{v['auroc_lower']:.4f}",
                      f"{cv[stat]:.4f}" if stat in cv else "–", f"{v['rule']} {v['threshold']:.6g}",
                      f"{v['fpr']:.1%}", f"{v['tpr']:.1%}")
    console.print(table)
    note = fpr_resolution(next(iter(result.values()))["real"], cfg.fpr) if result else None
    for line in (note, weak_separation(max((v for v in cv.values() if math.isfinite(v)), default=float("nan")))):
        if line:
            console.print(f"note: {line}", highlight=False)
    how = "the best cross-validated AUROC" if cfg.score == "auto" else "--score"
    console.print(f"* chosen by {how}; the threshold is in the better direction on this text. "
                  "odyssey detect fit REAL GENERATED --out detector.json stores statistic, direction and threshold "
                  "for odyssey corpus build --drop-synthetic detector.json", highlight=False)


def render_fit(det, out: Path) -> None:
    from odyssey.collapse.calibrate import fpr_resolution, weak_separation

    f = det.fit
    console.print(f"detector: {det.statistic}, generated text scores {det.direction} "
                  f"(a document is generated when {det.statistic} {det.rule} {det.threshold:.6g})", highlight=False)
    console.print(f"  on {f['real']} real and {f['generated']} generated documents: cross-validated AUROC "
                  f"{f['cv_auroc']:.3f}, FPR {f['fpr']:.1%} (target {det.target_fpr:.1%}), TPR {f['tpr']:.1%}",
                  highlight=False)
    others = ", ".join(f"{k} {v:.3f}" for k, v in sorted(f["candidates"].items(), key=lambda kv: -kv[1]))
    console.print(f"  candidates (cross-validated AUROC): {others}", highlight=False)
    for line in (fpr_resolution(f["real"], det.target_fpr), weak_separation(f["cv_auroc"])):
        if line:
            console.print(f"  note: {line}", highlight=False)
    console.print(f"saved: {out}   use: odyssey corpus build NAME --from DATA --out DIR --drop-synthetic {out}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(detect_app, name="detect")
