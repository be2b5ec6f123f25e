"""Configuration of the mitigations an adapt run can combine (``mitigation:`` in an
AdaptConfig, ``--mitigation replay,l2sp`` on the command line).

:class:`MitigationConfig` has ``methods`` and one section per registered method (its
``Config``, with defaults), built from :data:`~odyssey.adapt.mitigations.registry.MITIGATIONS`;
a section is used only when its method is listed in ``methods``. Checks that need the
rest of the run's config (a general corpus, ``eval_every``) are each method's
``check_run``, called by :class:`odyssey.adapt.config.AdaptConfig`.
"""

from __future__ import annotations

from pydantic import Field, create_model, field_validator, model_validator

from odyssey.adapt.mitigations.early_stop import EarlyStopConfig
from odyssey.adapt.mitigations.ewc import EWCConfig
from odyssey.adapt.mitigations.freeze import FreezeConfig
from odyssey.adapt.mitigations.l2sp import L2SPConfig
from odyssey.adapt.mitigations.lora import LoRAConfig
from odyssey.adapt.mitigations.mix_similar import MixSimilarConfig
from odyssey.adapt.mitigations.noise import NoiseConfig
from odyssey.adapt.mitigations.normalize import NormalizeConfig
from odyssey.adapt.mitigations.registry import MITIGATIONS
from odyssey.adapt.mitigations.rephrase import RephraseConfig
from odyssey.adapt.mitigations.replay import ReplayConfig
from odyssey.adapt.mitigations.selective import Category, SelectiveConfig
from odyssey.config import StageConfig
from odyssey.registry import unknown_name_message


class _Methods(StageConfig):
    """Which mitigations a run combines, and the settings of each."""

    methods: list[str] = Field(default_factory=list, description=(
        f"mitigations to combine (empty: plain adaptation): {', '.join(MITIGATIONS.names())}"))

    @model_validator(mode="before")
    @classmethod
    def _dashed_sections(cls, data):
        # `mitigation.early-stop.patience=5` spells the section as the method is named.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for method in MITIGATIONS:
            if method.name != method.section and isinstance(data.get(method.name), dict):
                data[method.section] = {**(data.get(method.section) or {}), **data.pop(method.name)}
        return data

    @field_validator("methods", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):  # "replay,l2sp" from the command line or YAML
            v = [m.strip() for m in v.split(",") if m.strip()]
        if not isinstance(v, list | tuple):
            return v
        for m in v:
            if m not in MITIGATIONS:
                raise ValueError(f"{unknown_name_message('mitigation', m, MITIGATIONS.names())} "
                                 f"(choose from {', '.join(MITIGATIONS.names())})")
        return list(dict.fromkeys(v))  # a repeated name counts once

    @model_validator(mode="after")
    def _combinations(self):
        for method in self.active():
            method.check_methods(self)
        return self

    def on(self, method: str) -> bool:
        return method in self.methods

    def active(self) -> list:
        """The classes of the listed methods, in registration order (the order their hooks run)."""
        return [m for m in MITIGATIONS if m.name in self.methods]


MitigationConfig = create_model(
    "MitigationConfig", __base__=_Methods, __module__=__name__, __doc__=_Methods.__doc__,
    **{m.section: (m.Config, Field(default_factory=m.Config, description=m.summary)) for m in MITIGATIONS})

__all__ = ["Category", "EWCConfig", "EarlyStopConfig", "FreezeConfig", "L2SPConfig", "LoRAConfig",
           "MitigationConfig", "MixSimilarConfig", "NoiseConfig", "NormalizeConfig", "RephraseConfig",
           "ReplayConfig", "SelectiveConfig"]
