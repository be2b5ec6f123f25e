"""Freezing: train only part of the model (embeddings and/or lower layers frozen).

The transformer layers are found where the common architectures keep them
(``model.layers`` for Llama/Mistral/Qwen, ``transformer.h`` for GPT-2, ...), else as
the module list with ``num_hidden_layers`` entries. Frozen parameters get
``requires_grad=False`` and are left out of the optimizer, so they stay bit-identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from odyssey.adapt.mitigations.base import Mitigation
from odyssey.config import StageConfig
from odyssey.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

class FreezeConfig(StageConfig):
    embeddings: bool = Field(True, description=(
        "freeze the token (and position) embeddings; a tied output head is the same tensor and freezes too"))
    first_k: int = Field(0, ge=0, description="freeze the first k transformer layers")
    all_but_top_k: int | None = Field(None, ge=1, description="freeze every transformer layer except the top k")

    @model_validator(mode="after")
    def _one_layer_rule(self):
        if self.first_k and self.all_but_top_k is not None:
            raise ValueError("freeze: set first_k or all_but_top_k, not both")
        return self

    def freezes_layers(self) -> bool:
        return bool(self.first_k) or self.all_but_top_k is not None


LAYER_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers", "transformer.blocks")


def _get(module: torch.nn.Module, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def find_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """``(dotted path, module list)`` of the model's transformer layers."""
    import torch

    for path in LAYER_PATHS:
        found = _get(model, path)
        if isinstance(found, torch.nn.ModuleList):
            return path, found
    n = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return name, module
    raise ModelError(f"cannot find the transformer layers of {type(model).__name__}",
                     "freeze only the embeddings (freeze.first_k=0), or use lora")


def frozen_layers(model: torch.nn.Module, cfg: FreezeConfig) -> list[int]:
    """Indices of the layers ``cfg`` freezes."""
    _, layers = find_layers(model)
    n = len(layers)
    k = n - cfg.all_but_top_k if cfg.all_but_top_k is not None else cfg.first_k
    if cfg.all_but_top_k is not None and cfg.all_but_top_k > n:
        raise ConfigError(f"freeze.all_but_top_k={cfg.all_but_top_k} but the model has {n} layers")
    if k >= n and cfg.first_k:
        raise ConfigError(f"freeze.first_k={cfg.first_k} freezes all {n} layers of the model",
                          f"use at most {n - 1}")
    return list(range(max(0, k)))


def embedding_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Token embeddings, plus learned position embeddings where the model has them."""
    import torch

    params = list(model.get_input_embeddings().parameters())
    for path in ("transformer.wpe", "model.decoder.embed_positions", "gpt_neox.embed_positions"):
        found = _get(model, path)
        if isinstance(found, torch.nn.Module):
            params += list(found.parameters())
    return params


def apply_freeze(model: torch.nn.Module, cfg: FreezeConfig) -> dict:
    """Freeze what ``cfg`` says; return a summary (frozen layers, parameter counts)."""
    _, layers = find_layers(model)
    frozen = frozen_layers(model, cfg)
    params = [p for i in frozen for p in layers[i].parameters()]
    if cfg.embeddings:
        params += embedding_parameters(model)
    for p in params:
        p.requires_grad_(False)
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"frozen_layers": frozen, "embeddings": cfg.embeddings, "trainable_parameters": trained,
            "total_parameters": total}


class FreezeMethod(Mitigation):
    """Freezes what its settings say; with a method that trains adapters, picks the
    layers that get them instead (the ones it would leave trainable)."""

    name = section = "freeze"
    Config = FreezeConfig
    summary = "embeddings and/or lower layers frozen"

    @classmethod
    def check_methods(cls, m) -> None:
        if not (m.freeze.embeddings or m.freeze.freezes_layers()):
            raise ValueError("freeze freezes nothing: set freeze.embeddings, freeze.first_k or freeze.all_but_top_k")

    def select_parameters(self, model: torch.nn.Module) -> None:
        if self.ctx.adapters:  # adapters train no base weight: freeze picks their layers
            n = len(find_layers(model)[1])
            frozen = frozen_layers(model, self.cfg)
            self.ctx.adapter_layers = [i for i in range(n) if i not in frozen]
            self.ctx.info["freeze"] = {"frozen_layers": frozen, "adapter_layers": self.ctx.adapter_layers}
        else:
            self.ctx.info["freeze"] = apply_freeze(model, self.cfg)
