"""`odyssey models`: the real pretrained LMs that registry packages carry and odyssey loads."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

console = Console(markup=False)


def models_command(
    as_json: bool = typer.Option(False, "--json", help="print the list as JSON"),
) -> None:
    """List the pretrained LMs odyssey can load offline (--model NAME), and how to install them."""
    from odyssey.models.catalog import catalog_rows

    rows = catalog_rows()
    if as_json:
        print(json.dumps(rows))
        return
    render_models(rows)


def render_models(rows: list[dict]) -> None:
    table = Table(title="pretrained LMs from registry packages (--model NAME)")
    for col in ("name", "parameters", "quantization", "license", "size", "installed"):
        table.add_column(col, justify="right" if col in ("parameters", "size") else "left")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r["size_bytes"] else f"{r['download_mb']} MB wheel"
        installed = "yes" if r["installed"] and not r["missing"] else \
            ("needs " + ", ".join(r["missing"]) if r["installed"] else "no")
        table.add_row(r["name"], r["parameters"], r["quantization"], r["license"], size, installed)
    console.print(table)
    for r in rows:
        console.print(f"{r['name']}: {r['description']}")
        console.print(f"  file: {r['path']}" if r["path"] else f"  install: {r['install']}")
        if r["path"] and r["missing"]:
            console.print(f"  install: {r['install']}")


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
