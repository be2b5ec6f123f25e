"""Token-selective loss: down-weight or mask target tokens that say little about the domain.

The Adaptation Odyssey found that the loss change of additional pretraining is
carried by formatting and function tokens. Two rules pick such targets:

- by category: every vocabulary entry gets its category from its own string
  (:mod:`odyssey.analysis.categories`, once per run; special tokens are "other"),
  and targets in the chosen categories get ``weight``;
- by ease: targets the base model already predicts with a loss below
  ``base_loss_below`` nats (a frozen base copy scores the batch under no_grad in
  the same step) get ``easy_weight``.

A target matching both gets the product. The loss of an optimizer step is the
weighted mean ``sum(w * ce) / sum(w)`` over all its targets, across micro-batches and
processes (so two processes with batch B train as one with 2B), 0 if every weight is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from odyssey.adapt.mitigations.base import Mitigation, TrainingData
from odyssey.analysis.categories import CATEGORIES, categorize
from odyssey.config import StageConfig

if TYPE_CHECKING:
    import torch

Category = Literal[CATEGORIES]  # type: ignore[valid-type]


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


def vocabulary_categories(tokenizer, size: int) -> list[str]:
    """Category of each token id ``0..size-1`` from its string alone (ids past the
    tokenizer's vocabulary and special tokens are "other")."""
    from odyssey.analysis.tokens import token_strings

    n = min(size, len(tokenizer))
    strings = token_strings(tokenizer, range(n))
    cats = categorize([strings[i] for i in range(n)], doc_starts=range(n))  # each token on its own
    for i in tokenizer.all_special_ids:
        if i < n:
            cats[i] = "other"
    return cats + ["other"] * (size - n)


def category_weights(categories: list[str], chosen: list[str], weight: float) -> torch.Tensor:
    """Loss weight per token id: ``weight`` for ids in ``chosen`` categories, else 1."""
    import torch

    chosen_set = set(chosen)
    return torch.tensor([weight if c in chosen_set else 1.0 for c in categories], dtype=torch.float32)


def token_ce(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (nats) of each next-token target: shape ``(batch, length - 1)``."""
    import torch.nn.functional as F

    v = logits.shape[-1]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, v).float(), input_ids[:, 1:].reshape(-1), reduction="none")
    return ce.view(input_ids.shape[0], -1)


def target_weights(input_ids: torch.Tensor, table: torch.Tensor | None, base_ce: torch.Tensor | None = None,
                   threshold: float | None = None, easy_weight: float = 0.0) -> torch.Tensor:
    """Weight of each target ``input_ids[:, 1:]`` under both rules."""
    import torch

    targets = input_ids[:, 1:]
    w = table[targets] if table is not None else torch.ones(targets.shape, device=input_ids.device)
    if base_ce is not None and threshold is not None:
        w = torch.where(base_ce < threshold, w * easy_weight, w)
    return w


def weighted_loss(ce: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(w * ce) / sum(w)``; 0 (with a zero gradient) when every weight is 0."""
    return (weights * ce).sum() / weights.sum().clamp_min(1e-12)


class SelectiveMethod(Mitigation):
    """Weights the LM loss per target token; the weights of a step are normalized over
    all its micro-batches and processes (:meth:`start_step`)."""

    name = section = "selective"
    Config = SelectiveConfig
    summary = "target tokens down-weighted by category and/or by the base model's loss"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.token_table: torch.Tensor | None = None  # loss weight per token id (categories)
        self.base_scorer: torch.nn.Module | None = None  # base copy scoring targets (base_loss_below)
        self._weights: list[torch.Tensor] = []  # this step's target weights per micro-batch
        self._scale: torch.Tensor | None = None

    def needs_base(self) -> bool:
        return self.cfg.base_loss_below is not None

    def build(self, data: TrainingData) -> None:
        s, device = self.cfg, data.device
        size = data.model.get_output_embeddings().weight.shape[0]
        if s.categories:
            cats = vocabulary_categories(data.tokenizer, size)
            self.token_table = category_weights(cats, s.categories, s.weight).to(device)
            self.ctx.info["selective"] = {"vocabulary_weighted": int((self.token_table != 1).sum())}
        if s.base_loss_below is not None:
            self.base_scorer = self.ctx.base.to(device).eval()

    def _target_weights(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        base_ce = None
        if self.base_scorer is not None:
            with torch.no_grad():
                base_ce = token_ce(self.base_scorer(input_ids=batch).logits, batch)
        s = self.cfg
        return target_weights(batch, self.token_table, base_ce, s.base_loss_below, s.easy_weight)

    def start_step(self, batches: list[torch.Tensor], accelerator) -> None:
        """The weights of this step's targets and their sum over every micro-batch and
        process, so the step's loss is one weighted mean over all its targets, whatever
        the split into micro-batches and processes."""
        import torch

        self._weights = [self._target_weights(b) for b in batches]
        local = torch.stack([w.sum() for w in self._weights]).sum()
        total = accelerator.reduce(local, reduction="sum") if accelerator.num_processes > 1 else local
        # The loop divides each micro-batch's loss by grad_accum and DDP averages over
        # processes; this scale undoes both, leaving sum(w * ce) / total.
        self._scale = len(batches) * accelerator.num_processes / total.clamp_min(1e-12)

    def lm_loss(self, model, batch: torch.Tensor, micro: int | None) -> torch.Tensor:
        """The weighted loss of micro-batch ``micro`` of the step :meth:`start_step` saw
        (None: a batch on its own, normalized by its own weights)."""
        ce = token_ce(model(input_ids=batch).logits, batch)
        if micro is None:
            return weighted_loss(ce, self._target_weights(batch))
        return (self._weights[micro] * ce).sum() * self._scale
