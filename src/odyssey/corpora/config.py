"""Configuration of the corpora stage (``odyssey corpus build``)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from odyssey.config import StageConfig
from odyssey.corpora.store import SPLITS

DEFAULT_RATIOS = {"train": 0.8, "valid": 0.1, "test": 0.1}


class CorpusConfig(StageConfig):
    """How documents are read, cleaned, deduplicated, split and sharded.

    >>> CorpusConfig(ratios=[0.9, 0.05, 0.05], seed=1, license="CC-BY-4.0")
    """

    ratios: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_RATIOS),
        description="Document fractions of the train/valid/test splits: a mapping "
        "(missing splits count as 0) or three floats in that order; they must sum to 1.",
    )
    seed: int = Field(0, description="Seed of the document-level split shuffle.")
    split_field: str | None = Field(
        None, description="Meta field that fixes a document's split (train, valid or test); documents "
        "without it are split by the ratios. None: every document is split by the ratios.")
    text_field: str = Field("text", description="Field holding the text in JSONL, parquet and datasets inputs.")
    license: str | None = Field(None, description="License of the text, recorded in the manifest.")
    min_chars: int = Field(
        1, ge=0, description="Drop documents shorter than this many characters (ignoring surrounding "
        "whitespace) as 'too_short'; blank documents are always dropped as 'empty'."
    )
    dedup: bool = Field(True, description="Drop exact duplicates (same sha256 of the normalized text).")
    encoding_errors: Literal["strict", "skip", "replace"] = Field(
        "strict", description="Bytes that are not valid UTF-8: 'strict' stops with an error naming the "
        "file, 'skip' drops the document (counted as 'undecodable'), 'replace' keeps it with U+FFFD."
    )
    shard_docs: int = Field(10_000, ge=1, description="Documents per JSONL shard file.")
    @field_validator("ratios", mode="before")
    @classmethod
    def _ratios_from_sequence(cls, value):
        if isinstance(value, str):  # "0.8,0.1,0.1" from a command-line option
            value = [v for v in value.replace(" ", ",").split(",") if v]
        if isinstance(value, (list, tuple)):
            if len(value) != len(SPLITS):
                raise ValueError(f"give {len(SPLITS)} ratios ({'/'.join(SPLITS)}), got {len(value)}")
            return dict(zip(SPLITS, value, strict=True))
        return value

    @field_validator("ratios")
    @classmethod
    def _check_ratios(cls, value: dict[str, float]) -> dict[str, float]:
        problems = []
        unknown = sorted(set(value) - set(SPLITS))
        if unknown:
            problems.append(f"unknown split(s) {', '.join(unknown)} (use {', '.join(SPLITS)})")
        negative = [k for k, v in value.items() if not v >= 0 or math.isinf(v)]
        if negative:
            problems.append(f"ratio of {', '.join(negative)} must be a finite number >= 0")
        total = sum(v for v in value.values() if math.isfinite(v))
        if not problems and not math.isclose(total, 1.0, abs_tol=1e-6):
            problems.append(f"ratios must sum to 1, got {total:g}")
        if problems:
            raise ValueError("; ".join(problems))
        return {k: float(value.get(k, 0.0)) for k in SPLITS}


class QualityConfig(StageConfig):
    """What `odyssey corpus quality` measures, and with which thresholds."""

    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="Estimated Jaccard similarity of word 5-gram sets at or above which two "
        "documents are near duplicates (MinHash LSH).")
    num_perm: int = Field(128, ge=16, description="MinHash permutations.")
    shingle: int = Field(5, ge=1, description="Words per shingle for near duplicates.")
    leakage_ngram: int = Field(13, ge=1, description="Words per n-gram in the train/test leakage check.")
    leakage_min_overlap: float = Field(
        0.5, gt=0, le=1, description="A valid/test document leaks when at least this share of its n-grams "
        "occurs in the train split.")
    boilerplate_min_documents: int = Field(
        3, ge=2, description="A line is boilerplate when it occurs in at least this many documents.")
    boilerplate_min_chars: int = Field(
        20, ge=1, description="Shorter lines (blank lines, braces, short headings) are not counted as boilerplate.")
    top: int = Field(10, ge=1, description="Examples listed per statistic (boilerplate lines, duplicate clusters).")
