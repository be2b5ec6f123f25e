"""`odyssey world` commands: the embedded default world (odyssey.corpora.world)."""

from __future__ import annotations

from pathlib import Path

import typer

from odyssey.cli.options import option_for
from odyssey.corpora.world import WorldConfig

world_app = typer.Typer(
    help="The embedded default world: a general corpus and domains built from text that "
    "installed packages carry.",
    no_args_is_help=True,
)


@world_app.command("build")
def build(
    overrides: list[str] = typer.Argument(
        None, help="key=value config overrides, e.g. domain_max_bytes=100000.", show_default=False),
    out: Path = typer.Option(None, "--out", "-o", show_default=False,
                             help="World directory (default: $ODYSSEY_HOME/world or ~/.cache/odyssey/world)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with world settings."),
    seed: int = option_for(WorldConfig, "seed", "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild even if the world is already there."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress per corpus."),
) -> None:
    """Build the general corpus and the domains; does nothing if they are already built.

    Example: odyssey world build --out world domain_max_bytes=100000
    """
    from odyssey.config import resolve
    from odyssey.corpora.world import build_world

    cfg = resolve(WorldConfig, config, list(overrides or []), values={"seed": seed})
    world = build_world(out, cfg, overwrite=overwrite, progress=progress)
    _render(world)
    _check(world)


@world_app.command("show")
def show(
    out: Path = typer.Option(None, "--out", "-o", show_default=False,
                             help="World directory (default: $ODYSSEY_HOME/world or ~/.cache/odyssey/world)."),
) -> None:
    """List the corpora of a built world."""
    from odyssey.corpora.world import load_world

    _render(load_world(out))


def _check(world: dict) -> None:
    """Say whether the world is the one every machine builds (the default config only)."""
    from rich.console import Console

    from odyssey.corpora.world import compare_with_expected

    console = Console(stderr=True, highlight=False)
    differences = compare_with_expected(world)
    if differences:
        console.print("warning: this world differs from the expected default world "
                      "(its figures will not match the README's):", markup=False)
        for line in differences:
            console.print(f"  {line}", markup=False)
    console.print(f"world content sha256 {world.get('content_sha256')}", markup=False)


def _render(world: dict) -> None:
    from rich.table import Table

    from odyssey.cli import make_console

    table = Table(title=f"world → {world['root']}  (built in {world['build_seconds']} s)", title_justify="left")
    for column in ("corpus", "kind", "documents", "bytes", "train", "valid", "test"):
        table.add_column(column, justify="left" if column in ("corpus", "kind") else "right")
    for c in [world["general"], *world["domains"]]:
        splits = c["splits"]
        table.add_row(c["name"], c["kind"], f"{c['documents']:,}", f"{c['bytes']:,}",
                      *(f"{splits[s]['documents']:,}" for s in ("train", "valid", "test")))
    make_console().print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(world_app, name="world")
