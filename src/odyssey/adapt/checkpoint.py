"""Checkpoints: saving, finding the resume point, restoring exactly.

A run directory holds step checkpoints::

    OUT/checkpoint/step-000100/
        config.json, model.safetensors, tokenizer files   (HF layout: loadable as a model)
        optimizer.pt                                      (AdamW state; tensors only)
        rng-rank0.pt ...                                  (each process's RNG state)
        state.json                                        (step, tokens, metrics so far)

A checkpoint is written into ``step-N.tmp`` and renamed when complete, so a run
killed while saving leaves no half checkpoint that resume could pick. The counters
come from ``state.json``, never from folder names.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from odyssey.io import read_json, write_json

STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainState:
    """Counters restored on resume."""

    step: int = 0  # optimizer steps completed
    tokens: int = 0  # training tokens seen (all processes)
    seconds: float = 0.0  # training wall time so far
    best_valid_loss: float | None = None
    best_step: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def checkpoint_root(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoint"


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Complete step checkpoints, oldest first."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def find_resume_point(out_dir: Path) -> Path | None:
    """The newest complete checkpoint in ``out_dir``, or None."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def save_checkpoint(out_dir: Path, accelerator, model, optimizer, tokenizer, state: TrainState,
                    keep: int) -> Path:
    """Write ``step-N`` atomically (all processes call this; rank 0 writes shared files)."""
    root = checkpoint_root(out_dir)
    final = root / f"step-{state.step:06d}"
    tmp = root / f"step-{state.step:06d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, tmp / f"rng-rank{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / "state.json", state.to_dict())
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_training_state(ckpt: Path, accelerator, optimizer) -> TrainState:
    """Restore optimizer and this process's RNG from ``ckpt``; return the counters.

    The model weights are loaded from ``ckpt`` by the caller (it is an HF model dir).
    """
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
    rng_file = ckpt / f"rng-rank{accelerator.process_index}.pt"
    if rng_file.is_file():
        rng = torch.load(rng_file, weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    fields = TrainState.__dataclass_fields__
    return TrainState(**{k: v for k, v in read_json(ckpt / "state.json").items() if k in fields})


def remove_run(out_dir: Path) -> None:
    """Delete what a previous run wrote into ``out_dir`` (for ``overwrite``)."""
    for name in ("checkpoint", "model", "metrics.jsonl", "config.yaml", "result.json", "evals", "energy.csv"):
        p = Path(out_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
