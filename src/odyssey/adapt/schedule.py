"""Learning-rate schedule and data order: pure functions of the step, so that a
resumed run needs no scheduler or sampler state to continue exactly."""

from __future__ import annotations

import math

import numpy as np


def lr_at(step: int, *, base_lr: float, total_steps: int, warmup_steps: int, kind: str,
          min_lr_ratio: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    1. warmup: linear from base_lr/warmup up to base_lr over ``warmup_steps``;
    2. decay: cosine or linear from base_lr down to ``min_lr_ratio * base_lr`` at the
       last step, or constant;
    3. past ``total_steps`` the floor holds.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if kind == "constant":
        return base_lr
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / span)
    floor = min_lr_ratio * base_lr
    if kind == "linear":
        return floor + (base_lr - floor) * (1.0 - progress)
    if kind == "cosine":
        return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}")


def block_indices(step: int, micro: int, *, rank: int, world_size: int, micro_batch: int,
                  grad_accum: int, n_blocks: int, seed: int) -> np.ndarray:
    """Which blocks micro-batch ``micro`` of optimizer step ``step`` gives to ``rank``.

    The blocks form an endless stream of epochs, each a fresh seeded permutation.
    One optimizer step consumes ``micro_batch * world_size * grad_accum`` consecutive
    positions of that stream; micro-batch ``micro`` of rank ``rank`` takes its slice.
    So one process with batch 2B sees the same blocks per step as two with batch B.
    """
    global_batch = micro_batch * world_size * grad_accum
    start = step * global_batch + (micro * world_size + rank) * micro_batch
    positions = np.arange(start, start + micro_batch)
    epochs, within = np.divmod(positions, n_blocks)
    out = np.empty(micro_batch, dtype=np.int64)
    for epoch in np.unique(epochs):
        perm = np.random.default_rng([seed, int(epoch)]).permutation(n_blocks)
        mask = epochs == epoch
        out[mask] = perm[within[mask]]
    return out


def steps_for(epochs: float, n_blocks: int, global_batch: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``n_blocks`` (at least one)."""
    return max(1, math.ceil(epochs * n_blocks / global_batch))
