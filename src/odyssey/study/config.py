"""Configuration of a study: which model, which domains, which adaptation recipe."""

from __future__ import annotations

from pydantic import Field

from odyssey.adapt.config import OptimConfig, ScheduleConfig, TrainConfig, TrainingEvalConfig
from odyssey.config import StageConfig
from odyssey.evaluate.config import EvalConfig


class DomainSpec(StageConfig):
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="short name, used as a folder name")
    path: str = Field(..., description="corpus directory with train/valid/test splits (odyssey corpus build)")
    kind: str = Field("custom", description="a label for grouping in the report")
    description: str = ""


class Recipe(StageConfig):
    """How each domain is adapted: one epoch of continued pretraining by default.

    The default learning rate, 2e-4, is the final learning rate of the default base
    model's pretraining schedule, i.e. training simply continues where it stopped.
    """

    train: TrainConfig = Field(default_factory=lambda: TrainConfig(batch_size=8, epochs=1.0))
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=2e-4))
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig(warmup_ratio=0.1))
    eval: TrainingEvalConfig = Field(default_factory=lambda: TrainingEvalConfig(max_tokens=20_000))
    eval_every: int = Field(10, ge=0, description="evaluate on valid and general text every N steps")


class TestEvalConfig(EvalConfig):
    """How the test splits are evaluated before and after: whole splits, quietly."""

    batch_size: int = Field(16, ge=1, description="full-length windows per forward pass")
    progress: bool = Field(False, description="show a progress bar for each evaluation")


class StudyConfig(StageConfig):
    """An `odyssey study`: with no fields set, the default world and base model."""

    name: str = Field("adaptation-odyssey", description="title of the study")
    out: str = Field("studies/default", description="study directory (runs, results.sqlite, report.html)")
    model: str | None = Field(None, description="model to adapt (default: the shipped default base model)")
    general: str | None = Field(None, description="general corpus for forgetting (default: the world's)")
    domains: list[DomainSpec] | None = Field(None, description="domains (default: the default world's)")
    only: list[str] | None = Field(None, description="run only these domains (by name)")
    recipe: Recipe = Field(default_factory=Recipe)
    test_eval: TestEvalConfig = Field(default_factory=TestEvalConfig,
                                      description="how test splits are evaluated before and after")
    general_test_max_tokens: int | None = Field(
        None, ge=1, description="cap on general test tokens (the default world's split is small already)")
    allow_pickle: bool = False
    trust_remote_code: bool = False
