"""Configuration of the bias and memorization probes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from odyssey.config import StageConfig


class _ProbeCommon(StageConfig):
    """What both probes share: the bootstrap and where the model runs."""

    n_boot: int = Field(2000, ge=100, description="Bootstrap resamples of each confidence interval.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Coverage of the confidence intervals.")
    seed: int = Field(0, description="Seed of the sampling and of the bootstrap (same seed, same result).")
    batch_size: int = Field(32, ge=1, description="Sequences per forward pass (or per generate call).")
    device: str = Field("auto", description="Where the models run: auto (cuda if available), cpu or cuda.")
    dtype: str = Field("float32", description="Dtype the models are loaded in: float32, bfloat16 or float16.")
    progress: bool = Field(False, description="Show a progress bar on stderr.")

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        from odyssey.models.load import known_dtype

        return known_dtype(v)


class BiasProbeConfig(_ProbeCommon):
    """How :func:`odyssey.analysis.probes.bias.bias_probe` scores the minimal pairs.

    >>> BiasProbeConfig(categories=["gender"], n_boot=1000)
    """

    templates: str | None = Field(
        None, description="YAML file of templates (default: the project's set, "
        "odyssey/assets/bias/templates.yaml).")
    categories: list[str] | None = Field(None, description="Score only these categories (default: all).")
    bootstrap_unit: Literal["pair", "template"] = Field(
        "pair", description="What the bootstrap resamples: single pairs, or whole templates with all "
        "their pairs (wider, more honest intervals: pairs of one template are not independent).")


class MemorizationProbeConfig(_ProbeCommon):
    """How :func:`odyssey.analysis.probes.memorization.memorization_probe` samples and measures.

    >>> MemorizationProbeConfig(sequences=64, prefix_tokens=32, suffix_tokens=32)
    """

    split: str = Field("train", description="Split the training sequences are sampled from.")
    sequences: int = Field(64, ge=1, description="Training sequences sampled (disjoint windows).")
    prefix_tokens: int = Field(32, ge=1, description="Tokens of the prompt taken from the training text.")
    suffix_tokens: int = Field(32, ge=1, description="Tokens greedily generated and compared with the "
                               "true continuation.")
    max_scan_documents: int = Field(
        5000, ge=1, description="Sample windows from at most this many (seeded, randomly chosen) "
        "training documents, so that a large corpus is not tokenized whole.")
    membership_split: str = Field("test", description="Held-out split: the non-members of the membership "
                                  "test, and the windows of the extraction control.")
    heldout_control: bool = Field(
        True, description="Also decode as many held-out windows: a model that learned the domain continues "
        "unseen text better too, so only the excess over held-out text is memorization.")
    membership_documents: int = Field(
        64, ge=0, description="Documents sampled from each of the training and held-out splits for "
        "the membership test (0: skip it).")
    membership_max_tokens: int = Field(
        256, ge=2, description="Tokens of each document scored for its loss (the first ones; "
        "capped at the model's context).")
