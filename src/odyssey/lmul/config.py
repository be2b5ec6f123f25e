"""Configuration of the L-Mul studies: the energy table, the precision study, the model evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from odyssey.config import StageConfig
from odyssey.evaluate.config import EvalConfig


class OpEnergy(StageConfig):
    """Energy per arithmetic operation, in picojoules. Defaults: Horowitz, "Computing's
    energy problem (and what we can do about it)", ISSCC 2014, 45 nm process, the
    figures Luo and Sun (2024) use. Edit them for another process node, e.g.
    ``energy.fp32_mul=1.2``."""

    fp32_mul: float = Field(3.7, ge=0, description="float32 multiplication (pJ)")
    fp32_add: float = Field(0.9, ge=0, description="float32 addition (pJ)")
    fp16_mul: float = Field(1.1, ge=0, description="float16 multiplication (pJ)")
    fp16_add: float = Field(0.4, ge=0, description="float16 addition (pJ)")
    int32_add: float = Field(0.1, ge=0, description="32-bit integer addition: the cost of one L-Mul product (pJ)")
    source: str = Field("Horowitz, ISSCC 2014, 45 nm", description="where the figures come from")


class PrecisionConfig(StageConfig):
    """The precision study: relative error of L-Mul and of fp8 products against the exact product."""

    mantissas: list[int] = Field([1, 2, 3, 4, 5, 6, 7], description="L-Mul mantissa widths to measure "
                                 "(the native float32 width, 23, is always added)")
    samples: int = Field(200_000, ge=1000, description="random input pairs per distribution")
    seed: int = Field(0, description="seed of the random inputs")
    log2_range: tuple[float, float] = Field(
        (-6.0, 8.0), description="log2 of the magnitudes of the log-uniform distribution: uniform in "
                                 "[lo, hi), inside float8 e4m3's normal range [2^-6, 448]")
    comparable_ratio: float = Field(
        1.5, gt=1, description="'about as precise' means mean relative errors within this factor of each other")

    @field_validator("mantissas")
    @classmethod
    def _in_range(cls, v: list[int]) -> list[int]:
        bad = [m for m in v if not 1 <= m <= 23]
        if bad:
            raise ValueError(f"mantissa widths must be in [1, 23], got {bad}")
        return sorted(set(v))


class LMulEvalSettings(EvalConfig):
    """odyssey evaluate's settings with defaults for a quick comparison (the defaults hold
    when a YAML file or override sets only some of them)."""

    max_tokens: int | None = Field(2048, ge=1, description="Stop adding documents once this many target "
                                   "tokens are reached (the L-Mul CPU kernel is ~10x slower than BLAS).")
    progress: bool = Field(False, description="Show a progress bar on stderr.")


class LMulEvalConfig(StageConfig):
    """`odyssey lmul evaluate`: a model's matrix products by L-Mul, its perplexity and energy."""

    where: Literal["attention", "linear", "all"] = Field(
        "all", description="which products use L-Mul: attention (QK^T and AV), linear (every nn.Linear "
                           "and GPT-2 Conv1D, the output head included) or all")
    mantissa: int | None = Field(None, ge=1, description="mantissa bits kept of each input (default: the "
                                                          "model dtype's native width)")
    precision: Literal["fp32", "fp16"] = Field(
        "fp32", description="precision of the exact arithmetic the energy estimate compares with (products "
                            "and accumulation); L-Mul accumulates at that precision too")
    energy: OpEnergy = Field(default_factory=OpEnergy, description="picojoules per operation")
    eval: LMulEvalSettings = Field(default_factory=LMulEvalSettings,
                                   description="how perplexity is measured (odyssey evaluate's settings)")
