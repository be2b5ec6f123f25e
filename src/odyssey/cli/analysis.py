"""`odyssey tokens` and `odyssey similarity`: why a change in loss happened, and how much
a domain resembles the base model's pretraining data (odyssey.analysis)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from odyssey.analysis.config import SimilarityConfig, TokensConfig
from odyssey.cli import make_console
from odyssey.cli.options import option_for
from odyssey.config import resolve
from odyssey.io import json_safe

console = make_console()


# -- odyssey tokens -------------------------------------------------------------------------
def tokens_command(
    before: Path = typer.Argument(..., help="evaluation directory before (eval.json + tokens.safetensors)"),
    after: Path = typer.Argument(..., help="evaluation directory after, of the same text"),
    reference: str = typer.Option(None, "--reference", help="corpus or text path the domain terms are "
                                  "found against (default: wordfreq's English frequencies)"),
    tokenizer: str = typer.Option(None, "--tokenizer", help="tokenizer path (default: the model in eval.json)"),
    html: Path = typer.Option(None, "--html", help="write the shaded text view to this HTML file"),
    config: Path = typer.Option(None, "--config", help="YAML file with a TokensConfig"),
    top_k: int = option_for(TokensConfig, "top_k", "--top-k"),
    domain_z: float = option_for(TokensConfig, "domain_z", "--domain-z"),
    max_documents: int = option_for(TokensConfig, "html_max_documents", "--max-documents"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object on stdout"),
    overrides: list[str] = typer.Argument(None, help="TokensConfig key=value overrides"),
) -> None:
    """Split the change in loss between two evaluations by token category and type.

    Example: odyssey tokens study/runs/wiki-arts/evals/base-test study/runs/wiki-arts/evals/adapted-test --html arts.html
    """
    from odyssey.analysis.token_html import render_token_html
    from odyssey.analysis.tokens import attribute

    cfg = resolve(TokensConfig, config, overrides, values={
        "top_k": top_k, "domain_z": domain_z, "html_max_documents": max_documents})
    att = attribute(before, after, tokenizer=tokenizer, reference=reference, config=cfg)
    summary = att.summary()
    if html:
        render_token_html(att, html, max_documents=cfg.html_max_documents)
    if as_json:
        print(json.dumps(json_safe({**summary, "html": str(html) if html else None}), ensure_ascii=False))
        return
    render_tokens(summary, html)


def render_tokens(summary: dict, html: Path | None = None) -> None:
    pct = lambda v: "–" if v is None else f"{v:.1%}"  # noqa: E731
    table = Table(title=f"Δ NLL {summary['total_delta']:+.2f} nats over {summary['tokens']:,} tokens "
                  f"({summary['nll_before']:.1f} → {summary['nll_after']:.1f})", title_justify="left")
    for col in ("category", "tokens", "Δ nats", "share", "share of |Δ|", "mean Δ/token"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for cat, r in summary["by_category"].items():
        table.add_row(cat, f"{r['tokens']:,}", f"{r['delta']:+.2f}", pct(r["share"]), pct(r["abs_share"]),
                      "–" if r["mean_delta"] is None else f"{r['mean_delta']:+.4f}")
    console.print(table)
    for direction in ("worse", "better"):
        top = Table(title=f"top token types, {direction} after", title_justify="left")
        for col in ("token", "category", "count", "Δ nats", "mean Δ"):
            top.add_column(col, justify="left" if col in ("token", "category") else "right")
        for t in summary["top_types"][direction][:10]:
            top.add_row(repr(t["token"]), t["category"], f"{t['count']:,}", f"{t['delta']:+.2f}",
                        f"{t['mean_delta']:+.4f}")
        console.print(top)
    console.print(f"half of the |change| is carried by {summary['half_mass_types']:,} of "
                  f"{summary['types']:,} token types ({summary['half_mass_share']:.1%})", highlight=False)
    if summary["domain_terms"]:
        console.print(f"domain terms (vs {summary['reference']}): " + ", ".join(summary["domain_terms"][:15]),
                      highlight=False)
    if html:
        console.print(f"HTML view written to {html}")


# -- odyssey similarity -----------------------------------------------------------------------
def similarity_command(
    data: list[str] = typer.Option(None, "--data", help="CORPUS[:split] (default split train) or a text "
                                   "path; repeat to compare several with one reference"),
    reference: str = typer.Option(None, "--reference", help="the base model's pretraining corpus or a general "
                                  "corpus; 'wordfreq' for wordfreq's English frequencies (default: the "
                                  "--model's recorded pretraining corpus, else wordfreq)"),
    model: str = typer.Option(None, "--model", help="base model: adds base_bits_per_byte"),
    config: Path = typer.Option(None, "--config", help="YAML file with a SimilarityConfig"),
    ngram: list[int] = option_for(SimilarityConfig, "ngram_orders", "--ngram", more="Repeat for several."),
    max_bytes: int = option_for(SimilarityConfig, "max_bytes", "--max-bytes"),
    embeddings: bool = option_for(SimilarityConfig, "embeddings", "--embeddings/--no-embeddings"),
    max_chunks: int = option_for(SimilarityConfig, "embed_max_chunks", "--max-chunks"),
    bpb_max_tokens: int = option_for(SimilarityConfig, "bpb_max_tokens", "--bpb-max-tokens"),
    device: str = option_for(SimilarityConfig, "device", "--device"),
    progress: bool = option_for(SimilarityConfig, "progress", "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json", help="print the measures as JSON on stdout (an object; a "
                                 "list with several --data)"),
    overrides: list[str] = typer.Argument(None, help="SimilarityConfig key=value overrides"),
) -> None:
    """How much a corpus resembles a reference: unigram JS divergence, n-gram overlap,
    embedding distances, rare-word rate and the base model's bits per byte.

    Example: odyssey similarity --data world/domains/licenses --reference world/general
    """
    from odyssey.analysis.reference_cache import cached_reference
    from odyssey.analysis.similarity import similarity
    from odyssey.errors import ConfigError

    if not data:
        raise ConfigError("--data required", "odyssey similarity --data CORPUS --reference GENERAL")
    cfg = resolve(SimilarityConfig, config, overrides, values={
        "ngram_orders": list(ngram) if ngram else None, "max_bytes": max_bytes, "embeddings": embeddings,
        "embed_max_chunks": max_chunks, "bpb_max_tokens": bpb_max_tokens, "device": device,
        "progress": progress})
    ref = cached_reference(reference, model=model, config=cfg)
    loaded = None
    if model is not None:
        from odyssey.models import load_model, load_tokenizer

        loaded = (load_model(model, device=cfg.device), load_tokenizer(model))
    results = [similarity(d, ref, model=loaded, config=cfg) for d in data]
    if as_json:
        out = [json_safe(r) for r in results]
        print(json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False))
        return
    render_similarity(results)


def render_similarity(results: list[dict]) -> None:
    first = results[0]
    title = f"similarity to {first['reference']} ({first['reference_kind']})"
    table = Table(title=title, title_justify="left")
    cols = ("data", "JS div", "n-gram overlap", "emb cos", "emb MMD²", "emb Fréchet", "rare rate", "base bpb")
    for col in cols:
        if col == "data":
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right")
    f = lambda v, spec=".4f": "–" if v is None else format(v, spec)  # noqa: E731
    for r in results:
        table.add_row(Path(r["data"]).name or r["data"], f(r["js_divergence"]), f(r["ngram_overlap"]),
                      f(r["embed_cosine_of_means"]), f(r["embed_mmd"]), f(r["embed_frechet"]),
                      f(r["rare_token_rate"]), f(r["base_bits_per_byte"]))
    console.print(table)
    for r in results:
        for note in r["notes"]:
            console.print(f"note ({Path(r['data']).name}): {note}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("tokens")(tokens_command)
    app.command("similarity")(similarity_command)
