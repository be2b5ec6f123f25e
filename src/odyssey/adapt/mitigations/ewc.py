"""Elastic weight consolidation (Kirkpatrick et al., 2017) with a diagonal empirical Fisher.

``loss += alpha * sum_i F_i (theta_i - theta_base_i)^2``: weights that mattered for
general text (large ``F_i``) are held near the base, the others are free to move.
``F_i`` is the empirical Fisher of the base model on ``samples`` blocks of general
text: the mean over blocks of the squared gradient of that block's LM loss.

Per-block gradients come from ``torch.func`` (``vmap`` over ``grad`` of a
``functional_call``), a chunk of blocks at a time, so the Fisher of a small model
costs a few batched passes instead of one backward per block.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from pydantic import Field

from odyssey.adapt.mitigations.base import Mitigation, TrainingData
from odyssey.adapt.mitigations.l2sp import quadratic_penalty
from odyssey.config import StageConfig

if TYPE_CHECKING:
    import numpy as np
    import torch

PER_SAMPLE_BYTES = 1 << 30  # budget for one chunk's per-sample gradients


def sample_blocks(blocks: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """``samples`` distinct blocks (all if fewer), a seeded choice, in stored order."""
    import numpy as np

    n = len(blocks)
    pick = np.sort(np.random.default_rng([seed, 0xE3C]).choice(n, size=min(samples, n), replace=False))
    return np.asarray(blocks[pick], dtype=np.int64)


def empirical_fisher(model: torch.nn.Module, blocks: np.ndarray, names: list[str], *,
                     device: torch.device | str = "cpu", chunk: int | None = None) -> dict[str, torch.Tensor]:
    """Diagonal Fisher ``mean_b (d loss_b / d theta)^2`` of ``model`` over the rows of
    ``blocks``, for the parameters ``names`` (float32, on ``device``)."""
    import torch
    from torch.func import functional_call, grad, vmap

    params = dict(model.named_parameters())
    trained = {n: params[n].detach() for n in names}
    fixed = {n: p.detach() for n, p in params.items() if n not in trained}
    fixed.update(dict(model.named_buffers()))

    def block_loss(theta, ids):
        out = functional_call(model, (theta, fixed), args=(), kwargs={"input_ids": ids[None], "labels": ids[None]})
        return out.loss

    per_sample = vmap(grad(block_loss), in_dims=(None, 0))
    n_numbers = sum(t.numel() for t in trained.values())
    chunk = chunk or max(1, min(len(blocks), PER_SAMPLE_BYTES // max(1, 4 * n_numbers)))
    fisher = {n: torch.zeros_like(t, dtype=torch.float32) for n, t in trained.items()}
    data = torch.as_tensor(blocks, dtype=torch.long, device=device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")  # attention falls back to a loop
        for start in range(0, len(data), chunk):
            grads = per_sample(trained, data[start:start + chunk])
            for n, g in grads.items():
                fisher[n] += g.float().pow(2).sum(0)
    return {n: f / len(data) for n, f in fisher.items()}


def ewc_penalty(named: dict[str, torch.nn.Parameter], base: dict[str, torch.Tensor],
                fisher: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """``alpha * sum F (theta - theta_base)^2`` over the parameters in ``base``."""
    return alpha * quadratic_penalty([(named[n], b, fisher[n]) for n, b in base.items()])


class EWCConfig(StageConfig):
    alpha: float = Field(1e4, gt=0, description=(
        "weight of sum F_i (theta_i - theta_base_i)^2; Fisher values are small (mean about 1e-6 per weight "
        "on the default base), so alpha is large: 1e4 there gives a penalty about as strong as l2sp's default"))
    samples: int = Field(32, ge=1, description="general blocks the diagonal (empirical) Fisher is averaged over")
    data: str | None = Field(None, description="general text for the Fisher (default: the train split of `general`)")


class EWCMethod(Mitigation):
    """The Fisher of the base on general text, then :func:`ewc_penalty` at every step."""

    name = section = "ewc"
    Config = EWCConfig
    summary = "``alpha * sum F (theta - theta_base)^2``, F the diagonal Fisher on general text"
    needs_general = True

    def needs_base(self) -> bool:
        return True

    def build(self, data: TrainingData) -> None:
        self.anchor = self.ctx.anchor(data.trained, data.device)
        sample = sample_blocks(data.general_blocks(self.ctx, self.cfg.data), self.cfg.samples, self.ctx.seed)
        base = self.ctx.base.to(data.device)
        self.fisher = empirical_fisher(base, sample, data.trained, device=data.device)
        self.ctx.info["ewc"] = {"samples": len(sample),
                                "fisher_mean": float(sum(f.sum() for f in self.fisher.values())
                                                     / sum(f.numel() for f in self.fisher.values()))}

    def penalty(self, params: dict[str, torch.nn.Parameter]) -> torch.Tensor:
        return ewc_penalty(params, self.anchor, self.fisher, self.cfg.alpha)
