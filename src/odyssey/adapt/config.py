"""Configuration of an adaptation (continued pretraining) run."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from odyssey.adapt.mitigations.config import MitigationConfig
from odyssey.config import StageConfig
from odyssey.energy.config import EnergyConfig
from odyssey.evaluate.config import EvalConfig


class TrainConfig(StageConfig):
    block_size: int | None = Field(None, ge=2, description="tokens per training block (default: min(model context, 512))")
    batch_size: int = Field(8, ge=1, description="blocks per micro-batch on each process")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    epochs: float = Field(1.0, gt=0, description="passes over the training blocks")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (overrides epochs)")
    max_tokens: int | None = Field(None, ge=1, description=(
        "train on at most this many tokens of the domain: a larger domain stops before `epochs` ends, on a "
        "random sample of its blocks (the data order is shuffled); a smaller one is unaffected"))
    precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="autocast precision; auto = bf16 on a GPU that supports it, else fp32")
    seed: int = Field(0, description="seed for data order, dropout and initialization")

    @field_validator("precision", mode="before")
    @classmethod
    def _yaml_no(cls, v):
        return "no" if v is False else v  # YAML 1.1 reads `precision: no` as false
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to train")


class OptimConfig(StageConfig):
    lr: float = Field(1e-4, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the gradient norm to this (none: no clipping)")


class ScheduleConfig(StageConfig):
    kind: Literal["cosine", "linear", "constant"] = Field("cosine", description="decay after warmup")
    warmup_steps: int | None = Field(None, ge=0, description="linear warmup steps (default: warmup_ratio of all steps)")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="warmup as a share of all steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final learning rate as a share of the peak")


class TrainingEvalConfig(EvalConfig):
    """Evaluation during training: capped so that it stays a small share of the run."""

    max_tokens: int | None = Field(50_000, ge=1, description="tokens evaluated per eval set during training")
    progress: bool = Field(False, description="show a progress bar for each evaluation")


class AdaptConfig(StageConfig):
    """Everything that decides an `odyssey adapt` run; saved as config.yaml in its directory."""

    model: str = Field(..., description="hub id, local path or odyssey run directory of the model to adapt")
    data: str = Field(..., description="corpus directory (train split trains, valid split validates) or text path")
    out: str = Field(..., description="run directory")
    general: str | None = Field(None, description="general corpus whose valid split measures forgetting")
    tokenizer: str | None = Field(None, description="tokenizer path (default: the model's)")
    revision: str | None = Field(None, description="model revision (branch, tag or commit) on the hub")
    allow_pickle: bool = Field(False, description="allow loading non-safetensors weights")
    trust_remote_code: bool = Field(False, description="run the model repository's own code")
    train: TrainConfig = Field(default_factory=TrainConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    eval: TrainingEvalConfig = Field(default_factory=TrainingEvalConfig)
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: only at step 0 and the end)")
    save_every: int = Field(0, ge=0, description="checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = Field(2, ge=1, description="step checkpoints to keep")
    log_every: int = Field(10, ge=1, description="log training loss every N steps")
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list,
                                                                description="extra trackers, as in HF TrainingArguments")
    mitigation: MitigationConfig = Field(default_factory=MitigationConfig,
                                         description="mitigations of failed adaptation and forgetting")
    energy: EnergyConfig = Field(default_factory=EnergyConfig, description=(
        "how the run's energy is measured or estimated and converted to emissions (odyssey adapt starts "
        "from $ODYSSEY_HOME/energy.yaml or $ODYSSEY_ENERGY_CONFIG)"))
    resume: bool = Field(False, description="continue from the newest checkpoint in `out`")
    overwrite: bool = Field(False, description="delete an existing run in `out` first")

    @model_validator(mode="after")
    def _check(self):
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")
        for method in self.mitigation.active():
            method.check_run(self)  # e.g. replay needs general text
        return self

    # Fields that may differ between a run and its resumption.
    # energy: how the run is metered, not what it trains (and the machine may change).
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = ("resume", "overwrite", "report_to", "out", "energy")
