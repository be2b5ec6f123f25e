"""The built-in sources of the default world: chunking, the registry, provenance and
the Python documentation renderer."""

from __future__ import annotations

import colorsys
import logging
import math
import os
import re
import time

import pytest

from odyssey.corpora.sources import (
    SOURCES,
    Registry,
    Source,
    chunk_documents,
    chunk_text,
    get_source,
)
from odyssey.corpora.sources.pydocs import module_name, render_source


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("text, target, max_bytes, expected", [
    ("", 10, None, []),
    ("\n\n  \n", 10, None, []),
    ("one", 10, None, ["one"]),
    ("aaa\n\nbbb\n\nccc", 6, None, ["aaa\n\nbbb", "ccc"]),
    ("A\n\nB\n\nC", 3, None, ["A\n\nB", "C"]),
    # a tail under a quarter of the target joins the piece before
    ("aaaaaaaa\n\nb", 8, None, ["aaaaaaaa\n\nb"]),
    # blank lines around pieces go; indentation and inner blank lines stay
    ("\n\ndef f():\n    x = 1\n\n    y = 2\n\n\n", 100, None, ["def f():\n    x = 1\n\n    y = 2"]),
    # a paragraph over max_bytes is gathered line by line
    ("l1\nl2\nl3\nl4", 5, 6, ["l1\nl2", "l3\nl4"]),
    # a piece closes early rather than take a paragraph past max_bytes
    ("aa\n\nbbbbbbbb", 6, 9, ["aa", "bbbbbbbb"]),
    # a line over max_bytes is cut at a space
    ("x" * 12 + " " + "y" * 12, 10, 15, ["x" * 12, "y" * 12]),
])
def test_chunk_text(text, target, max_bytes, expected):
    assert chunk_text(text, target, max_bytes) == expected


def test_chunk_text_keeps_every_word_in_order_and_bounds_sizes():
    text = "\n\n".join(f"Paragraph {i}.\n" + "word " * (i % 37) for i in range(300))
    pieces = chunk_text(text, 400)
    assert _squash(" ".join(pieces)) == _squash(text)
    assert all(len(p.encode()) <= 800 for p in pieces)
    assert all(len(p.encode()) >= 100 for p in pieces)


def test_chunk_documents_ids_and_meta():
    docs = [{"text": "a" * 5 + "\n\n" + "b" * 5, "id": "s:x", "meta": {"file": "f"}},
            {"text": "short", "id": "s:y", "meta": {}}]
    out = list(chunk_documents(docs, 5))
    assert [d["id"] for d in out] == ["s:x#0", "s:x#1", "s:y"]
    assert out[1]["meta"] == {"file": "f", "chunk": 1}


def test_registry_refuses_duplicates_and_non_sources():
    source = get_source("sotu")
    with pytest.raises(ValueError, match="already registered"):
        Registry("source", Source, [source, source])
    with pytest.raises(TypeError):
        Registry("source", Source, ["sotu"])
    assert SOURCES.names() == ["wikipedia", "sotu", "licenses", "shakespeare", "python-docs", "python-source"]


def test_missing_package_says_how_to_install():
    ghost = Source("ghost", "no-such-package-odyssey", "none", "nothing", "pip install ghost", lambda prov: iter(()))
    with pytest.raises(Exception, match="not installed") as err:
        ghost.version()
    assert err.value.hint == "pip install ghost"


@pytest.mark.parametrize("name", ["sotu", "licenses", "shakespeare"])
def test_small_sources_read_with_provenance(name):
    docs, prov = get_source(name).documents()
    assert docs and all(d["text"].strip() and d["id"].startswith(f"{name}:") for d in docs)
    entry = prov.as_dict(used={docs[0]["meta"]["file"]})
    assert [f["path"] for f in entry["files"]] == [docs[0]["meta"]["file"]]
    assert not os.path.isabs(entry["files"][0]["path"])


def test_sotu_and_licenses_parse_their_files():
    sotu, _ = get_source("sotu").documents()
    assert sotu[0]["id"] == "sotu:1790-Washington-1" and sotu[0]["meta"]["year"] == 1790
    licenses, _ = get_source("licenses").documents()
    mit = next(d for d in licenses if d["meta"]["key"] == "mit")
    assert mit["text"].startswith("Permission is hereby granted") and mit["meta"]["spdx"] == "MIT"
    assert not any(d["text"].startswith("---\nkey:") for d in licenses)  # front matter is not text


SOURCE = '''"""Module doc."""
__all__ = ["Public", "func", "coro"]

def func(a, b=os.environ, *, c: int = 1) -> str:
    """Do it."""

async def coro(x):
    """Wait."""

def not_exported():
    """Hidden by __all__."""

class Public(Base, metaclass=Meta):
    """A class."""

    @property
    def size(self):
        """The size."""

    def method(self, y=None):
        """A method."""

    def _private(self):
        """Private."""

    def undocumented(self):
        pass
'''

RENDERED = '''mod
===

Module doc.

func(a, b=os.environ, *, c: int=1) -> str
    Do it.

async coro(x)
    Wait.

class Public(Base, metaclass=Meta)
    A class.

    size
        The size.

    method(self, y=None)
        A method.
'''


def test_render_source_reads_docstrings_without_importing():
    assert render_source("mod", SOURCE) == RENDERED
    assert render_source("empty", "x = 1\n") == ""


@pytest.mark.parametrize("rel, name", [
    ("json/decoder.py", "json.decoder"), ("json/__init__.py", "json"), ("_pydecimal.py", None),
    ("asyncio/__main__.py", None), ("this.py", None), ("tkinter/ttk.py", None),
])
def test_module_names(rel, name):
    assert module_name(rel) == name


def test_python_docs_do_not_depend_on_what_the_process_patched(monkeypatch):
    """Libraries patch the standard library at import (torch replaces inspect.getfile,
    transformers adds logging.Logger.warning_once); the text must not change."""
    before, _ = get_source("python-docs").documents()

    def patched(self):
        """Added by some library."""

    monkeypatch.setattr(logging.Logger, "odyssey_patched", patched, raising=False)
    monkeypatch.setattr(colorsys, "rgb_to_hsv", patched)
    monkeypatch.setattr(math, "odyssey_patched", patched, raising=False)
    monkeypatch.setattr(time, "odyssey_patched", patched, raising=False)
    after, _ = get_source("python-docs").documents()
    assert after == before
    ids = set(d["id"] for d in before)
    assert {"python-docs:json.decoder", "python-docs:logging"} <= ids
    # Modules written in C can only be read live, and which ones import differs between builds
    # of the same Python version: they are left out, so the text depends on the source files only.
    assert not {"python-docs:math", "python-docs:sys", "python-docs:time"} & ids
    text = "\n".join(d["text"] for d in before)
    assert "environ({" not in text and not re.search(r" at 0x[0-9a-f]+", text)
    secrets = [v for v in os.environ.values() if len(v) >= 16]
    assert not any(v in text for v in secrets)
