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

With the ``lora`` mitigation a step checkpoint holds the adapter in peft layout
(``adapter_model.safetensors``, ``adapter_config.json``) instead of the whole model;
with ``early-stop``, ``OUT/checkpoint/best/`` holds the trained parameters of the best
step (see :mod:`odyssey.adapt.mitigations`).
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
    save_optimizer_state(tmp, accelerator, model, optimizer)  # a collective under FSDP/DeepSpeed
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
    load_optimizer_state(ckpt, accelerator, optimizer)
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
    for name in ("checkpoint", "model", "adapter", "metrics.jsonl", "config.yaml", "result.json", "evals",
                 "energy.csv", "normalize.json"):
        p = Path(out_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


# --- optimizer state under sharded engines (FSDP, DeepSpeed ZeRO) -------------------
#
# Without sharding every process holds the whole optimizer state, so rank 0 saves it as
# ``optimizer.pt``. Under FSDP each process holds only its shard, and under DeepSpeed
# ZeRO the fp32 master weights live in the sharded optimizer too, so:
#
# - FSDP (1 or 2): the full optimizer state, gathered by torch.distributed.checkpoint
#   (``get_optimizer_state_dict(full_state_dict=True)``), keyed by parameter names, is
#   written by rank 0 as ``optimizer-full.pt`` and scattered back on resume by
#   ``set_optimizer_state_dict`` (broadcast from rank 0). Keyed by names, it resumes at
#   any number of processes, FSDP or not. The weights are in the HF model files already
#   (``accelerator.get_state_dict`` gathers them), in full precision: FSDP keeps fp32
#   parameters and casts only for compute.
# - DeepSpeed: the engine's own checkpoint (``engine.save_checkpoint``: each rank's
#   partition of the fp32 master weights and optimizer state) in ``deepspeed/``, loaded
#   by ``engine.load_checkpoint`` on resume at the same number of processes.

FULL_OPTIMIZER_FILE = "optimizer-full.pt"
DEEPSPEED_DIR = "deepspeed"


def sharding_engine(accelerator, model=None) -> str | None:
    """``"fsdp"``, ``"deepspeed"`` or None (every process holds the whole optimizer state)."""
    from accelerate.utils import DistributedType

    kind = getattr(accelerator, "distributed_type", None)
    if kind == DistributedType.DEEPSPEED:
        return "deepspeed"
    if kind == DistributedType.FSDP or (model is not None and _is_fsdp(model)):
        return "fsdp"
    return None


def _is_fsdp(model) -> bool:
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    return any(isinstance(m, (FSDPModule, FullyShardedDataParallel)) for m in model.modules())


def _prepared_model(accelerator):
    """The model ``accelerator.prepare`` wrapped (accelerate keeps it in ``_models``)."""
    models = getattr(accelerator, "_models", None) or [None]
    return models[0]


def _inner(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it


def save_optimizer_state(ckpt_dir: Path, accelerator, model, optimizer) -> None:
    """Write the optimizer state into ``ckpt_dir`` (every process calls this: it may be a collective)."""
    engine = sharding_engine(accelerator, model)
    if engine == "fsdp":
        from torch.distributed.checkpoint import state_dict as dcp

        full = dcp.get_optimizer_state_dict(model, _inner(optimizer),
                                            options=dcp.StateDictOptions(full_state_dict=True, cpu_offload=True))
        if accelerator.is_main_process:
            torch.save(full, Path(ckpt_dir) / FULL_OPTIMIZER_FILE)
    elif engine == "deepspeed":
        model.save_checkpoint(str(Path(ckpt_dir) / DEEPSPEED_DIR), tag="state")
    elif accelerator.is_main_process:
        torch.save(optimizer.state_dict(), Path(ckpt_dir) / "optimizer.pt")


def load_optimizer_state(ckpt: Path, accelerator, optimizer, model=None) -> None:
    """Restore what :func:`save_optimizer_state` wrote (every process calls this)."""
    model = model if model is not None else _prepared_model(accelerator)
    ckpt = Path(ckpt)
    if (ckpt / DEEPSPEED_DIR).is_dir() and sharding_engine(accelerator, model) == "deepspeed":
        model.load_checkpoint(str(ckpt / DEEPSPEED_DIR), tag="state", load_optimizer_states=True,
                              load_lr_scheduler_states=False)
    elif (ckpt / FULL_OPTIMIZER_FILE).is_file():
        from torch.distributed.checkpoint import state_dict as dcp

        sharded = sharding_engine(accelerator, model) == "fsdp"
        # Sharded: rank 0 reads the file and broadcasts; unsharded, every process reads it.
        full = (torch.load(ckpt / FULL_OPTIMIZER_FILE, map_location="cpu", weights_only=True)
                if accelerator.is_main_process or not sharded else {})
        dcp.set_optimizer_state_dict(model, _inner(optimizer), full,
                                     options=dcp.StateDictOptions(full_state_dict=True, broadcast_from_rank0=sharded))
    else:
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
