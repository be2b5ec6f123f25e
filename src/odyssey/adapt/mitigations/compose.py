"""The mitigations of one run, put together: what the training loop asks, and when.

:class:`Mitigations` is built by :func:`odyssey.adapt.loop.setup`. It holds the active
methods (instances of the registered :class:`~odyssey.adapt.mitigations.base.Mitigation`
subclasses listed in ``mitigation.methods``, in registration order) and, at each point
the loop asks, calls their hooks in turn; with no method active every answer is that of
plain adaptation. It knows no method by name: the hooks are listed in
:mod:`odyssey.adapt.mitigations.base`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from odyssey.adapt.mitigations.base import BatchInfo, Context, Mitigation, TrainingData
from odyssey.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from odyssey.adapt.config import AdaptConfig


class Mitigations:
    """The active methods of a run, asked by the loop through one interface."""

    def __init__(self, cfg: AdaptConfig, resume_from: Path | None = None):
        self.ctx = Context(cfg, resume_from)
        self.active: list[Mitigation] = [method(self.ctx) for method in cfg.mitigation.active()]
        self.ctx.adapters = any(m.adapters for m in self.active)
        self._rows = self._at_most_one("rows", "supply the blocks of a micro-batch")
        self._loss = self._at_most_one("lm_loss", "define the LM loss")
        self._penalized = [m for m in self.active if m.overrides("penalty")]
        self._params: dict | None = None  # the parameters as the loop holds them (after prepare)
        self._last_penalty: torch.Tensor | None = None

    def _at_most_one(self, hook: str, what: str) -> Mitigation | None:
        found = [m for m in self.active if m.overrides(hook)]
        if len(found) > 1:
            raise ConfigError(f"mitigations {' and '.join(m.name for m in found)} both {what}",
                              "combine at most one of them")
        return found[0] if found else None

    @property
    def info(self) -> dict:
        """What each method did (counts, best step, ...): ``result.json``'s ``mitigation``."""
        return self.ctx.info

    def __getitem__(self, name: str) -> Mitigation:
        """The active method ``name`` (for tests and inspection)."""
        for m in self.active:
            if m.name == name:
                return m
        raise KeyError(f"mitigation {name!r} is not active")

    # -- setup ------------------------------------------------------------------------
    def load_model(self) -> torch.nn.Module:
        """The model to train, from the base or the resume checkpoint, frozen/wrapped as configured."""
        ctx = self.ctx
        # A checkpoint of a run that trains adapters holds only them: start from the base.
        model = ctx.load_model(ctx.resume_from if ctx.resume_from and not ctx.adapters else ctx.cfg.model)
        if any(m.needs_base() for m in self.active):
            ctx.base = ctx.load_base(model)
        for m in self.active:
            m.select_parameters(model)
        for m in self.active:
            model = m.wrap_model(model)
        return model

    def documents(self, docs: list[dict], accelerator) -> list[dict]:
        """The training documents, as the methods transform them (before packing)."""
        for m in self.active:
            docs = m.documents(docs, accelerator)
        return docs

    def domain_share(self) -> float:
        """Share of each step's blocks that are domain blocks (for counting epochs)."""
        share = 1.0
        for m in self.active:
            share *= m.domain_share()
        return share

    def build(self, model: torch.nn.Module, tokenizer, blocks: np.ndarray, accelerator) -> None:
        """Everything that needs the packed data or the model (before ``accelerator.prepare``)."""
        data = TrainingData(model, tokenizer, blocks, accelerator,
                            [n for n, p in model.named_parameters() if p.requires_grad])
        for m in self.active:
            m.build(data)
        self.ctx.release()  # what is still needed was copied out of the base

    def trainable(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the mitigations leave no parameter to train")
        return params

    # -- each step ----------------------------------------------------------------------
    def rows(self, b: BatchInfo) -> np.ndarray | None:
        """The token blocks of a micro-batch when a method supplies them, else None."""
        return self._rows.rows(b) if self._rows is not None else None

    def transform_batch(self, rows: np.ndarray, b: BatchInfo) -> np.ndarray:
        for m in self.active:
            rows = m.transform_batch(rows, b)
        return rows

    def start_step(self, batches: list[torch.Tensor], accelerator) -> None:
        """Before the micro-batches of a step (all of them, already on the device)."""
        for m in self.active:
            m.start_step(batches, accelerator)

    def lm_loss(self, model, batch: torch.Tensor, micro: int | None = None) -> torch.Tensor:
        """The LM loss of a micro-batch (``micro`` of the step :meth:`start_step` saw;
        None: a batch on its own)."""
        if self._loss is None:
            return model(input_ids=batch, labels=batch).loss
        return self._loss.lm_loss(model, batch, micro)

    def penalty(self, model) -> torch.Tensor | None:
        """The sum of the methods' penalties on the current weights, or None."""
        if not self._penalized:
            return None
        if self._params is None:
            self._params = dict(model.named_parameters())
        total = None
        for m in self._penalized:
            term = m.penalty(self._params)
            total = term if total is None else total + term
        self._last_penalty = total.detach()
        return total

    def train_log(self) -> dict:
        """Extra fields of the training log rows (the penalty of the last step)."""
        return {} if self._last_penalty is None else {"penalty": float(self._last_penalty)}

    # -- evaluation and the end ------------------------------------------------------------
    def after_eval(self, run, results: dict) -> None:
        for m in self.active:
            m.after_eval(run, results)

    def should_stop(self, state) -> bool:
        return any(m.should_stop(state) for m in self.active)

    def best_step(self, state) -> int | None:
        """The step whose weights ``OUT/model`` holds, when a method chose one (else the last)."""
        return next((s for m in self.active if (s := m.best_step(state)) is not None), None)

    def final_model(self, run) -> torch.nn.Module | None:
        """The plain model ``OUT/model`` should hold, or None for the trained one as is."""
        acc = run.accelerator
        model = acc.unwrap_model(run.model)
        for m in self.active:
            m.final_weights(run, model)
        savers = [m for m in self.active if m.overrides("save")]
        if savers:
            if acc.is_main_process:
                for m in savers:
                    m.save(self.ctx.out, model, run.tokenizer)
            acc.wait_for_everyone()
        final = None
        for m in self.active:
            replaced = m.final_model(model if final is None else final)
            final = final if replaced is None else replaced
        return final
