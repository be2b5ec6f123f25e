"""`odyssey corpus` commands."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from odyssey.cli.options import option_for
from odyssey.collapse.config import DetectConfig
from odyssey.corpora.config import CorpusConfig

corpus_app = typer.Typer(help="Build and inspect text corpora.", no_args_is_help=True)

# A trailing positional that looks like ``key=value`` (and is not an existing path) is a
# config override rather than an input path.
_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def split_inputs_and_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    paths, overrides = [], []
    for item in items:
        (overrides if _OVERRIDE.match(item) and not Path(item).exists() else paths).append(item)
    return paths, overrides


@corpus_app.command("build")
def build(
    name: str = typer.Argument(..., help="Name of the corpus (recorded in its manifest)."),
    extra: list[str] = typer.Argument(
        None, help="More input paths (after --from), and key=value config overrides.",
        show_default=False,
    ),
    from_: list[str] = typer.Option(
        None, "--from", help="Input: folder, .txt, .jsonl, .parquet or saved datasets directory. "
        "Repeatable; `--from a b c` also works.", show_default=False,
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Corpus directory to create."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with corpus settings."),
    text_field: str = option_for(CorpusConfig, "text_field", "--text-field"),
    seed: int = option_for(CorpusConfig, "seed", "--seed"),
    ratios: str = option_for(CorpusConfig, "ratios", "--ratios"),
    license_: str = option_for(CorpusConfig, "license", "--license"),
    encoding_errors: str = option_for(CorpusConfig, "encoding_errors", "--encoding-errors"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing corpus at --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    drop_synthetic: str = typer.Option(
        None, "--drop-synthetic", help="Drop model-generated documents: a detector file from `odyssey detect "
        "fit` (statistic, direction and threshold learned from labelled text; copied into the manifest), or a "
        "number: a threshold of --detector-score in its conventional direction.", show_default=False),
    detector_model: str = option_for(DetectConfig, "model", "--detector-model", more="(numeric --drop-synthetic)"),
    detector_reference: str = option_for(DetectConfig, "reference", "--detector-reference", "--detector-observer",
                                         more="(numeric --drop-synthetic)"),
    detector_score: str = option_for(DetectConfig, "score", "--detector-score", more="(numeric --drop-synthetic)"),
) -> None:
    """Read, clean, deduplicate and split documents into a corpus directory.

    Example: odyssey corpus build legal --from data/legal extra.jsonl --out corpora/legal seed=1
    """
    from odyssey.config import resolve
    from odyssey.corpora.build import build_corpus
    from odyssey.errors import ConfigError

    more_paths, overrides = split_inputs_and_overrides(list(extra or []))
    paths = list(from_ or []) + more_paths
    if not paths:
        raise ConfigError("no input given", "name files or folders with --from PATH [PATH...]")
    cfg = resolve(
        CorpusConfig, config, overrides,
        values={"text_field": text_field, "seed": seed, "ratios": ratios, "license": license_,
                "encoding_errors": encoding_errors},
    )
    keep = None
    if drop_synthetic:  # the corpus stage takes a filter; detection is composed here
        from odyssey.collapse.calibrate import SyntheticFilter

        detector = _synthetic_detector(drop_synthetic, detector_model, detector_reference, detector_score)
        keep = SyntheticFilter(detector, progress=progress)
    result = build_corpus(name, paths, out, cfg, keep=keep, overwrite=overwrite, progress=progress)
    _render(result)


def _synthetic_detector(spec: str, model: str | None, reference: str | None, score: str | None):
    """The detector --drop-synthetic names: a fitted detector file, or a hand-set threshold."""
    from odyssey.errors import ConfigError

    try:
        threshold = float(spec)
    except ValueError:
        threshold = None
    if threshold is None:
        from odyssey.cli.detect import load_detector

        if model or reference or score:
            raise ConfigError("--detector-model, --detector-reference and --detector-score go with a numeric "
                              "--drop-synthetic", f"the detector file {spec} names its own models and statistic")
        return load_detector(Path(spec))
    from odyssey.collapse.calibrate import hand_set_detector
    from odyssey.config import resolve

    cfg = resolve(DetectConfig, None, [], values={"model": model, "reference": reference, "score": score})
    return hand_set_detector(threshold, cfg)


def _render(result) -> None:
    from rich.table import Table

    from odyssey.cli import make_console

    console = make_console()
    table = Table(title=f"corpus {result.manifest['name']} → {result.out_dir}", title_justify="left")
    table.add_column("split")
    table.add_column("documents", justify="right")
    table.add_column("bytes", justify="right")
    for split, info in result.manifest["splits"].items():
        table.add_row(split, f"{info['documents']:,}", f"{info['bytes']:,}")
    table.add_row("total", f"{result.documents:,}", f"{result.bytes:,}", style="bold")
    console.print(table)
    dropped = ", ".join(f"{k} {v:,}" for k, v in result.dropped.items()) or "none"
    console.print(f"dropped: {dropped}", highlight=False)
    synthetic = result.manifest.get("synthetic_filter")
    if synthetic:
        console.print(f"synthetic: {len(synthetic['documents']):,} documents {synthetic['rule']} "
                      "(listed in manifest.json)", highlight=False)


@corpus_app.command("quality")
def quality(
    corpus: str = typer.Argument(..., help="Corpus directory (or any .txt/.jsonl data spec)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with quality settings."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object on stdout."),
    html: Path = typer.Option(None, "--html", help="Also write an HTML report here."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. leakage_ngram=8",
                                          show_default=False),
) -> None:
    """Near duplicates, exact duplicates, train/test leakage, lengths, characters and
    boilerplate lines of a corpus.

    Example: odyssey corpus quality corpora/legal --html quality.html
    """
    import json

    from odyssey.config import resolve
    from odyssey.corpora.config import QualityConfig
    from odyssey.corpora.quality import corpus_quality, render_html

    report = corpus_quality(corpus, resolve(QualityConfig, config, list(overrides or [])))
    if html:
        render_html(report, html)
    if as_json:
        print(json.dumps(report))
        return
    _render_quality(report)
    if html:
        from odyssey.cli import make_console

        make_console().print(f"report: {html}")


def _render_quality(r: dict) -> None:
    from rich.table import Table

    from odyssey.cli import make_console

    console = make_console()
    table = Table(title=f"quality of {r['corpus']}: "
                        + ", ".join(f"{k} {v:,}" for k, v in r["documents"].items()) + " documents",
                  title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    ex, nd = r["exact_duplicates"], r["near_duplicates"]
    table.add_row("exact duplicates", f"{ex['count']:,} ({ex['rate']:.2%}; {ex['cross_split']} across splits)")
    table.add_row(f"near duplicates (Jaccard ≥ {nd['threshold']:g})",
                  f"{nd['count']:,} ({nd['rate']:.2%}; {nd['clusters']} clusters)")
    if r["leakage"]:
        lk = r["leakage"]
        for split in ("valid", "test"):
            if lk.get(split) and lk[split]["documents"]:
                table.add_row(f"{split} documents leaked (≥ {lk['min_overlap']:.0%} of {lk['ngram']}-grams in train)",
                              f"{lk[split]['leaked']:,} of {lk[split]['documents']:,} ({lk[split]['rate']:.2%})")
    for unit in ("chars", "words"):
        q = r["lengths"][unit]
        table.add_row(f"{unit} per document (p5 / median / p95)", f"{q['p5']:,.0f} / {q['p50']:,.0f} / {q['p95']:,.0f}")
    cs = r["charset"]
    table.add_row("characters: ASCII / letters / digits / whitespace",
                  f"{cs['ascii']:.1%} / {cs['letters']:.1%} / {cs['digits']:.1%} / {cs['whitespace']:.1%}")
    table.add_row("punctuation / symbols / control, U+FFFD",
                  f"{cs['punctuation']:.1%} / {cs['symbols']:.1%} / {cs['control']:.2%}, {cs['replacement']:,}")
    table.add_row("scripts of letters", ", ".join(f"{s} {v:.1%}" for s, v in cs["scripts"]) or "–")
    bp = r["boilerplate"]
    table.add_row(f"boilerplate lines (in ≥ {bp['min_documents']} documents)",
                  f"{bp['distinct_lines']:,} lines, {bp['line_share']:.2%} of lines, "
                  f"{bp['documents_affected']:.1%} of documents")
    console.print(table)
    for b in bp["top"][:5]:
        console.print(f"  {b['documents']:>5} × {b['line'][:100]}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(corpus_app, name="corpus")
