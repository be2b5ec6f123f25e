"""The mitigations of one run, put together: what the training loop asks, and when.

:class:`Mitigations` is built by :func:`odyssey.adapt.loop.setup` and asked at fixed
points, each a no-op when no mitigation concerns it:

============================  ==============================================================
``load_model()``              the model to train: freeze, LoRA (and, when resuming a LoRA
                              run, the base plus the checkpoint's adapter)
``documents(docs)``           the training documents (``normalize``)
``build(...)``                after the data is packed: general blocks (``replay``), the
                              base anchor (``l2sp``, ``ewc``), the Fisher (``ewc``), the
                              token weights and base copy (``selective``)
``trainable(model)``          the parameters the optimizer gets
``rows(...)``                 the blocks of a micro-batch (``replay`` mixes general ones in)
``start_step(batches, acc)``  before a step's micro-batches (``selective``: their weights)
``lm_loss(model, batch, i)``  the LM loss (``selective`` weights it per token)
``penalty(model)``            what is added to it (``l2sp`` + ``ewc``), or None
``after_eval(...)``           the best step and weights (``early-stop``)
``should_stop(state)``        whether to stop before ``total_steps`` (``early-stop``)
``final_model(...)``          what ``OUT/model`` holds: best weights put back, LoRA merged
                              (adapter saved to ``OUT/adapter``)
============================  ==============================================================

Everything that decides a step is a function of the config, the step and state
restored from the checkpoint, so resumed runs stay exact.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from odyssey.errors import ConfigError
from odyssey.io import write_json

if TYPE_CHECKING:
    from odyssey.adapt.config import AdaptConfig

PENALIZED = ("l2sp", "ewc")


def general_spec(cfg: AdaptConfig, data: str | None) -> str:
    """The general text a mitigation reads: its own ``data``, else ``general``'s train split."""
    from odyssey.corpora.store import is_corpus_dir, parse_data_spec

    if data:
        return data
    path, _ = parse_data_spec(cfg.general)
    return f"{path}:train" if is_corpus_dir(path) else str(path)


class Mitigations:
    def __init__(self, cfg: AdaptConfig, resume_from: Path | None = None):
        self.cfg, self.m, self.resume_from = cfg, cfg.mitigation, resume_from
        self.out = Path(cfg.out)
        self.info: dict = {}  # what result.json records under "mitigation"
        self.base: torch.nn.Module | None = None  # frozen base model, while something needs it
        self.replay = None
        self.anchor: dict[str, torch.Tensor] | None = None  # theta_base of the trained parameters
        self.fisher: dict[str, torch.Tensor] | None = None
        self.token_table: torch.Tensor | None = None
        self.base_scorer: torch.nn.Module | None = None  # base copy scoring targets (selective)
        self._pairs: dict | None = None
        self._weights: list[torch.Tensor] = []  # selective: this step's target weights per micro-batch
        self._scale: torch.Tensor | None = None
        self._last_penalty: torch.Tensor | None = None
        self.stopper = None
        if self.m.on("early-stop"):
            from odyssey.adapt.mitigations.early_stop import EarlyStopper
            from odyssey.corpora.store import is_corpus_dir, parse_data_spec, split_files

            path, _ = parse_data_spec(cfg.data)
            if not (is_corpus_dir(path) and split_files(path, "valid")):
                raise ConfigError("mitigation early-stop needs a valid split in --data",
                                  "give a corpus directory (odyssey corpus build) with a valid split")
            self.stopper = EarlyStopper(self.m.early_stop, cfg.eval_every, self.out)

    def on(self, method: str) -> bool:
        return self.m.on(method)

    # -- setup ------------------------------------------------------------------------
    def _load(self, source) -> torch.nn.Module:
        from odyssey.models import load_model

        cfg, fresh = self.cfg, str(source) == str(self.cfg.model)
        return load_model(source, revision=cfg.revision if fresh else None, allow_pickle=cfg.allow_pickle,
                          trust_remote_code=cfg.trust_remote_code)

    def _needs_base(self) -> bool:
        return any(self.on(x) for x in PENALIZED) or (self.on("selective") and self.m.selective.base_loss_below is not None)

    def load_model(self) -> torch.nn.Module:
        """The model to train, from the base or the resume checkpoint, frozen/wrapped as configured."""
        lora = self.on("lora")
        # A LoRA checkpoint holds only the adapter: start from the base and load it below.
        model = self._load(self.resume_from if self.resume_from and not lora else self.cfg.model)
        if self._needs_base():
            # The anchor is the base model, never a resumed checkpoint's weights.
            self.base = self._load(self.cfg.model) if self.resume_from else copy.deepcopy(model)
            self.base.requires_grad_(False)
        layers = None
        if self.on("freeze"):
            from odyssey.adapt.mitigations.freeze import apply_freeze, find_layers, frozen_layers

            if lora:  # LoRA trains no base weight; freeze picks the layers that get adapters
                n = len(find_layers(model)[1])
                frozen = frozen_layers(model, self.m.freeze)
                layers = [i for i in range(n) if i not in frozen]
                self.info["freeze"] = {"frozen_layers": frozen, "adapter_layers": layers}
            else:
                self.info["freeze"] = apply_freeze(model, self.m.freeze)
        if lora:
            from odyssey.adapt.mitigations.lora import apply_lora, load_adapter

            model = apply_lora(model, self.m.lora, layers)
            if self.resume_from:
                load_adapter(model, self.resume_from)
            trained, total = model.get_nb_trainable_parameters()
            self.info["lora"] = {"trainable_parameters": int(trained), "total_parameters": int(total)}
        return model

    def documents(self, docs: list[dict], is_main: bool = True) -> list[dict]:
        """The training documents, normalized and filtered when ``normalize`` is on."""
        if not self.on("normalize"):
            return docs
        from odyssey.adapt.mitigations.normalize import normalize_documents

        docs, counts = normalize_documents(docs, self.m.normalize)
        self.info["normalize"] = counts
        if is_main:
            write_json(self.out / "normalize.json", counts)
        return docs

    def domain_share(self) -> float:
        """Share of each step's blocks that are domain blocks (for counting epochs)."""
        return 1.0 - self.m.replay.ratio if self.on("replay") else 1.0

    def build(self, model: torch.nn.Module, tokenizer, blocks: np.ndarray, accelerator) -> None:
        """Everything that needs the packed data or the model (before ``accelerator.prepare``)."""
        from odyssey.blocks import pack_documents
        from odyssey.corpora.store import load_documents

        device, seed, size = accelerator.device, self.cfg.train.seed, int(blocks.shape[1])

        def general_blocks(data):
            with accelerator.main_process_first():
                return pack_documents(load_documents(general_spec(self.cfg, data), default_split="train"),
                                      tokenizer, size)

        if self.on("replay"):
            from odyssey.adapt.mitigations.replay import Replay

            gen = general_blocks(self.m.replay.data)
            self.replay = Replay(blocks, gen, self.m.replay.ratio, seed)
            self.info["replay"] = {"general_blocks": len(gen), "ratio": self.m.replay.ratio}
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        if any(self.on(x) for x in PENALIZED):
            from odyssey.adapt.mitigations.l2sp import anchor

            self.anchor = anchor(self.base, names, device)
        if self.on("ewc"):
            from odyssey.adapt.mitigations.ewc import empirical_fisher, sample_blocks

            sample = sample_blocks(general_blocks(self.m.ewc.data), self.m.ewc.samples, seed)
            self.base.to(device)
            self.fisher = empirical_fisher(self.base, sample, names, device=device)
            self.info["ewc"] = {"samples": len(sample),
                                "fisher_mean": float(sum(f.sum() for f in self.fisher.values())
                                                     / sum(f.numel() for f in self.fisher.values()))}
        if self.on("selective"):
            self._build_selective(model, tokenizer, device)
        self.base = None  # what is still needed was copied out of it

    def _build_selective(self, model, tokenizer, device) -> None:
        from odyssey.adapt.mitigations.selective import category_weights, vocabulary_categories

        s = self.m.selective
        size = model.get_output_embeddings().weight.shape[0]
        if s.categories:
            cats = vocabulary_categories(tokenizer, size)
            self.token_table = category_weights(cats, s.categories, s.weight).to(device)
            self.info["selective"] = {"vocabulary_weighted": int((self.token_table != 1).sum())}
        if s.base_loss_below is not None:
            self.base_scorer = self.base.to(device).eval()

    def trainable(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the mitigations leave no parameter to train")
        return params

    # -- each step ----------------------------------------------------------------------
    def rows(self, step: int, micro: int, **where) -> np.ndarray:
        rows, _ = self.replay.rows(step, micro, **where)
        return rows

    def _target_weights(self, batch: torch.Tensor) -> torch.Tensor:
        from odyssey.adapt.mitigations.selective import target_weights, token_ce

        base_ce = None
        if self.base_scorer is not None:
            with torch.no_grad():
                base_ce = token_ce(self.base_scorer(input_ids=batch).logits, batch)
        s = self.m.selective
        return target_weights(batch, self.token_table, base_ce, s.base_loss_below, s.easy_weight)

    def start_step(self, batches: list[torch.Tensor], accelerator) -> None:
        """selective: the weights of this step's targets and their sum over every
        micro-batch and process, so the step's loss is one weighted mean over all its
        targets, whatever the split into micro-batches and processes."""
        if not self.on("selective"):
            return
        self._weights = [self._target_weights(b) for b in batches]
        local = torch.stack([w.sum() for w in self._weights]).sum()
        total = accelerator.reduce(local, reduction="sum") if accelerator.num_processes > 1 else local
        # The loop divides each micro-batch's loss by grad_accum and DDP averages over
        # processes; this scale undoes both, leaving sum(w * ce) / total.
        self._scale = len(batches) * accelerator.num_processes / total.clamp_min(1e-12)

    def lm_loss(self, model, batch: torch.Tensor, micro: int | None = None) -> torch.Tensor:
        """The LM loss of a micro-batch (``micro`` of the step :meth:`start_step` saw;
        None: a batch on its own, normalized by its own weights)."""
        if not self.on("selective"):
            return model(input_ids=batch, labels=batch).loss
        from odyssey.adapt.mitigations.selective import token_ce, weighted_loss

        ce = token_ce(model(input_ids=batch).logits, batch)
        if micro is None:
            return weighted_loss(ce, self._target_weights(batch))
        return (self._weights[micro] * ce).sum() * self._scale

    def penalty(self, model) -> torch.Tensor | None:
        """``l2sp`` + ``ewc`` penalty of the current weights, or None."""
        if self.anchor is None:
            return None
        from odyssey.adapt.mitigations.ewc import ewc_penalty
        from odyssey.adapt.mitigations.l2sp import l2sp_penalty

        if self._pairs is None:  # the parameters as the loop holds them (after prepare)
            self._pairs = dict(model.named_parameters())
        total = None
        if self.on("l2sp"):
            total = l2sp_penalty(self._pairs, self.anchor, self.m.l2sp.alpha)
        if self.on("ewc"):
            term = ewc_penalty(self._pairs, self.anchor, self.fisher, self.m.ewc.alpha)
            total = term if total is None else total + term
        self._last_penalty = total.detach()
        return total

    def train_log(self) -> dict:
        """Extra fields of the training log rows (the penalty of the last step)."""
        return {} if self._last_penalty is None else {"penalty": float(self._last_penalty)}

    # -- evaluation and the end ------------------------------------------------------------
    def after_eval(self, run, results: dict) -> None:
        """Track the best valid loss; save the trained parameters when it improves."""
        if self.stopper is None:
            return
        from odyssey.adapt.mitigations.early_stop import valid_loss

        acc, state = run.accelerator, run.state
        loss = valid_loss(results)
        if acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            loss = broadcast_object_list([loss])[0]
        if self.stopper.improved(state, loss) and acc.is_main_process:
            self.stopper.save_best(acc.unwrap_model(run.model), state.step, loss)
        acc.wait_for_everyone()

    def should_stop(self, state) -> bool:
        return self.stopper is not None and self.stopper.should_stop(state)

    def final_model(self, run) -> torch.nn.Module | None:
        """The plain model ``OUT/model`` should hold, or None for the trained one as is."""
        acc, state = run.accelerator, run.state
        model = acc.unwrap_model(run.model)
        if self.stopper is not None:
            self.stopper.load_best(model, state.best_step)
            self.info["early_stop"] = {"best_step": state.best_step, "best_valid_loss": state.best_valid_loss,
                                       "stopped_at": state.step if state.step < run.total_steps else None}
        if not self.on("lora"):
            return None
        from odyssey.adapt.mitigations.lora import merged, save_adapter

        if acc.is_main_process:
            save_adapter(model, self.out / "adapter")
            run.tokenizer.save_pretrained(self.out / "adapter")
        acc.wait_for_everyone()
        return merged(model)
