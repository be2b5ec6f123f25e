"""Early stopping on the in-domain validation loss, keeping the best weights.

The loop already evaluates the ``valid`` split every ``eval_every`` steps (and at
step 0 and the end). After each evaluation the valid loss (nats per token) is
compared with the best so far; an improvement of more than ``min_delta`` makes this
step the best and saves the trained parameters to ``OUT/checkpoint/best``. Training
stops once ``patience`` evaluations in a row brought no improvement. Whether to stop
is a function of the counters in :class:`~odyssey.adapt.checkpoint.TrainState`
(``step``, ``best_step``), so a resumed run stops where the uninterrupted one did.
At the end the best weights are put back, so ``OUT/model`` is the best model.

Only the trained parameters are saved (frozen ones never change), which also covers
LoRA, where they are the adapters.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from odyssey.adapt.mitigations.base import Context, Mitigation
from odyssey.config import StageConfig
from odyssey.corpora.store import is_corpus_dir, parse_data_spec, split_files
from odyssey.errors import ConfigError, TrainingError
from odyssey.io import read_json, write_json

if TYPE_CHECKING:
    import torch

BEST = "best"
WEIGHTS = "trained.safetensors"


class EarlyStopConfig(StageConfig):
    patience: int = Field(3, ge=1, description="stop after this many evaluations without improvement")
    min_delta: float = Field(0.0, ge=0, description="an improvement must lower the valid loss (nats/token) by more")


def valid_loss(results: dict) -> float | None:
    v = results.get("valid")
    return v["nll_sum"] / max(1, v["tokens"]) if v else None


class EarlyStopper:
    def __init__(self, cfg: EarlyStopConfig, eval_every: int, out: Path):
        self.cfg, self.eval_every, self.out = cfg, eval_every, Path(out)

    def improved(self, state, loss: float) -> bool:
        """Record ``loss`` at ``state.step``; True if it is the new best."""
        if state.best_valid_loss is not None and not loss < state.best_valid_loss - self.cfg.min_delta:
            return False
        state.best_valid_loss, state.best_step = float(loss), state.step
        return True

    def should_stop(self, state) -> bool:
        if state.best_step is None:
            return False
        evals_without_gain = (state.step - state.best_step) // self.eval_every
        return evals_without_gain >= self.cfg.patience

    # -- the best weights --------------------------------------------------------------
    def best_dir(self) -> Path:
        from odyssey.adapt.checkpoint import checkpoint_root  # (imports torch)

        return checkpoint_root(self.out) / BEST

    def save_best(self, model: torch.nn.Module, step: int, loss: float) -> None:
        """Write the trained parameters as ``best`` (via ``best.tmp``; the old one is
        kept as ``best.old`` until the new one is in place)."""
        from safetensors.torch import save_file

        best = self.best_dir()
        tmp, old = best.with_name(BEST + ".tmp"), best.with_name(BEST + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors = {n: p.detach().cpu().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(tensors, str(tmp / WEIGHTS))
        write_json(tmp / "state.json", {"step": step, "valid_loss": loss})
        shutil.rmtree(old, ignore_errors=True)
        if best.exists():
            best.rename(old)
        tmp.rename(best)
        shutil.rmtree(old, ignore_errors=True)

    def load_best(self, model: torch.nn.Module, step: int) -> None:
        """Copy the saved best parameters (of ``step``) back into ``model``."""
        import torch
        from safetensors.torch import load_file

        best = self.best_dir()
        if not (best / WEIGHTS).is_file():
            best = best.with_name(BEST + ".old")  # killed between the two renames
        if not (best / WEIGHTS).is_file() or read_json(best / "state.json")["step"] != step:
            raise TrainingError(f"the best weights (step {step}) are missing from {self.best_dir()}",
                                "rerun with --overwrite")
        saved = load_file(str(best / WEIGHTS))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t.to(params[n].device))


class EarlyStopMethod(Mitigation):
    """Tracks the best valid loss after each evaluation, stops on patience, puts the best weights back."""

    name = "early-stop"
    section = "early_stop"
    Config = EarlyStopConfig
    summary = "stop when the valid loss stops improving; ``OUT/model`` is the best step"

    @classmethod
    def check_run(cls, cfg) -> None:
        if not cfg.eval_every:
            raise ValueError("mitigation early-stop needs evaluations during training: set eval_every>0")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        path, _ = parse_data_spec(ctx.cfg.data)
        if not (is_corpus_dir(path) and split_files(path, "valid")):
            raise ConfigError("mitigation early-stop needs a valid split in --data",
                              "give a corpus directory (odyssey corpus build) with a valid split")
        self.stopper = EarlyStopper(self.cfg, ctx.cfg.eval_every, ctx.out)

    def after_eval(self, run, results: dict) -> None:
        """Track the best valid loss; save the trained parameters when it improves."""
        acc, state = run.accelerator, run.state
        loss = valid_loss(results)
        if acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            loss = broadcast_object_list([loss])[0]
        if self.stopper.improved(state, loss) and acc.is_main_process:
            self.stopper.save_best(acc.unwrap_model(run.model), state.step, loss)
        acc.wait_for_everyone()

    def should_stop(self, state) -> bool:
        return self.stopper.should_stop(state)

    def best_step(self, state) -> int | None:
        return state.best_step

    def final_weights(self, run, model) -> None:
        state = run.state
        self.stopper.load_best(model, state.best_step)
        self.ctx.info["early_stop"] = {"best_step": state.best_step, "best_valid_loss": state.best_valid_loss,
                                       "stopped_at": state.step if state.step < run.total_steps else None}
