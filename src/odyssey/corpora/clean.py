"""Cleaning steps over a stream of documents: normalize, filter, deduplicate.

A filter answers one question about one document: :meth:`Filter.reason` returns
``None`` to keep it or a short reason (``"empty"``, ``"binary"``...) to drop it.
:func:`clean` runs the steps and counts every drop by reason, so the manifest can
say what was removed and why.

>>> dropped = Counter()
>>> kept = list(clean(docs, default_filters(min_chars=20), dropped))
>>> kept = deduplicate(kept, dropped)
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from odyssey.io import sha256_text

WHITESPACE_CONTROLS = frozenset("\t\n\r\f\v")


def normalize_text(text: str) -> str:
    """Unicode NFC, so that ``"e\\u0301"`` and ``"\\u00e9"`` are the same text (and hash)."""
    return unicodedata.normalize("NFC", text)


class Filter:
    """Base class: subclasses set ``name`` and implement :meth:`reason`."""

    name = "filter"

    def reason(self, doc: dict) -> str | None:
        """``None`` to keep ``doc``, else why it is dropped."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EmptyFilter(Filter):
    """Drops documents that are blank (nothing but whitespace)."""

    name = "empty"

    def reason(self, doc: dict) -> str | None:
        return "empty" if not doc["text"].strip() else None


class BinaryFilter(Filter):
    """Drops binary data read as text: any NUL character, or more than ``max_fraction``
    of the characters being non-whitespace control characters or U+FFFD (what an
    undecodable byte becomes)."""

    name = "binary"

    def __init__(self, max_fraction: float = 0.3):
        self.max_fraction = max_fraction

    def reason(self, doc: dict) -> str | None:
        text = doc["text"]
        if "\x00" in text:
            return "binary"
        bad = sum(
            1 for ch in text
            if ch == "\ufffd" or (ch not in WHITESPACE_CONTROLS and unicodedata.category(ch) == "Cc")
        )
        return "binary" if bad > self.max_fraction * len(text) else None


class MinCharsFilter(Filter):
    """Drops documents with fewer than ``min_chars`` characters, surrounding whitespace aside."""

    name = "too_short"

    def __init__(self, min_chars: int):
        self.min_chars = min_chars

    def reason(self, doc: dict) -> str | None:
        return "too_short" if len(doc["text"].strip()) < self.min_chars else None


def default_filters(min_chars: int = 1) -> list[Filter]:
    """The filters ``odyssey corpus build`` runs, in order (the first reason wins)."""
    filters: list[Filter] = [EmptyFilter(), BinaryFilter()]
    if min_chars > 1:
        filters.append(MinCharsFilter(min_chars))
    return filters


def clean(docs: Iterable[dict], filters: Sequence[Filter], dropped: Counter) -> Iterator[dict]:
    """NFC-normalize each document's text, then yield it unless a filter drops it
    (``dropped[reason] += 1``). Input documents are not modified."""
    for doc in docs:
        doc = {**doc, "text": normalize_text(doc["text"])}
        for f in filters:
            why = f.reason(doc)
            if why is not None:
                dropped[why] += 1
                break
        else:
            yield doc


def deduplicate(docs: Iterable[dict], dropped: Counter) -> list[dict]:
    """Keep one document per exact text (sha256 of the text, which :func:`clean` has
    normalized); count the others as ``"duplicate"``.

    The survivor is the copy with the smallest ``(id, meta.source)``, so which id is
    kept does not depend on the order the inputs were read in.
    """
    best: dict[str, dict] = {}
    for doc in docs:
        digest = sha256_text(doc["text"])
        other = best.get(digest)
        if other is None:
            best[digest] = doc
            continue
        dropped["duplicate"] += 1
        if _order_key(doc) < _order_key(other):
            best[digest] = doc
    return list(best.values())


def _order_key(doc: dict) -> tuple[str, str]:
    return str(doc["id"]), str(doc.get("meta", {}).get("source", ""))
