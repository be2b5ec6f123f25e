"""The contract of a built-in text source, its provenance, and chunking.

A :class:`Source` names a package that carries text and a ``read`` function that
yields documents ``{"text", "id", "meta"}`` from it, recording every file it reads in
a :class:`Provenance` (path relative to the package, sha256, bytes). The world
(:mod:`odyssey.corpora.world`) filters and samples those documents and writes the
provenance of the files actually used into each corpus manifest.

>>> docs, prov = get_source("shakespeare").documents()
>>> prov.as_dict(used={d["meta"]["file"] for d in docs})["version"]
'0.6'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import platform
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from odyssey.errors import DataError
from odyssey.io import sha256_text

# The interpreter is the "package" that carries Python's documentation and source.
PYTHON = "python"


@dataclass(frozen=True)
class Source:
    """A built-in text source.

    ``read(prov)`` yields documents in a deterministic order and calls
    ``prov.read_text``/``prov.add_file`` for every file it reads; each document's
    ``meta["file"]`` names the file (as recorded) it came from.
    """

    name: str
    package: str  # distribution name for importlib.metadata, or PYTHON
    license: str
    description: str
    install: str  # how to get the package, for error hints
    read: Callable[[Provenance], Iterator[dict]]

    def version(self) -> str:
        if self.package == PYTHON:
            return platform.python_version()
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError as e:
            raise DataError(f"source {self.name!r} needs the package {self.package!r}, which is not installed",
                            self.install) from e

    def documents(self) -> tuple[list[dict], Provenance]:
        """Read every document of the source; return them with the provenance."""
        prov = Provenance(self)
        return list(self.read(prov)), prov


@dataclass
class Provenance:
    """The files a source read, with their sha256, relative to the package folder."""

    source: Source
    files: dict[str, dict] = field(default_factory=dict)

    def read_text(self, path: Path, root: Path) -> tuple[str, str]:
        """Read ``path`` as UTF-8, record it, and return ``(relative path, text)``."""
        data = path.read_bytes()
        rel = self.add_file(path, root, data)
        return rel, data.decode("utf-8")

    def add_file(self, path: Path, root: Path, data: bytes | None = None) -> str:
        data = path.read_bytes() if data is None else data
        rel = path.relative_to(root).as_posix()
        self.files[rel] = {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        return rel

    def as_dict(self, used: Iterable[str] | None = None) -> dict:
        """The manifest entry: package, version, license, the files (only ``used`` ones
        if given) and one sha256 over their ``path sha256`` lines."""
        keep = set(self.files) if used is None else set(used)
        files = [self.files[p] for p in sorted(keep & set(self.files))]
        digest = sha256_text("".join(f"{f['path']} {f['sha256']}\n" for f in files))
        return {
            "name": self.source.name,
            "package": self.source.package,
            "version": self.source.version(),
            "license": self.source.license,
            "description": self.source.description,
            "sha256": digest,
            "files": files,
        }


def package_dir(import_name: str, source: Source) -> Path:
    """The folder of an installed package, found without importing it (some of these
    packages cannot be imported here, or would pull in their dependencies)."""
    spec = importlib.util.find_spec(import_name)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise DataError(f"source {source.name!r} needs the package {source.package!r}, which is not installed",
                        source.install)
    return Path(locations[0])


# -- chunking ----------------------------------------------------------------------------
# A run of blank lines; the indentation of the line after it is not part of the break.
_PARAGRAPH_BREAK = re.compile(r"\n(?:[ \t]*\n)+")


def chunk_text(text: str, target_bytes: int, max_bytes: int | None = None) -> list[str]:
    """Cut ``text`` into pieces of about ``target_bytes`` at paragraph boundaries.

    Paragraphs (separated by blank lines) are gathered until a piece reaches
    ``target_bytes``, or closed early when the next paragraph would take it past
    ``max_bytes``. A piece is a slice of ``text``, so its newlines and indentation
    are the original ones. A paragraph longer than ``max_bytes`` (default
    ``2 * target_bytes``) is gathered line by line instead (a line longer than that is
    cut at spaces). A last piece under a quarter of the target joins the one before.
    Blank lines around a piece and trailing whitespace are dropped::

        "A\\n\\nB\\n\\nC", target 3:  A (1) + B (1+2) = 4 >= 3  ->  ["A\\n\\nB", "C"]

    >>> chunk_text("aaa\\n\\nbbb\\n\\nccc", target_bytes=6)
    ['aaa\\n\\nbbb', 'ccc']
    """
    max_bytes = max_bytes or 2 * target_bytes
    units: list[tuple[int, int]] = []
    for start, end in _paragraph_spans(text):
        if len(text[start:end].encode("utf-8")) > max_bytes:
            units.extend(_line_spans(text, start, end, max_bytes))
        else:
            units.append((start, end))
    spans: list[tuple[int, int]] = []
    first, last, size = -1, -1, 0  # the piece being gathered: text[first:last], size bytes
    for start, end in units:
        unit = len(text[start:end].encode("utf-8"))
        if first >= 0:
            gap = len(text[last:start].encode("utf-8"))
            if size + gap + unit > max_bytes:  # would overflow: close the piece first
                spans.append((first, last))
                first = -1
            else:
                size += gap
        if first < 0:
            first, size = start, 0
        size += unit
        last = end
        if size >= target_bytes:
            spans.append((first, last))
            first = -1
    if first >= 0:
        if spans and size < target_bytes // 4:
            spans[-1] = (spans[-1][0], last)
        else:
            spans.append((first, last))
    return [text[s:e].rstrip() for s, e in spans]


def _paragraph_spans(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        if text[pos:m.start()].strip():
            yield pos, m.start()
        pos = m.end()
    if text[pos:].strip():
        yield pos, len(text)


def _line_spans(text: str, start: int, end: int, max_bytes: int) -> Iterator[tuple[int, int]]:
    """The lines of ``text[start:end]``; a line over ``max_bytes`` is cut at spaces."""
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl < 0 else nl
        while len(text[pos:line_end].encode("utf-8")) > max_bytes:
            space = text.rfind(" ", pos + 1, pos + max_bytes)
            cut = space if space > pos else pos + max_bytes  # counted in characters: close enough
            yield pos, cut
            pos = cut + 1 if space > pos else cut
        if text[pos:line_end].strip():
            yield pos, line_end
        pos = line_end + 1


def chunk_documents(docs: Iterable[dict], target_bytes: int) -> Iterator[dict]:
    """Chunk every document's text (:func:`chunk_text`); a chunk's id is
    ``"{id}#{k}"`` (k from 0) and its meta gains ``chunk``. A document that fits in
    one piece keeps its id."""
    for doc in docs:
        pieces = chunk_text(doc["text"], target_bytes)
        if len(pieces) == 1:
            yield {**doc, "text": pieces[0]}
            continue
        for k, piece in enumerate(pieces):
            yield {"text": piece, "id": f"{doc['id']}#{k}", "meta": {**doc["meta"], "chunk": k}}
