"""An HTML view of a token attribution: the text with each token shaded by its change
in loss (red: worse after, blue: better), before/after NLL in a tooltip, and the
per-category table above it. One self-contained file, no script; every string from
the data (token text, document ids, paths) goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import os

import numpy as np

from odyssey.analysis.categories import CATEGORIES
from odyssey.analysis.tokens import Attribution
from odyssey.io import atomic_write

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { padding: .2em .6em; border-bottom: 1px solid #ddd; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.doc { font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.6;
       border: 1px solid #ccc; padding: 1em; margin: 1em 0; }
.doc span { border-radius: 2px; }
.nl { color: #999; }
.legend span { padding: 0 .5em; }
"""


def _color(d: float, scale: float) -> str:
    """Red for a positive change, blue for a negative one; opacity grows with |d|."""
    a = min(1.0, abs(d) / scale) * 0.85 if scale > 0 else 0.0
    rgb = "220,40,40" if d > 0 else "40,90,220"
    return f"rgba({rgb},{a:.3f})"


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _category_table(summary: dict) -> str:
    rows = ["<tr><th>category</th><th>tokens</th><th>&Delta; NLL (nats)</th><th>share</th>"
            "<th>share of |&Delta;|</th><th>mean &Delta;/token</th></tr>"]
    fmt = lambda v, f: "&ndash;" if v is None else format(v, f)  # noqa: E731
    for c in CATEGORIES:
        r = summary["by_category"][c]
        rows.append(f"<tr><td>{_e(c)}</td><td>{r['tokens']:,}</td><td>{r['delta']:+.2f}</td>"
                    f"<td>{fmt(r['share'], '.1%')}</td><td>{fmt(r['abs_share'], '.1%')}</td>"
                    f"<td>{fmt(r['mean_delta'], '+.4f')}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _document(att: Attribution, i: int, scale: float, categories: list[str]) -> str:
    sl = att.document(i)
    ids, before, after = att.token_ids[sl], att.nll_before[sl], att.nll_after[sl]
    cats = att.categories[sl]
    parts = []
    for t, b, a, c in zip(ids.tolist(), before.tolist(), after.tolist(), cats.tolist(), strict=True):
        s = att.strings.get(t, "")
        title = (f"{s!r} ({categories[c]})\nbefore {b:.3f}  after {a:.3f}  "
                 f"\u0394 {a - b:+.3f} nats")
        shown = _e(s)
        if "\n" in s:  # make line breaks visible: they are what the paper is about
            shown = shown.replace("\n", '<span class="nl">\u21b5</span>\n')
        parts.append(f'<span style="background:{_color(a - b, scale)}" title="{_e(title)}">{shown}</span>')
    total = float((after - before).sum())
    return (f"<h3>document {_e(att.doc_ids[i])} &mdash; {len(ids):,} tokens, "
            f"&Delta; {total:+.2f} nats</h3><div class=\"doc\">{''.join(parts)}</div>")


def render_token_html(attribution: Attribution, out_path: str | os.PathLike, max_documents: int = 20) -> None:
    """Write the HTML view of ``attribution`` (its first ``max_documents`` documents) to
    ``out_path``, atomically. The colour scale saturates at the 99th percentile of
    |change| over the tokens shown.

    >>> render_token_html(attribute("evals/base", "evals/adapted"), "tokens.html")
    """
    att = attribution
    summary = att.summary()
    n_docs = min(max_documents, len(att.doc_ids))
    shown = att.delta[:int(att.doc_offsets[n_docs])]
    scale = float(np.percentile(np.abs(shown), 99)) if len(shown) else 0.0
    top = "".join(
        f"<tr><td>{_e(repr(t['token']))}</td><td>{_e(t['category'])}</td><td>{t['count']:,}</td>"
        f"<td>{t['delta']:+.2f}</td></tr>"
        for t in summary["top_types"]["worse"][:10] + summary["top_types"]["better"][:10])
    body = [
        f"<h1>Token attribution</h1><p>before: <code>{_e(att.before)}</code><br>"
        f"after: <code>{_e(att.after)}</code><br>domain terms against: <code>{_e(att.reference)}</code></p>",
        f"<p>Total change {summary['total_delta']:+.2f} nats over {summary['tokens']:,} tokens "
        f"({summary['documents']:,} documents); half of the |change| is carried by "
        f"{summary['half_mass_types']:,} of {summary['types']:,} token types "
        f"({summary['half_mass_share']:.1%}).</p>",
        _category_table(summary),
        "<h2>Top token types</h2><table><tr><th>token</th><th>category</th><th>count</th>"
        f"<th>&Delta; NLL</th></tr>{top}</table>",
        f'<h2>Text</h2><p class="legend"><span style="background:{_color(1, 1)}">worse after</span>'
        f'<span style="background:{_color(-1, 1)}">better after</span> (full colour at |&Delta;| = '
        f"{scale:.3f} nats; hover a token for its NLLs)</p>",
        *(_document(att, i, scale, list(CATEGORIES)) for i in range(n_docs)),
    ]
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>odyssey tokens</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
    with atomic_write(out_path) as f:
        f.write(page)
