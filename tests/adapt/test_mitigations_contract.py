"""The mitigation contract: every registered method against one table of checks, and a new
method plugged in as one class (a per-step token noising, as data augmentation would be)."""

import inspect

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_mitigations_config import assert_resume_is_exact, make_cfg

from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.loop import adapt
from odyssey.adapt.mitigations.base import Mitigation
from odyssey.adapt.mitigations.compose import Mitigations
from odyssey.adapt.mitigations.config import MitigationConfig
from odyssey.adapt.mitigations.registry import MITIGATIONS
from odyssey.adapt.mitigations.replay import ReplayMethod
from odyssey.config import StageConfig, resolve
from odyssey.errors import ConfigError

HOOKS = {name for name, _ in inspect.getmembers(Mitigation, callable) if not name.startswith("_")}


@pytest.mark.parametrize("method", list(MITIGATIONS), ids=lambda m: m.name)
def test_every_registered_method_keeps_the_contract(method):
    assert method.name and method.summary and method.section == method.name.replace("-", "_")
    assert issubclass(method.Config, StageConfig) and isinstance(method.Config(), StageConfig)
    assert MitigationConfig.model_fields[method.section].annotation is method.Config
    # A public method on a mitigation is a hook of the contract: a misspelt hook would never be called.
    own = {n for n, v in vars(method).items() if callable(v) and not n.startswith("_") and n != "Config"}
    assert own <= HOOKS, own - HOOKS
    assert own, "a method that overrides no hook does nothing"


def test_the_config_lists_every_registered_method_in_order():
    assert list(MitigationConfig.model_fields) == ["methods", *(m.section for m in MITIGATIONS)]
    with pytest.raises(ValueError, match="did you mean 'early-stop'"):
        MitigationConfig(methods=["early_stop"])


def test_two_methods_cannot_both_supply_the_rows(monkeypatch):
    class MoreRows(Mitigation):
        name = "more-rows"

        def rows(self, b):
            return None

    monkeypatch.setattr(MitigationConfig, "active", lambda self: [ReplayMethod, MoreRows])
    cfg = resolve(AdaptConfig, overrides=["model=m", "data=d", "out=o", "general=g", "mitigation.methods=[replay]"])
    with pytest.raises(ConfigError, match="replay and more-rows both supply the blocks"):
        Mitigations(cfg)


class TokenNoise(Mitigation):
    """Replaces a fifth of the input tokens by random ones, drawn from (seed, step, micro, rank)."""

    name = "token-noise"
    calls: list = []

    def build(self, data):
        self.vocab = len(data.tokenizer)

    def transform_batch(self, rows, b):
        TokenNoise.calls.append((b.step, b.micro, b.epoch))
        rng = np.random.default_rng([b.seed, b.step, b.micro, b.rank, 0x4015E])
        noisy = np.array(rows, copy=True)
        mask = rng.random(noisy.shape) < 0.2
        noisy[mask] = rng.integers(0, self.vocab, size=int(mask.sum()))
        return noisy


def test_a_new_method_is_one_class_and_keeps_exact_resume(tmp_path, monkeypatch, tiny_llama_dir, tiny_corpus_dir):
    real = MitigationConfig.active
    monkeypatch.setattr(MitigationConfig, "active", lambda self: [*real(self), TokenNoise])
    TokenNoise.calls = []
    assert_resume_is_exact(tmp_path, tiny_llama_dir, tiny_corpus_dir)
    # the full run's 6 steps, then steps 5 and 6 again after resuming from step 4
    assert [c[0] for c in TokenNoise.calls] == [0, 1, 2, 3, 4, 5, 4, 5]
    epochs = [c[2] for c in TokenNoise.calls[:6]]
    assert epochs[0] == 0 and epochs == sorted(epochs)
    monkeypatch.undo()
    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "plain"), progress=False)
    noisy = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    plain = load_file(str(tmp_path / "plain" / "model" / "model.safetensors"))
    assert any(not torch.equal(noisy[k], plain[k]) for k in plain), "the hook changed nothing"
