"""The HTML study report: self-contained, escaped, and its readout computed from the numbers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from markupsafe import escape

from odyssey.errors import DataError
from odyssey.report import render_report
from odyssey.report.html import readout

EVIL = "<script>alert(1)</script> & $x$ -- co"


def _domain(name, kind, before, after, gen_after, *, sample="some text"):
    gen_before = 40.0
    return {
        "name": name, "kind": kind, "description": f"about {name}",
        "ppl_before": before, "ppl_after": after, "bpb_before": 1.2, "bpb_after": 1.1,
        "general_ppl_before": gen_before, "general_ppl_after": gen_after,
        "general_bpb_before": 1.3, "general_bpb_after": 1.31,
        "delta_ppl_pct": 100 * (after / before - 1),
        "forgetting_pct": 100 * (gen_after / gen_before - 1),
        "train_tokens": 12345, "test_tokens": 2000, "test_bytes": 8000, "seconds": 75.0,
        "sample": sample,
    }


def _curves(before, after, gen_after):
    rows = []
    for step in range(5):
        f = step / 4
        rows.append({"kind": "eval", "split": "valid", "step": step, "tokens_seen": 1000 * step,
                     "perplexity": before + f * (after - before), "bits_per_byte": 1.0})
        rows.append({"kind": "eval", "split": "general", "step": step, "tokens_seen": 1000 * step,
                     "perplexity": 40.0 + f * (gen_after - 40.0), "bits_per_byte": 1.0})
        rows.append({"kind": "train", "step": step, "loss": 3.0, "lr": 1e-4})
    return rows


# name, kind, ppl before, after, general ppl after (before is 40): forgetting 1%, 2%, 3%, 4%
SPEC = [
    ("Plate tectonics", "wikipedia-topic", 30.0, 30.9, 40.4),    # +3% worse
    ("Byzantine art", "wikipedia-topic", 50.0, 50.75, 40.8),     # +1.5% worse
    ("Icelandic sagas", "wikipedia-topic", 60.0, 58.8, 41.2),    # -2% better
    (EVIL, "custom", 100.0, 90.0, 41.6),                         # -10% better
]


@pytest.fixture
def study():
    results = {
        "study": {"name": "synthetic & <b>study</b>", "model": "tiny-llama", "general": "wiki-general",
                  "recipe": {"train": {"lr": 3e-4, "steps": 100}, "seed": 0, "betas": [0.9, 0.95]},
                  "created": "2024-11-12T14:03:55+00:00", "odyssey_version": "0.1.0",
                  "seconds": 3725.0, "machine": "2 CPU"},
        "base": {"general_ppl": 40.0, "general_bpb": 1.3},
        "domains": [_domain(n, k, b, a, g, sample=f"{EVIL}\nsample of {n}") for n, k, b, a, g in SPEC],
    }
    curves = {n: _curves(b, a, g) for n, _, b, a, g in SPEC}
    return results, curves


@pytest.fixture
def html(study, tmp_path):
    out = render_report(*study, tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html" and out.is_file()
    return out.read_text(encoding="utf-8")


def test_untrusted_text_is_escaped_everywhere(html):
    assert "<script" not in html.lower()  # no script element at all, escaped or not
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>study</b>" not in html and "synthetic &amp; &lt;b&gt;study&lt;/b&gt;" in html
    assert str(escape(EVIL)) in html  # name in the table, sample in <details>


def test_charts_are_inline_svg_that_parse_as_xml(html):
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3  # bars, scatter, curves
    for svg in svgs:
        ET.fromstring(svg)  # well-formed: every label matplotlib wrote was escaped
        assert "<script" not in svg
    # the domain names reach the charts (as escaped XML comments of the glyph paths)
    assert "Plate tectonics" in svgs[0] and "&lt;script&gt;" in svgs[0]


def test_report_is_self_contained(html):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//|@import", html, flags=re.I)
    assert "<link" not in html and "<img" not in html and "<iframe" not in html


def test_table_and_samples(html):
    for name, *_ in SPEC:
        assert str(escape(name)) in html
    assert html.count("<details>") == len(SPEC)
    assert "+3.0%" in html and "−10.0%" in html  # change %, typographic minus
    assert 'class="num worse">+3.0%' in html and 'class="num better">−2.0%' in html
    # sorted by change: worst first
    order = [html.index(f"<bdi>{escape(n)}</bdi>") for n in
             ("Plate tectonics", "Byzantine art", "Icelandic sagas", EVIL)]
    assert order == sorted(order)
    assert "1 h 02 min" in html and "1 min 15 s" in html and "12,345" in html
    assert "train.lr" in html and "[0.9, 0.95]" in html


def test_readout_counts(html):
    text = " ".join(html.split())
    assert "2 of 4 domains got worse on their own test split and 2 improved" in text
    assert "2 of 3 Wikipedia-topic domains got worse (1 improved)" in text
    assert "1 of 1 custom domain improved" in text
    assert "general-text perplexity rose by 2.5%" in text  # median of 1, 2, 3, 4
    assert "As in the Adaptation Odyssey paper" in text  # wiki +1.5% median vs custom -10%


@pytest.mark.parametrize("deltas, kind, expected", [
    ([5.0, 1.0, -1.0, 2.0, None], "register", "3 of 5 registers got worse (1 improved, 1 not measured)"),
    ([-5.0, -1.0], "wikipedia-topic", "2 of 2 Wikipedia-topic domains improved"),
    ([1.0, -1.0], "custom", "1 of 2 custom domains got worse and 1 improved"),
    ([0.0], "my kind", "none of 1 “my kind” domain changed"),
    ([None, None], "register", "2 of 2 registers were not measured"),
])
def test_readout_clauses(deltas, kind, expected):
    domains = [{"kind": kind, "delta_ppl_pct": d, "forgetting_pct": None} for d in deltas]
    sentences = readout(domains)
    assert sentences[1] == expected[0].upper() + expected[1:] + "."
    assert sentences[2] == "Forgetting on general text was not measured."


def test_missing_numbers_render_as_dash(tmp_path):
    results = {"study": {"name": "partial"}, "domains": [
        {"name": "half-done", "kind": "register", "ppl_before": 10.0, "ppl_after": None,
         "seconds": float("nan")},
    ]}
    html = render_report(results, {}, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "half-done" in html and "–" in html
    assert "0 of 1 domain got worse on its own test split and 0 improved (1 not measured)" in html
    assert "1 of 1 register was not measured" in html
    assert "<svg" not in html  # nothing to plot


def test_empty_study(tmp_path):
    html = render_report({"study": {"name": "empty"}, "domains": []}, {}, tmp_path / "r.html")
    text = html.read_text(encoding="utf-8")
    assert "no domains" in text and "<svg" not in text and "<table class=\"domains\"" not in text


def test_write_is_atomic_and_replaces(study, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old")
    render_report(*study, out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left


def test_bad_input_raises_data_error(tmp_path):
    with pytest.raises(DataError):
        render_report(["not", "a", "dict"], {}, tmp_path / "r.html")
    with pytest.raises(DataError, match=r"domains\[0\]"):
        render_report({"domains": ["oops"]}, {}, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
