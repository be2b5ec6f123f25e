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

import torch

from odyssey.adapt.checkpoint import checkpoint_root
from odyssey.adapt.mitigations.config import EarlyStopConfig
from odyssey.errors import TrainingError
from odyssey.io import read_json, write_json

BEST = "best"
WEIGHTS = "trained.safetensors"


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
