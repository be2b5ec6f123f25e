"""Configuration of the mitigations an adapt run can combine (``mitigation:`` in an
AdaptConfig, ``--mitigation replay,l2sp`` on the command line).

Each method has its own section with defaults; a section is used only when its
method is listed in ``methods``. Checks that need the rest of the run's config
(a general corpus, ``eval_every``) live in :class:`odyssey.adapt.config.AdaptConfig`.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from odyssey.analysis.categories import CATEGORIES
from odyssey.config import StageConfig

Method = Literal["replay", "l2sp", "ewc", "lora", "freeze", "early-stop", "normalize", "selective"]
Category = Literal[CATEGORIES]  # type: ignore[valid-type]


class ReplayConfig(StageConfig):
    ratio: float = Field(0.25, gt=0, lt=1, description=(
        "share of training tokens drawn from general data (blocks have one size, so also the share of "
        "blocks); `epochs` still counts passes over the domain, so a run takes 1/(1-ratio) times the steps"))
    data: str | None = Field(None, description="general text to replay (default: the train split of `general`)")


class L2SPConfig(StageConfig):
    alpha: float = Field(0.01, gt=0, description="weight of sum ||theta - theta_base||^2 over the trained parameters")


class EWCConfig(StageConfig):
    alpha: float = Field(1e4, gt=0, description=(
        "weight of sum F_i (theta_i - theta_base_i)^2; Fisher values are small (mean about 1e-6 per weight "
        "on the default base), so alpha is large: 1e4 there gives a penalty about as strong as l2sp's default"))
    samples: int = Field(32, ge=1, description="general blocks the diagonal (empirical) Fisher is averaged over")
    data: str | None = Field(None, description="general text for the Fisher (default: the train split of `general`)")


class LoRAConfig(StageConfig):
    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description=(
        "dropout on the adapters' input; active only if the model is in training mode (the loop keeps the "
        "mode the model was loaded in, which for Hugging Face models is eval: dropout off)"))
    target_modules: str | list[str] = Field("all-linear", description=(
        "modules that get adapters: 'all-linear' (every Linear/Conv1D but the output head: Llama, GPT-2 and "
        "most causal LMs) or a list of module names, e.g. [q_proj, v_proj] or [c_attn]"))


class FreezeConfig(StageConfig):
    embeddings: bool = Field(True, description=(
        "freeze the token (and position) embeddings; a tied output head is the same tensor and freezes too"))
    first_k: int = Field(0, ge=0, description="freeze the first k transformer layers")
    all_but_top_k: int | None = Field(None, ge=1, description="freeze every transformer layer except the top k")

    @model_validator(mode="after")
    def _one_layer_rule(self):
        if self.first_k and self.all_but_top_k is not None:
            raise ValueError("freeze: set first_k or all_but_top_k, not both")
        return self

    def freezes_layers(self) -> bool:
        return bool(self.first_k) or self.all_but_top_k is not None


class EarlyStopConfig(StageConfig):
    patience: int = Field(3, ge=1, description="stop after this many evaluations without improvement")
    min_delta: float = Field(0.0, ge=0, description="an improvement must lower the valid loss (nats/token) by more")


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


class SelectiveConfig(StageConfig):
    categories: list[Category] = Field(default_factory=lambda: ["newline", "whitespace", "punctuation"],
                                       description="target-token categories (odyssey.analysis.categories) to down-weight")
    weight: float = Field(0.0, ge=0, description="loss weight of those tokens (0: masked out)")
    base_loss_below: float | None = Field(None, gt=0, description=(
        "also down-weight targets the base model already predicts with a loss below this (nats); none: off"))
    easy_weight: float = Field(0.0, ge=0, description="loss weight of those well-predicted tokens (0: masked out)")

    @model_validator(mode="after")
    def _does_something(self):
        if "domain" in self.categories:
            raise ValueError("selective: 'domain' needs domain terms, which a vocabulary has not; "
                             "use newline, whitespace, punctuation, digits, function, content or other")
        if not self.categories and self.base_loss_below is None:
            raise ValueError("selective: give categories or base_loss_below")
        return self


class MitigationConfig(StageConfig):
    """Which mitigations a run combines, and the settings of each."""

    methods: list[Method] = Field(default_factory=list, description=(
        "mitigations to combine (empty: plain adaptation): replay, l2sp, ewc, lora, freeze, early-stop, "
        "normalize, selective"))
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    l2sp: L2SPConfig = Field(default_factory=L2SPConfig)
    ewc: EWCConfig = Field(default_factory=EWCConfig)
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    freeze: FreezeConfig = Field(default_factory=FreezeConfig)
    early_stop: EarlyStopConfig = Field(default_factory=EarlyStopConfig)
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    selective: SelectiveConfig = Field(default_factory=SelectiveConfig)

    @model_validator(mode="before")
    @classmethod
    def _dashed_section(cls, data):
        # `mitigation.early-stop.patience=5` spells the section as the method is named.
        if isinstance(data, dict) and isinstance(data.get("early-stop"), dict):
            data = dict(data)
            data["early_stop"] = {**(data.get("early_stop") or {}), **data.pop("early-stop")}
        return data

    @field_validator("methods", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):  # "replay,l2sp" from the command line or YAML
            v = [m.strip() for m in v.split(",") if m.strip()]
        if not isinstance(v, list | tuple):
            return v
        known = get_args(Method)
        unknown = [m for m in v if m not in known]
        if unknown:
            raise ValueError(f"unknown mitigation {unknown[0]!r}: choose from {', '.join(known)}")
        return list(dict.fromkeys(v))  # a repeated name counts once

    @model_validator(mode="after")
    def _combinations(self):
        on = set(self.methods)
        if "lora" in on and on & {"l2sp", "ewc"}:
            raise ValueError("lora cannot be combined with l2sp or ewc: LoRA leaves the base weights unchanged "
                             "and these penalties pull the trained base weights toward the base; use "
                             "optim.weight_decay to keep the adapters small")
        if "lora" in on and "freeze" in on and not self.freeze.freezes_layers():
            raise ValueError("lora with freeze: freeze then chooses the layers that get adapters; set "
                             "freeze.first_k or freeze.all_but_top_k (LoRA already trains no embedding)")
        if "freeze" in on and not (self.freeze.embeddings or self.freeze.freezes_layers()):
            raise ValueError("freeze freezes nothing: set freeze.embeddings, freeze.first_k or freeze.all_but_top_k")
        return self

    def on(self, method: str) -> bool:
        return method in self.methods
