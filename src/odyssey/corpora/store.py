"""The on-disk layout of a built corpus, and reading documents back.

A corpus directory (written by :func:`odyssey.corpora.build.build_corpus`)::

    DIR/manifest.json          name, sources (path, sha256, license), splits, drop counts
    DIR/train/shard-00000.jsonl
    DIR/valid/shard-00000.jsonl
    DIR/test/shard-00000.jsonl

A document is ``{"text": str, "id": str, "meta": dict}``.

A *data spec* names what to read: ``CORPUS_DIR`` (default split), ``CORPUS_DIR:test``,
or a plain ``.txt``/``.jsonl`` file or folder of them (read whole, no split).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from odyssey.errors import DataError
from odyssey.io import read_json, read_jsonl

SPLITS = ("train", "valid", "test")
MANIFEST = "manifest.json"


def is_corpus_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def parse_data_spec(spec: str, default_split: str | None = None) -> tuple[Path, str | None]:
    """``"corpora/legal:test"`` -> ``(Path("corpora/legal"), "test")``.

    A trailing ``:name`` counts as a split only when ``name`` is a known split, so
    Windows-style or odd paths containing ``:`` still work.
    """
    path, split = spec, default_split
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if tail in SPLITS:
            path, split = head, tail
    return Path(path), split


def read_manifest(corpus_dir: str | os.PathLike) -> dict:
    return read_json(Path(corpus_dir) / MANIFEST)


def split_files(corpus_dir: str | os.PathLike, split: str) -> list[Path]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    return sorted((Path(corpus_dir) / split).glob("shard-*.jsonl"))


def iter_split(corpus_dir: str | os.PathLike, split: str) -> Iterator[dict]:
    """Yield the documents of one split of a built corpus, in their stored order."""
    files = split_files(corpus_dir, split)
    if not files:
        raise DataError(f"{corpus_dir} has no {split!r} split", "rebuild the corpus with a non-zero ratio for it")
    for f in files:
        yield from read_jsonl(f)


def load_documents(spec: str | os.PathLike, default_split: str = "test", text_field: str = "text") -> list[dict]:
    """Read the documents a data spec names (see module docstring).

    >>> docs = load_documents("corpora/legal:valid")
    """
    path, split = parse_data_spec(str(spec), default_split)
    if not path.exists():
        raise DataError(f"data not found: {path}", "give a corpus directory (odyssey corpus build) or a .txt/.jsonl path")
    if is_corpus_dir(path):
        docs = list(iter_split(path, split or default_split))
    else:
        from odyssey.corpora.readers import read_documents

        docs = list(read_documents([path], text_field=text_field))
    if not docs:
        raise DataError(f"no documents in {spec}")
    return docs


def data_fingerprint(spec: str | os.PathLike | None, split: str = "train") -> str | None:
    """sha256 of a corpus split (the manifest's record, else of its shard files) or of a
    file; ``None`` when the data is not on this machine.

    >>> data_fingerprint("corpora/legal:test") == read_manifest("corpora/legal")["splits"]["test"]["sha256"]
    True
    """
    from odyssey.io import sha256_file

    if spec is None:
        return None
    path, sp = parse_data_spec(str(spec), split)
    if is_corpus_dir(path):
        recorded = ((read_manifest(path).get("splits") or {}).get(sp or split) or {}).get("sha256")
        if recorded:
            return recorded
        h = hashlib.sha256()
        for f in split_files(path, sp or split):
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    return sha256_file(path) if path.is_file() else None
