"""Configuration of a study: which model, which domains, which adaptation recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from odyssey.adapt.config import OptimConfig, ScheduleConfig, TrainConfig, TrainingEvalConfig
from odyssey.adapt.mitigations.config import MitigationConfig
from odyssey.analysis.probes.config import BiasProbeConfig, MemorizationProbeConfig
from odyssey.config import StageConfig
from odyssey.energy.config import EnergyConfig
from odyssey.evaluate.config import EvalConfig
from odyssey.evaluate.harness import parse_tasks


class DomainSpec(StageConfig):
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="short name, used as a folder name")
    path: str = Field(..., description="corpus directory with train/valid/test splits (odyssey corpus build)")
    kind: str = Field("custom", description="a label for grouping in the report")
    description: str = ""


# The learning-rate levels of the default study, fixed before any result was seen: the
# default base's final pretraining rate (training simply continues) and its peak rate
# (a fresh warmup to the peak: re-warming). The full factorial adds 5e-4 and 1e-3.
DEFAULT_LRS = [2e-4, 2e-3]
# Which domains of the default world get every rate in `odyssey study` without arguments (the
# full factorial is `odyssey study --lr ... lr_sweep_domains=all`): by the question (where does
# adapting fail?) and the time budget (15 minutes on 2 CPU cores): the two controls, the held-out
# era, two of the four Wikipedia topics (the nearest to and the farthest from the general corpus
# by the base's bits per byte: society, arts) and one distant register as an anchor. The first
# version swept all four topics; cut to two for time after that study had been seen (the
# factorial has every cell).
DEFAULT_WORLD_SWEEP = ("general-seen", "general-unseen", "sotu-1790-1816", "wiki-society-and-social-sciences",
                       "wiki-arts", "licenses")


class StudyOptimConfig(OptimConfig):
    """The optimizer of a study's runs; ``lr`` may list several peak rates (a study axis)."""

    lr: float | list[float] = Field(
        default_factory=lambda: list(DEFAULT_LRS),
        description="peak learning rate of the runs, or a list of them: one run per rate and domain "
                    "(the first is the reference rate of the main table, probes and mitigations)")

    @field_validator("lr", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):  # --lr 2e-4,2e-3
            try:
                v = [float(p) for p in v.replace(" ", ",").split(",") if p]
            except ValueError:
                raise ValueError(f"learning rates must be numbers, got {v!r}") from None
        return v

    @field_validator("lr")
    @classmethod
    def _check(cls, v):
        rates = v if isinstance(v, list) else [v]
        if not rates or any(not r > 0 for r in rates):
            raise ValueError("every learning rate must be > 0")
        if len(set(rates)) != len(rates):
            raise ValueError("a learning rate is listed twice")
        return v

    @property
    def rates(self) -> list[float]:
        return list(self.lr) if isinstance(self.lr, list) else [self.lr]

    def at(self, lr: float) -> OptimConfig:
        """The plain optimizer config of one run at peak rate ``lr``."""
        return OptimConfig(**{**self.model_dump(), "lr": lr})


class Recipe(StageConfig):
    """How each domain is adapted: one epoch of continued pretraining by default, at
    each learning rate of ``optim.lr``.

    The default rates are the final (2e-4) and the peak (2e-3) learning rate of the
    default base model's pretraining schedule: at the first, training simply continues
    where it stopped; at the second, it re-warms to the peak.
    """

    # At most 65,536 training tokens (32 steps): the big registers would train 1.2-2x longer than
    # the Wikipedia topics, which confounds distance with amount of data and costs time.
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(batch_size=8, epochs=1.0, max_tokens=65_536))
    optim: StudyOptimConfig = Field(default_factory=StudyOptimConfig)
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig(warmup_ratio=0.1))
    # Measurement only (plain runs do not stop early): curves of 3-4 points for the report,
    # on 5k tokens of each split (the test splits are evaluated whole before and after).
    eval: TrainingEvalConfig = Field(default_factory=lambda: TrainingEvalConfig(max_tokens=5_000))
    eval_every: int = Field(20, ge=0, description="evaluate on valid and general text every N steps")
    save_every: int = Field(20, ge=0, description="checkpoint every N steps, so that a killed study resumes "
                            "mid-run (0: only at the end)")

    @property
    def lrs(self) -> list[float]:
        return self.optim.rates


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


class StudyForgetting(StageConfig):
    """Forgetting on downstream tasks: lm-evaluation-harness tasks run on the base model
    (once per study) and on every adapted model (needs ``pip install 'odyssey[eval]'``)."""

    tasks: list[str] = Field(default_factory=list, description=(
        "lm-evaluation-harness tasks, comma-separated: odyssey-general (built offline from the study's general "
        "test split) or any harness task name (needs its data: the hub or a cache); empty: off"))
    limit: int | None = Field(100, ge=1, description="documents per task (none: every document)")
    batch_size: int = Field(8, ge=1, description="requests per forward pass of the harness")

    @field_validator("tasks", mode="before")
    @classmethod
    def _split(cls, v):
        return parse_tasks(v) if v is None or isinstance(v, str) else v  # "a,b" from the command line

    @field_validator("tasks")
    @classmethod
    def _tidy(cls, v):
        return parse_tasks(v)  # stripped, without duplicates


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
        32_768, ge=1, description="forgetting is measured on the first N tokens of the general test split "
        "(the same tokens before and after; null: the whole split)")
    mitigations: list[str] = Field(default_factory=list, description=(
        "variants adapted per domain beside the plain recipe: a method (replay, l2sp, ewc, lora, freeze, "
        "early-stop, normalize, selective), methods joined by + (replay+l2sp), or lr=VALUE (a learning-rate "
        "sweep point)"))
    mitigation: MitigationConfig = Field(default_factory=MitigationConfig, description=(
        "settings of the mitigation methods (each variant sets `methods` itself)"))
    lr_sweep_domains: list[str] | Literal["all"] | None = Field(
        None, description="domains adapted at every learning rate of recipe.optim.lr (all: every domain); the "
        "others only at the first. Default: all, except in the default world's study (no domains given), where the domains near "
        "the pretraining data and one distant register get every rate, to fit 15 minutes on 2 CPU cores: "
        + ", ".join(DEFAULT_WORLD_SWEEP))
    base_final_lr: float | None = Field(
        None, gt=0, description="the base model's final pretraining learning rate, against which the rates "
        "are read (as lr / base_final_lr); default: from the model's provenance.json, else none")
    probes: StudyProbes = Field(default_factory=StudyProbes)
    forgetting: StudyForgetting = Field(default_factory=StudyForgetting)
    energy: EnergyConfig = Field(default_factory=EnergyConfig, description=(
        "how each run's energy is measured or estimated (odyssey study starts from $ODYSSEY_HOME/energy.yaml "
        "or $ODYSSEY_ENERGY_CONFIG); not part of a run's fingerprint"))
    allow_pickle: bool = False
    trust_remote_code: bool = False
    executor: Literal["local", "ray"] = Field(
        "local", description="where the domains' runs go: one after another in this process, or as Ray tasks")
    jobs: int | Literal["auto"] = Field(
        "auto", description="with executor=local: runs side by side in worker processes of this machine, "
        "each on its share of the cores (auto: 2 on a machine without a GPU and with 2 or more cores, else 1; "
        "1: one after another in this process)")
    ray_address: str | None = Field(
        None, description="Ray cluster to join (e.g. ray://head:10001 or auto); none: a local Ray instance")
    ray_cpus_per_task: float = Field(1.0, gt=0, description="CPUs Ray reserves for each domain's run")
    ray_gpus_per_task: float = Field(0.0, ge=0, description="GPUs Ray reserves for each domain's run "
                                     "(0: Ray hides the GPUs from the task, which then trains on CPUs; "
                                     "0.5: two runs share a GPU)")

    @field_validator("jobs")
    @classmethod
    def _jobs(cls, v):
        if v != "auto" and v < 1:
            raise ValueError("jobs must be auto or at least 1")
        return v

    @field_validator("mitigations", mode="before")
    @classmethod
    def _split(cls, v):
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v
