"""Configuration of a study: which model, which domains, which adaptation recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from odyssey.adapt.config import OptimConfig, ScheduleConfig, TrainConfig, TrainingEvalConfig
from odyssey.adapt.mitigations.config import MitigationConfig
from odyssey.analysis.probes.config import BiasProbeConfig, MemorizationProbeConfig
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


class StudyProbes(StageConfig):
    """Which probes run on each domain's plainly adapted model, against the base."""

    run: list[Literal["bias", "memorization"]] = Field(
        default_factory=lambda: ["bias", "memorization"], description="probes to run (empty: none)")
    bias: BiasProbeConfig = Field(default_factory=lambda: BiasProbeConfig(n_boot=1000))
    memorization: MemorizationProbeConfig = Field(
        default_factory=lambda: MemorizationProbeConfig(sequences=32, membership_documents=32, n_boot=1000))


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
    mitigations: list[str] = Field(default_factory=list, description=(
        "variants adapted per domain beside the plain recipe: a method (replay, l2sp, ewc, lora, freeze, "
        "early-stop, normalize, selective), methods joined by + (replay+l2sp), or lr=VALUE (a learning-rate "
        "sweep point)"))
    mitigation: MitigationConfig = Field(default_factory=MitigationConfig, description=(
        "settings of the mitigation methods (each variant sets `methods` itself)"))
    probes: StudyProbes = Field(default_factory=StudyProbes)
    allow_pickle: bool = False
    trust_remote_code: bool = False
    executor: Literal["local", "ray"] = Field(
        "local", description="where the domains' runs go: one after another in this process, or as Ray tasks")
    ray_address: str | None = Field(
        None, description="Ray cluster to join (e.g. ray://head:10001 or auto); none: a local Ray instance")
    ray_cpus_per_task: float = Field(1.0, gt=0, description="CPUs Ray reserves for each domain's run")
    ray_gpus_per_task: float = Field(0.0, ge=0, description="GPUs Ray reserves for each domain's run "
                                     "(0: Ray hides the GPUs from the task, which then trains on CPUs; "
                                     "0.5: two runs share a GPU)")

    @field_validator("mitigations", mode="before")
    @classmethod
    def _split(cls, v):
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v
