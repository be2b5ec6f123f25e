"""Every mitigation method, registered in one place.

The order here is the order in which the loop's hooks run the active methods (and the
order of the sections in ``config.yaml``); it matters where two methods touch the same
thing: ``l2sp``'s penalty is added before ``ewc``'s, ``freeze`` picks the layers before
``lora`` wraps them (the two run in different hooks), ``early-stop`` puts the best
weights back before ``lora`` saves and merges its adapters; ``normalize`` cleans the
documents before ``rephrase`` rewrites them and ``mix-similar`` adds general ones (profiled
on the domain's own text), and ``noise`` corrupts the blocks replay has mixed.

To add a method, write one module with its ``Config`` and a
:class:`~odyssey.adapt.mitigations.base.Mitigation` subclass, and add the class to this
list (see "Adding a mitigation" in the README).
"""

from __future__ import annotations

from odyssey.adapt.mitigations.base import Mitigation
from odyssey.adapt.mitigations.early_stop import EarlyStopMethod
from odyssey.adapt.mitigations.ewc import EWCMethod
from odyssey.adapt.mitigations.freeze import FreezeMethod
from odyssey.adapt.mitigations.l2sp import L2SPMethod
from odyssey.adapt.mitigations.lora import LoRAMethod
from odyssey.adapt.mitigations.mix_similar import MixSimilarMethod
from odyssey.adapt.mitigations.noise import NoiseMethod
from odyssey.adapt.mitigations.normalize import NormalizeMethod
from odyssey.adapt.mitigations.rephrase import RephraseMethod
from odyssey.adapt.mitigations.replay import ReplayMethod
from odyssey.adapt.mitigations.selective import SelectiveMethod
from odyssey.registry import Registry

MITIGATIONS: Registry[type[Mitigation]] = Registry("mitigation", Mitigation, [
    ReplayMethod,
    L2SPMethod,
    EWCMethod,
    LoRAMethod,
    FreezeMethod,
    EarlyStopMethod,
    NormalizeMethod,
    RephraseMethod,
    MixSimilarMethod,
    SelectiveMethod,
    NoiseMethod,
], classes=True)
