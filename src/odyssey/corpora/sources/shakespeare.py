"""Shakespeare's works in modern spelling from Project Gutenberg (package
``shakespeare`` 0.6, files ``shksprdata/texts/*_gut.txt``; the ``*_gut_f.txt``
folio spellings are left out).

One document per work: id ``shakespeare:STEM``, meta ``title`` (from
``texts/metadata.txt`` when it names the work).
"""

from __future__ import annotations

import configparser
from collections.abc import Iterator

from odyssey.corpora.sources.base import Provenance, package_dir
from odyssey.errors import DataError

IMPORT_NAME = "shksprdata"
TEXTS = "texts"


def read(prov: Provenance) -> Iterator[dict]:
    root = package_dir(IMPORT_NAME, prov.source)
    files = sorted((root / TEXTS).glob("*_gut.txt"))
    if not files:
        raise DataError(f"no texts in {root / TEXTS}", prov.source.install)
    titles = _titles(prov, root)
    for path in files:
        rel, text = prov.read_text(path, root)
        yield {
            "text": text.strip("\n").rstrip(),
            "id": f"shakespeare:{path.stem}",
            "meta": {"file": rel, "title": titles.get(path.stem, path.stem)},
        }


def _titles(prov: Provenance, root) -> dict[str, str]:
    path = root / TEXTS / "metadata.txt"
    if not path.is_file():
        return {}
    _, text = prov.read_text(path, root)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    return {s: parser[s].get("title", s) for s in parser.sections()}
