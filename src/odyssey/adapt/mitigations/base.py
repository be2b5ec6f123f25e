"""The contract of a mitigation: the hooks the training loop calls, in the order it calls them.

A method is a subclass of :class:`Mitigation` that sets ``name``, ``section`` and
``Config`` and overrides only the hooks it needs; every hook here is a no-op. The
adapt loop never sees a method: it asks :class:`~odyssey.adapt.mitigations.compose.Mitigations`,
which calls each active method in registration order
(:data:`odyssey.adapt.mitigations.registry.MITIGATIONS`).

===============================  ===========================================================
hook (when)                      what a method does there (example)
===============================  ===========================================================
``check_methods(m)`` (config)    refuse settings that do not combine (lora: not with l2sp)
``check_run(cfg)`` (config)      refuse a run that lacks what the method needs (replay:
                                 general text)
``__init__(ctx)`` (setup)        check inputs before any work (early-stop: a valid split)
``needs_base()``                 ask for a frozen copy of the base model (l2sp, ewc)
``select_parameters(model)``     freeze parameters, or pick the layers adapters go on (freeze)
``wrap_model(model)``            wrap the model (lora: peft adapters; on resume, the
                                 checkpoint's adapter)
``documents(docs, acc)``         transform the training documents before packing (normalize)
``build(data)``                  after packing, before ``accelerator.prepare``: own data,
                                 anchors, statistics (replay, ewc, selective)
``domain_share()``               share of each step's blocks that are domain blocks (replay)
``rows(step, micro, where)``     supply the blocks of a micro-batch (replay mixes general
                                 ones in); at most one method may
``transform_batch(rows, b)``     change the token blocks of a micro-batch (per-step noising:
                                 ``b`` has the seed, step, micro-batch and epoch)
``start_step(batches, acc)``     before a step's micro-batches (selective: their weights)
``lm_loss(model, batch, i)``     the LM loss of a micro-batch; at most one method may
``penalty(params)``              a term added to the loss (l2sp, ewc); terms are summed
``after_eval(run, results)``     after each evaluation (early-stop: track the best step)
``should_stop(state)``           stop before ``total_steps`` (early-stop)
``best_step(state)``             the step whose weights ``OUT/model`` holds (early-stop)
``final_weights(run, model)``    put the weights ``OUT/model`` should hold into ``model``
``save(out, model, tokenizer)``  write the method's own outputs, main process only
                                 (lora: ``OUT/adapter``)
``final_model(model)``           the plain model ``OUT/model`` holds, or None (lora: merged)
===============================  ===========================================================

Everything that decides a step must be a function of the config, the step and state
restored from the checkpoint (``TrainState``), so that a resumed run stays exact: a
per-step hook draws its randomness from ``(seed, step, micro)``, never from a generator
that runs on.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from odyssey.config import StageConfig
from odyssey.corpora.store import is_corpus_dir, load_documents, parse_data_spec

if TYPE_CHECKING:
    import numpy as np
    import torch

    from odyssey.adapt.checkpoint import TrainState
    from odyssey.adapt.config import AdaptConfig
    from odyssey.adapt.mitigations.config import MitigationConfig


def general_spec(cfg: AdaptConfig, data: str | None) -> str:
    """The general text a method reads: its own ``data``, else ``general``'s train split."""
    if data:
        return data
    path, _ = parse_data_spec(cfg.general)
    return f"{path}:train" if is_corpus_dir(path) else str(path)


@dataclass
class Context:
    """What every method of a run shares: the run's config, where it writes, what it
    resumes from, and ``info`` (what ``result.json`` records under ``mitigation``)."""

    cfg: AdaptConfig
    resume_from: Path | None = None
    info: dict = field(default_factory=dict)
    base: torch.nn.Module | None = None  # frozen base model, from load to build, when a method asks for it
    adapters: bool = False  # a method trains adapters instead of the base weights
    adapter_layers: list[int] | None = None  # the layers that get adapters (None: all)
    _anchor: dict | None = None

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def seed(self) -> int:
        return self.cfg.train.seed

    def on(self, method: str) -> bool:
        return self.cfg.mitigation.on(method)

    def load_model(self, source) -> torch.nn.Module:
        """A model from ``source`` (the base, or a checkpoint), as the run's config says to load it."""
        from odyssey.models import load_model

        cfg, fresh = self.cfg, str(source) == str(self.cfg.model)
        return load_model(source, revision=cfg.revision if fresh else None, allow_pickle=cfg.allow_pickle,
                          trust_remote_code=cfg.trust_remote_code)

    def load_base(self, model: torch.nn.Module) -> torch.nn.Module:
        """A frozen copy of the base model: the one just loaded, or (when resuming) the base
        itself, never a resumed checkpoint's weights."""
        base = self.load_model(self.cfg.model) if self.resume_from else copy.deepcopy(model)
        return base.requires_grad_(False)

    def anchor(self, names: list[str], device) -> dict[str, torch.Tensor]:
        """float32 copies of the base's parameters ``names`` on ``device``, made once and
        shared by the methods that pull toward the base (l2sp, ewc)."""
        if self._anchor is None:
            import torch

            params = dict(self.base.named_parameters())
            self._anchor = {n: params[n].detach().to(device=device, dtype=torch.float32, copy=True) for n in names}
        return self._anchor

    def release(self) -> None:
        """Drop the base model and the shared anchor (the methods keep what they use)."""
        self.base, self._anchor = None, None


@dataclass
class TrainingData:
    """What :meth:`Mitigation.build` gets: the model and data before ``accelerator.prepare``."""

    model: torch.nn.Module
    tokenizer: Any
    blocks: np.ndarray  # (n_blocks, block_size) domain token blocks
    accelerator: Any
    trained: list[str]  # names of the parameters that train

    @property
    def device(self):
        return self.accelerator.device

    def general_blocks(self, ctx: Context, data: str | None) -> np.ndarray:
        """General text (``data``, else the train split of ``general``) packed like the domain."""
        from odyssey.blocks import pack_documents  # (imports numpy, which configs do not need)

        with self.accelerator.main_process_first():
            return pack_documents(load_documents(general_spec(ctx.cfg, data), default_split="train"),
                                  self.tokenizer, int(self.blocks.shape[1]))


@dataclass(frozen=True)
class BatchInfo:
    """Where a micro-batch sits: a per-step hook draws from ``(seed, step, micro)`` so
    that resumed runs and any split over processes see the same blocks."""

    step: int
    micro: int
    seed: int
    rank: int
    world_size: int
    micro_batch: int
    grad_accum: int
    n_blocks: int  # domain blocks

    @property
    def epoch(self) -> int:
        """Passes over the domain blocks completed before this step (counted in slots)."""
        return self.step * self.micro_batch * self.world_size * self.grad_accum // max(1, self.n_blocks)


class Mitigation:
    """Base class of a mitigation method: every hook is a no-op (see the module docstring).

    Subclasses set:

    - ``name``: the name in ``mitigation.methods`` (``--mitigation NAME``);
    - ``section``: the field of ``MitigationConfig`` holding its settings (``name`` with
      ``-`` as ``_``);
    - ``Config``: a :class:`~odyssey.config.StageConfig` of its settings, with defaults;
    - ``summary``: one line for the docs and ``--help``;
    - ``adapters``: True if it trains adapters instead of the base weights (checkpoints
      then hold only the adapters, and ``freeze`` picks the layers that get them).
    """

    name: ClassVar[str] = ""
    section: ClassVar[str] = ""
    Config: ClassVar[type[StageConfig]] = StageConfig
    summary: ClassVar[str] = ""
    adapters: ClassVar[bool] = False
    # reads general text (its own ``data`` setting, else the run's ``general``): check_run asks for it
    needs_general: ClassVar[bool] = False

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.cfg = getattr(ctx.cfg.mitigation, self.section, None)  # its settings (None: it has none)

    # -- configuration (class methods: no run yet) -------------------------------------
    @classmethod
    def check_methods(cls, m: MitigationConfig) -> None:
        """Raise ``ValueError`` if the mitigation settings do not combine (called when this method is listed)."""

    @classmethod
    def check_run(cls, cfg: AdaptConfig) -> None:
        """Raise ``ValueError`` if the run lacks what this method needs (called when it is listed)."""
        if cls.needs_general and not (getattr(cfg.mitigation, cls.section).data or cfg.general):
            raise ValueError(f"mitigation {cls.name} needs general text: pass --general CORPUS "
                             f"or set mitigation.{cls.section}.data")

    # -- setup -------------------------------------------------------------------------
    def needs_base(self) -> bool:
        return False

    def select_parameters(self, model: torch.nn.Module) -> None:
        pass

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def documents(self, docs: list[dict], accelerator) -> list[dict]:
        return docs

    def build(self, data: TrainingData) -> None:
        pass

    def domain_share(self) -> float:
        return 1.0

    # -- each step ---------------------------------------------------------------------
    def rows(self, b: BatchInfo) -> np.ndarray | None:
        return None

    def transform_batch(self, rows: np.ndarray, b: BatchInfo) -> np.ndarray:
        return rows

    def start_step(self, batches: list[torch.Tensor], accelerator) -> None:
        pass

    def lm_loss(self, model, batch: torch.Tensor, micro: int | None) -> torch.Tensor | None:
        return None

    def penalty(self, params: dict[str, torch.nn.Parameter]) -> torch.Tensor | None:
        return None

    # -- evaluation and the end -------------------------------------------------------------
    def after_eval(self, run, results: dict) -> None:
        pass

    def should_stop(self, state: TrainState) -> bool:
        return False

    def best_step(self, state: TrainState) -> int | None:
        return None

    def final_weights(self, run, model: torch.nn.Module) -> None:
        pass

    def save(self, out: Path, model: torch.nn.Module, tokenizer) -> None:
        pass

    def final_model(self, model: torch.nn.Module) -> torch.nn.Module | None:
        return None

    @classmethod
    def overrides(cls, hook: str) -> bool:
        """Whether this method implements the instance hook ``hook`` (rather than inheriting the no-op)."""
        return getattr(cls, hook) is not getattr(Mitigation, hook)
