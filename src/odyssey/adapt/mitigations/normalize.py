"""Data normalization and cleaning of the training documents (never valid or test).

In order: newline and whitespace normalization (:mod:`odyssey.corpora.normalize`);
quality filters (too short, too many symbols, too many repeated lines; the first
that applies is the reason); near-duplicate removal among the survivors (MinHash
LSH, :func:`odyssey.corpora.near_duplicates.near_duplicate_drop`, the first of each
cluster kept). Every change and drop is counted, and the counts go to
``OUT/normalize.json`` and ``result.json``.
"""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from odyssey.adapt.mitigations.base import Mitigation
from odyssey.config import StageConfig
from odyssey.corpora.normalize import duplicate_line_ratio, normalize, symbol_ratio
from odyssey.errors import DataError
from odyssey.io import write_json


class NormalizeConfig(StageConfig):
    whitespace: bool = Field(True, description=(
        "drop trailing spaces/tabs on each line and collapse runs of spaces/tabs inside a line into one space "
        "(leading indentation is kept: it carries meaning in code and verse)"))
    newlines: bool = Field(True, description="\\r\\n and \\r become \\n; three or more newlines become two")
    near_duplicates: bool = Field(True, description="drop near-duplicate documents (MinHash LSH, first one kept)")
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard similarity of near-duplicates")
    num_perm: int = Field(128, ge=16, description="MinHash permutations")
    shingle: int = Field(5, ge=1, description="words per shingle")
    min_chars: int = Field(50, ge=0, description="drop documents shorter than this (characters, after normalizing)")
    max_symbol_ratio: float = Field(0.5, gt=0, le=1, description=(
        "drop documents where more than this share of the non-space characters is neither a letter nor a digit"))
    max_duplicate_line_ratio: float = Field(0.5, gt=0, le=1, description=(
        "drop documents where more than this share of the non-blank lines repeats an earlier line"))


def quality_reason(text: str, cfg: NormalizeConfig) -> str | None:
    """Why a (normalized) text is dropped, or None to keep it."""
    if len(text.strip()) < cfg.min_chars:
        return "too_short"
    if symbol_ratio(text) > cfg.max_symbol_ratio:
        return "symbols"
    if duplicate_line_ratio(text) > cfg.max_duplicate_line_ratio:
        return "duplicate_lines"
    return None


def normalize_documents(docs: list[dict], cfg: NormalizeConfig) -> tuple[list[dict], dict]:
    """The cleaned documents (input order kept) and the counts of what changed."""
    from odyssey.corpora.near_duplicates import near_duplicate_drop

    dropped: Counter = Counter()
    changed = Counter()
    kept = []
    for doc in docs:
        text = doc["text"]
        new = normalize(text, whitespace=cfg.whitespace, newlines=cfg.newlines)
        if new != text:
            changed["documents"] += 1
            changed["characters_removed"] += len(text) - len(new)
        why = quality_reason(new, cfg)
        if why:
            dropped[why] += 1
        else:
            kept.append({**doc, "text": new})
    if cfg.near_duplicates and kept:
        drop = set(near_duplicate_drop([d["text"] for d in kept], threshold=cfg.threshold, num_perm=cfg.num_perm,
                                       shingle=cfg.shingle))
        dropped["near_duplicate"] += len(drop)
        kept = [d for i, d in enumerate(kept) if i not in drop]
    if not kept:
        raise DataError(f"normalize dropped all {len(docs)} training documents ({dict(dropped)})",
                        "relax mitigation.normalize.min_chars / max_symbol_ratio / max_duplicate_line_ratio")
    counts = {"documents_in": len(docs), "documents_out": len(kept), "normalized": changed["documents"],
              "characters_removed": changed["characters_removed"], "dropped": dict(dropped)}
    return kept, counts


class NormalizeMethod(Mitigation):
    """Cleans the training documents before they are packed (valid and test stay as they are)."""

    name = section = "normalize"
    Config = NormalizeConfig
    summary = "whitespace/newline normalization, quality filters, near-duplicate removal"

    def documents(self, docs: list[dict], accelerator) -> list[dict]:
        docs, counts = normalize_documents(docs, self.cfg)
        self.ctx.info["normalize"] = counts
        if accelerator.is_main_process:
            write_json(self.ctx.out / "normalize.json", counts)
        return docs
