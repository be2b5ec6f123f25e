"""Mitigation variants of a study: what each domain is adapted with beside the plain recipe.

A variant is named in ``StudyConfig.mitigations`` as a method (``replay``), a
combination of methods joined by ``+`` (``replay+l2sp``), a learning-rate sweep
point (``lr=1e-4``, plain adaptation at another peak learning rate), or methods at
their own learning rate (``lora+lr=2e-3``). Each runs in
``runs/<domain>@<variant>/`` and is stored under that name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from odyssey.errors import ConfigError

SEPARATOR = "@"  # runs/<domain>@<variant>
_LR = re.compile(r"^lr=([0-9.eE+-]+)$")


@dataclass(frozen=True)
class Variant:
    name: str
    methods: tuple[str, ...] = ()
    lr: float | None = None


def parse_variant(spec: str) -> Variant:
    """``"replay+l2sp"`` -> Variant(methods=("replay", "l2sp")); ``"lr=1e-4"`` -> Variant(lr=1e-4);
    ``"lora+lr=2e-3"`` -> LoRA at peak learning rate 2e-3."""
    from odyssey.adapt.mitigations.config import MitigationConfig

    parts = [p.strip() for p in spec.strip().split("+") if p.strip()]
    if not parts:
        raise ConfigError(f"mitigations: empty variant {spec!r}", "name methods such as replay or replay+l2sp")
    rates = [_lr(p) for p in parts if p.startswith("lr=")]
    methods = tuple(p for p in parts if not p.startswith("lr="))
    if len(rates) > 1:
        raise ConfigError(f"mitigations: {spec!r} sets the learning rate twice", "give one lr=VALUE per variant")
    try:
        MitigationConfig(methods=list(methods))
    except ValueError as e:
        first = str(e).splitlines()
        raise ConfigError(f"mitigations: {spec!r} is not a valid mitigation ({first[-1].strip() if first else e})",
                          "methods: replay, l2sp, ewc, lora, freeze, early-stop, normalize, selective") from None
    lr = rates[0] if rates else None
    name = "+".join([*methods, *([f"lr={lr:g}"] if lr else [])])
    return Variant(name, methods=methods, lr=lr)


def _lr(part: str) -> float:
    m = _LR.match(part)
    try:
        lr = float(m.group(1)) if m else -1.0
    except ValueError:
        lr = -1.0
    if not lr > 0:
        raise ConfigError(f"mitigations: bad learning rate {part!r}", "write it like lr=1e-4")
    return lr


def study_variants(specs: list[str]) -> list[Variant]:
    variants = [parse_variant(s) for s in specs]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError("mitigations: a variant is listed twice", "list each variant once")
    return variants


def run_name(domain: str, variant: Variant | None) -> str:
    return domain if variant is None else f"{domain}{SEPARATOR}{variant.name}"
