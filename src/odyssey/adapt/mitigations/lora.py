"""LoRA through peft: the base weights stay frozen, low-rank adapters train.

During training a checkpoint holds the adapter (peft layout) rather than the whole
model; resuming loads the base, wraps it the same way and loads the adapter. At the
end the adapter is saved on its own (``OUT/adapter``, loadable with
``PeftModel.from_pretrained``) and merged into the base, so ``OUT/model`` is a plain
Hugging Face model that evaluation and the study read unchanged.

With ``freeze``, the freeze settings choose the layers that get adapters (peft's
``target_modules`` given as the full names of the linear modules in those layers).
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from odyssey.adapt.mitigations.base import Mitigation
from odyssey.adapt.mitigations.freeze import find_layers
from odyssey.config import StageConfig
from odyssey.errors import ConfigError

if TYPE_CHECKING:
    import torch

ADAPTER_FILE = "adapter_model.safetensors"


class LoRAConfig(StageConfig):
    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description=(
        "dropout on the adapters' input; active only if the model is in training mode (the loop keeps the "
        "mode the model was loaded in, which for Hugging Face models is eval: dropout off)"))
    target_modules: str | list[str] = Field("all-linear", description=(
        "modules that get adapters: 'all-linear' (every Linear/Conv1D but the output head: Llama, GPT-2 and "
        "most causal LMs) or a list of module names, e.g. [q_proj, v_proj] or [c_attn]"))


@contextlib.contextmanager
def _quiet():
    """peft asks transformers a deprecated question (is_gradient_checkpointing)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield


def _linear_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    import torch
    from transformers.pytorch_utils import Conv1D

    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear | Conv1D)]


def target_modules(model: torch.nn.Module, cfg: LoRAConfig, layers: list[int] | None) -> str | list[str]:
    """peft ``target_modules``: ``cfg``'s as given, or the full names of the matching
    linear modules inside ``layers`` when only some layers get adapters."""
    if layers is None:
        return cfg.target_modules
    path, _ = find_layers(model)
    prefixes = tuple(f"{path}.{i}." for i in layers)
    wanted = cfg.target_modules
    names = [n for n, _ in _linear_modules(model) if n.startswith(prefixes)
             and (wanted == "all-linear" or any(n == w or n.endswith("." + w) for w in wanted))]
    if not names:
        raise ConfigError(f"no module matching lora.target_modules={wanted} in layers {layers}")
    return names


def apply_lora(model: torch.nn.Module, cfg: LoRAConfig, layers: list[int] | None = None):
    """Wrap ``model`` with fresh LoRA adapters (a peft ``PeftModel``)."""
    from peft import LoraConfig, get_peft_model

    targets = target_modules(model, cfg, layers)
    conv1d = any(type(m).__name__ == "Conv1D" for _, m in _linear_modules(model))
    config = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                        task_type="CAUSAL_LM", fan_in_fan_out=conv1d)  # GPT-2's Conv1D stores W transposed
    was_training = model.training
    try:
        with _quiet():
            wrapped = get_peft_model(model, config)
    except ValueError as e:  # peft: target modules not found
        raise ConfigError(f"lora: {e}", "check mitigation.lora.target_modules against the model's module names") from e
    # peft leaves its wrapper in training mode; keep the mode the model had, as a plain
    # run does (evaluation restores the wrapper's mode, which would switch dropout on).
    return wrapped.train(was_training)


def load_adapter(model, ckpt: Path) -> None:
    """Load the adapter weights a checkpoint holds into the wrapped ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = ckpt / ADAPTER_FILE
    if not path.is_file():
        raise ConfigError(f"cannot resume: {ckpt} holds no LoRA adapter ({ADAPTER_FILE})",
                              "resume with the mitigations the run was started with, or rerun with --overwrite")
    result = set_peft_model_state_dict(model, load_file(str(path)))
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing:
        raise ConfigError(f"cannot resume: {ckpt} lacks adapter weights {missing[:3]}",
                              "the adapter was saved with other lora settings (r, target_modules, freeze "
                              "layers); resume with those, or rerun with --overwrite")


def save_adapter(model, dest: Path) -> None:
    """``model``'s adapter in peft layout, written to ``dest.tmp`` and renamed."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet():
        model.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def merged(model) -> torch.nn.Module:
    """The plain base model with the adapters merged in (modifies ``model``)."""
    with _quiet():
        return model.merge_and_unload()


class LoRAMethod(Mitigation):
    """Wraps the model with adapters; at the end saves them and merges them in."""

    name = section = "lora"
    Config = LoRAConfig
    summary = "peft low-rank adapters; ``OUT/adapter`` and the merged ``OUT/model``"
    adapters = True

    @classmethod
    def check_methods(cls, m) -> None:
        on = set(m.methods)
        if on & {"l2sp", "ewc"}:
            raise ValueError("lora cannot be combined with l2sp or ewc: LoRA leaves the base weights unchanged "
                             "and these penalties pull the trained base weights toward the base; use "
                             "optim.weight_decay to keep the adapters small")
        if "freeze" in on and not m.freeze.freezes_layers():
            raise ValueError("lora with freeze: freeze then chooses the layers that get adapters; set "
                             "freeze.first_k or freeze.all_but_top_k (LoRA already trains no embedding)")

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = apply_lora(model, self.cfg, self.ctx.adapter_layers)
        if self.ctx.resume_from:  # the checkpoint holds only the adapter: the base was loaded
            load_adapter(model, self.ctx.resume_from)
        trained, total = model.get_nb_trainable_parameters()
        self.ctx.info["lora"] = {"trainable_parameters": int(trained), "total_parameters": int(total)}
        return model

    def save(self, out: Path, model, tokenizer) -> None:
        save_adapter(model, out / "adapter")
        tokenizer.save_pretrained(out / "adapter")

    def final_model(self, model) -> torch.nn.Module:
        return merged(model)
