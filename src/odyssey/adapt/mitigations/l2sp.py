"""L2-SP: pull the trained weights toward the starting point (Xuhong et al., 2018).

``loss += alpha * sum_i ||theta_i - theta_base_i||^2`` over the trained parameters,
``theta_base`` a frozen copy of their values in the base model. Unlike weight decay,
which shrinks toward zero, this keeps what the base model knew. EWC
(:mod:`odyssey.adapt.mitigations.ewc`) is the same penalty with a per-weight
importance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from odyssey.adapt.mitigations.base import Mitigation, TrainingData
from odyssey.config import StageConfig

if TYPE_CHECKING:
    import torch


def quadratic_penalty(params: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
    """``sum w * (theta - theta_base)^2`` over ``(theta, theta_base, w)`` triples (``w=None``: 1)."""
    total = None
    for theta, base, weight in params:
        d = (theta.float() - base).pow(2)
        term = (d if weight is None else weight * d).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no parameters to regularize")
    return total


def l2sp_penalty(named: dict[str, torch.nn.Parameter], base: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """``alpha * sum ||theta - theta_base||^2`` over the parameters in ``base``."""
    return alpha * quadratic_penalty([(named[n], b, None) for n, b in base.items()])


class L2SPConfig(StageConfig):
    alpha: float = Field(0.01, gt=0, description="weight of sum ||theta - theta_base||^2 over the trained parameters")


class L2SPMethod(Mitigation):
    """Adds :func:`l2sp_penalty` toward the base's values of the trained parameters."""

    name = section = "l2sp"
    Config = L2SPConfig
    summary = "``alpha * ||theta - theta_base||^2`` added to the loss"

    def needs_base(self) -> bool:
        return True

    def build(self, data: TrainingData) -> None:
        self.anchor = self.ctx.anchor(data.trained, data.device)

    def penalty(self, params: dict[str, torch.nn.Parameter]) -> torch.Tensor:
        return l2sp_penalty(params, self.anchor, self.cfg.alpha)
