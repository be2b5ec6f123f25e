"""Python source code: the standard library's ``.py`` files of the running
interpreter (``sysconfig.get_paths()["stdlib"]``), in sorted path order.

Left out: tests (``test``/``tests``/``idle_test`` folders), ``site-packages``,
compiled extensions, IDLE and the turtle demos (applications rather than library),
``lib2to3``, ``ensurepip`` (bundled wheels), ``encodings`` (generated codec tables)
and ``pydoc_data`` (one generated 700 KB string).

One document per file: id ``python-source:REL/PATH.py``, meta ``file``.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from odyssey.corpora.sources.base import Provenance

SKIP_TOP = frozenset({"site-packages", "dist-packages", "lib-dynload", "idlelib", "turtledemo",
                      "lib2to3", "ensurepip", "encodings", "pydoc_data", "test"})
SKIP_ANY = frozenset({"test", "tests", "idle_test", "__pycache__"})


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(root: Path) -> list[Path]:
    """The ``.py`` files this source reads, sorted by relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        parts = Path(dirpath).relative_to(root).parts
        if parts and (parts[0] in SKIP_TOP or parts[0].startswith("config-")
                      or any(p in SKIP_ANY for p in parts)):
            dirnames[:] = []
            continue
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(".py"))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read(prov: Provenance) -> Iterator[dict]:
    root = stdlib_dir()
    for path in source_files(root):
        try:
            rel, text = prov.read_text(path, root)
        except UnicodeDecodeError:  # none in CPython, but a patched stdlib may have one
            continue
        yield {"text": text.strip("\n").rstrip(), "id": f"python-source:{rel}", "meta": {"file": rel}}
