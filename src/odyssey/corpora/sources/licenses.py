"""Software license texts of the ScanCode LicenseDB (package ``licensedcode-data``,
files ``data/licenses/*.LICENSE``: YAML front matter between ``---`` lines, then the
text).

One document per license that is not deprecated and has a text: id
``licenses:KEY``, meta ``key``, ``name``, ``category`` and ``spdx``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from odyssey.corpora.sources.base import Provenance, package_dir
from odyssey.errors import DataError

IMPORT_NAME = "licensedcode"
LICENSES = "data/licenses"
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---[ \t]*(?:\n(.*))?\Z", re.S)  # text may be absent


def _field(front: str, key: str) -> str:
    # The fields we need are plain one-line scalars; a YAML parser would cost ~20x.
    m = re.search(rf"^{key}:[ \t]*(.*?)[ \t]*$", front, re.M)
    return m.group(1).strip("'\"") if m else ""


def read(prov: Provenance) -> Iterator[dict]:
    root = package_dir(IMPORT_NAME, prov.source)
    files = sorted((root / LICENSES).glob("*.LICENSE"))
    if not files:
        raise DataError(f"no license texts in {root / LICENSES}", prov.source.install)
    for path in files:
        rel, raw = prov.read_text(path, root)
        m = _FRONT_MATTER.match(raw)
        front, text = (m.group(1), m.group(2) or "") if m else ("", raw)
        if _field(front, "is_deprecated") == "yes" or not text.strip():
            continue
        yield {
            "text": text.strip("\n").rstrip(),
            "id": f"licenses:{path.stem}",
            "meta": {"file": rel, "key": path.stem, "name": _field(front, "name"),
                     "category": _field(front, "category"), "spdx": _field(front, "spdx_license_key")},
        }
