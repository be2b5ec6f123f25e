"""`odyssey corpus` commands."""

from __future__ import annotations

import re
from pathlib import Path

import typer

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
    text_field: str = typer.Option(None, "--text-field", help="Field/column holding the text (default: text)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the split shuffle (default: 0)."),
    ratios: str = typer.Option(None, "--ratios", help="train,valid,test fractions (default: 0.8,0.1,0.1)."),
    license_: str = typer.Option(None, "--license", help="License of the text, recorded in the manifest."),
    encoding_errors: str = typer.Option(
        None, "--encoding-errors", help="Invalid UTF-8: strict (error), skip (drop document) or replace."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing corpus at --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Read, clean, deduplicate and split documents into a corpus directory.

    Example: odyssey corpus build legal --from data/legal extra.jsonl --out corpora/legal seed=1
    """
    from odyssey.config import resolve
    from odyssey.corpora.build import build_corpus
    from odyssey.corpora.config import CorpusConfig
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
    result = build_corpus(name, paths, out, cfg, overwrite=overwrite, progress=progress)
    _render(result)


def _render(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(corpus_app, name="corpus")
