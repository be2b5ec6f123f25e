"""Which runs a study makes: the factorial of domains × learning rates, plus mitigation
variants, each with the name it has in the store and under ``runs/``.

The factors and their levels are fixed by the study's config before anything runs
(and recorded in ``results.json`` as the study's ``design``):

- domain: every domain of the study (``only`` selects some);
- peak learning rate: each rate of ``recipe.optim.lr``, for every domain of
  ``lr_sweep_domains`` (default: all); the others get only the first, the
  *reference* rate;
- mitigation variants (``mitigations``): at the reference rate, or at their own
  ``lr=`` (:mod:`odyssey.study.variants`).

Names::

    <domain>                  plain adaptation at the reference rate
    <domain>@lr=<rate>        plain adaptation at another rate of the axis
    <domain>@<variant>        a mitigation variant (runs/<domain>@replay, ...)

>>> [r.name for r in plan_runs(["legal"], [2e-4, 2e-3], [])]
['legal', 'legal@lr=0.002']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from odyssey.errors import ConfigError
from odyssey.study.variants import SEPARATOR, Variant, run_name, study_variants


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study (plain data: it travels to Ray workers)."""

    name: str  # its key in the store and its folder under runs/
    domain: str
    lr: float  # peak learning rate
    variant: str | None = None  # a StudyConfig.mitigations entry; None: plain adaptation
    reference: bool = True  # plain adaptation at the reference (first) rate
    position: int = 0  # order in the study

    @property
    def plain(self) -> bool:
        return self.variant is None


def lr_name(domain: str, lr: float) -> str:
    return f"{domain}{SEPARATOR}lr={lr:g}"


def plan_runs(domains: Sequence[str], lrs: Sequence[float], mitigations: Sequence[str],
              lr_sweep_domains: Sequence[str] | None = None) -> list[PlannedRun]:
    """Every run of a study, in order: per domain, its plain runs (reference rate first),
    then its mitigation variants."""
    if not lrs:
        raise ConfigError("the study has no learning rate", "set recipe.optim.lr")
    variants: list[Variant] = study_variants(list(mitigations))
    clash = [v.name for v in variants if not v.methods and v.lr in lrs]
    if clash:
        raise ConfigError(f"mitigations: {', '.join(clash)} is already a rate of recipe.optim.lr",
                          "leave it out of --mitigations: every rate of the axis is run plainly")
    unknown = sorted(set(lr_sweep_domains or []) - set(domains))
    if unknown:
        raise ConfigError(f"unknown domain(s) in lr_sweep_domains: {', '.join(unknown)}",
                          f"choose from {', '.join(domains)}")
    sweep = set(domains if lr_sweep_domains is None else lr_sweep_domains)
    runs: list[PlannedRun] = []
    for domain in domains:
        rates = lrs if domain in sweep else lrs[:1]
        for i, lr in enumerate(rates):
            name = domain if i == 0 else lr_name(domain, lr)
            runs.append(PlannedRun(name, domain, lr, None, i == 0, len(runs)))
        for v in variants:
            runs.append(PlannedRun(run_name(domain, v), domain, v.lr or lrs[0], v.name, False, len(runs)))
    return runs
