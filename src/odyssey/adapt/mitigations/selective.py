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

import torch
import torch.nn.functional as F

from odyssey.analysis.categories import categorize


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
    chosen_set = set(chosen)
    return torch.tensor([weight if c in chosen_set else 1.0 for c in categories], dtype=torch.float32)


def token_ce(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (nats) of each next-token target: shape ``(batch, length - 1)``."""
    v = logits.shape[-1]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, v).float(), input_ids[:, 1:].reshape(-1), reduction="none")
    return ce.view(input_ids.shape[0], -1)


def target_weights(input_ids: torch.Tensor, table: torch.Tensor | None, base_ce: torch.Tensor | None = None,
                   threshold: float | None = None, easy_weight: float = 0.0) -> torch.Tensor:
    """Weight of each target ``input_ids[:, 1:]`` under both rules."""
    targets = input_ids[:, 1:]
    w = table[targets] if table is not None else torch.ones(targets.shape, device=input_ids.device)
    if base_ce is not None and threshold is not None:
        w = torch.where(base_ce < threshold, w * easy_weight, w)
    return w


def weighted_loss(ce: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(w * ce) / sum(w)``; 0 (with a zero gradient) when every weight is 0."""
    return (weights * ce).sum() / weights.sum().clamp_min(1e-12)
