"""Replay: mix general text into the training stream at a fixed share of tokens.

Both corpora are packed into blocks of the same size, so a share of tokens is a
share of blocks. Each optimizer step has ``G`` slots (``micro_batch * world_size *
grad_accum`` blocks). Steps ``0..s-1`` together give ``floor(s * G * ratio)`` slots
to general blocks (a Bresenham count, so the realized share is never further than
one block from the asked one); which slots of step ``s`` they are is a seeded
permutation of ``(seed, s)``. Domain and general blocks each come from their own
endless stream of seeded epochs, and the position in each stream is a closed-form
count of the slots before. Everything is a pure function of ``(seed, step, slot)``,
so a resumed run sees the same blocks, and one process with batch 2B sees the same
blocks as two with batch B.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from odyssey.adapt.mitigations.base import BatchInfo, Mitigation, TrainingData
from odyssey.config import StageConfig

if TYPE_CHECKING:
    import numpy as np

GENERAL_STREAM = 1  # seeds the general stream's epochs apart from the domain's


def stream_blocks(positions: np.ndarray, n_blocks: int, seed: int, stream: int | None = None) -> np.ndarray:
    """Block index at each position of an endless stream of seeded epochs.

    The domain stream (``stream=None``) is exactly the order of
    :func:`odyssey.adapt.schedule.block_indices`.
    """
    import numpy as np

    positions = np.asarray(positions, dtype=np.int64)
    epochs, within = np.divmod(positions, n_blocks)
    out = np.empty(len(positions), dtype=np.int64)
    for epoch in np.unique(epochs):
        key = [seed, int(epoch)] if stream is None else [seed, int(epoch), stream]
        perm = np.random.default_rng(key).permutation(n_blocks)
        mask = epochs == epoch
        out[mask] = perm[within[mask]]
    return out


class Replay:
    """Which blocks each micro-batch trains on, domain and general mixed."""

    def __init__(self, domain: np.ndarray, general: np.ndarray, ratio: float, seed: int):
        if domain.shape[1] != general.shape[1]:  # both are packed at the run's block size
            raise ValueError("domain and general blocks must have the same length")
        self.domain, self.general, self.ratio, self.seed = domain, general, ratio, seed

    def general_before(self, step: int, slots: int) -> int:
        """General slots in steps ``0..step-1``."""
        # Exact rational arithmetic would be safer for huge step counts; float is exact
        # far beyond any run (step * slots < 2**52).
        return math.floor(step * slots * self.ratio)

    def step_mask(self, step: int, slots: int) -> np.ndarray:
        """Boolean mask over the ``slots`` of ``step``: True where a general block goes."""
        import numpy as np

        k = self.general_before(step + 1, slots) - self.general_before(step, slots)
        order = np.random.default_rng([self.seed, step, 0x5E91A7]).permutation(slots)
        mask = np.zeros(slots, dtype=bool)
        mask[order[:k]] = True
        return mask

    def rows(self, step: int, micro: int, *, rank: int, world_size: int, micro_batch: int,
             grad_accum: int) -> tuple[np.ndarray, np.ndarray]:
        """Token blocks ``(micro_batch, block)`` of this micro-batch and which rows are general."""
        import numpy as np

        slots = micro_batch * world_size * grad_accum
        mask = self.step_mask(step, slots)
        general_start = self.general_before(step, slots)
        domain_start = step * slots - general_start
        # Position of each slot in its own stream: the count of same-kind slots before it.
        gen_pos = general_start + np.cumsum(mask) - 1
        dom_pos = domain_start + np.cumsum(~mask) - 1
        first = (micro * world_size + rank) * micro_batch
        mine = slice(first, first + micro_batch)
        is_general = mask[mine]
        gen_idx = stream_blocks(gen_pos[mine][is_general], len(self.general), self.seed, GENERAL_STREAM)
        dom_idx = stream_blocks(dom_pos[mine][~is_general], len(self.domain), self.seed)
        out = np.empty((micro_batch, self.domain.shape[1]), dtype=np.int64)
        out[is_general] = self.general[gen_idx]
        out[~is_general] = self.domain[dom_idx]
        return out, is_general


class ReplayConfig(StageConfig):
    ratio: float = Field(0.25, gt=0, lt=1, description=(
        "share of training tokens drawn from general data (blocks have one size, so also the share of "
        "blocks); `epochs` still counts passes over the domain, so a run takes 1/(1-ratio) times the steps"))
    data: str | None = Field(None, description="general text to replay (default: the train split of `general`)")


class ReplayMethod(Mitigation):
    """Supplies each micro-batch's blocks, general ones mixed in (:class:`Replay`)."""

    name = section = "replay"
    Config = ReplayConfig
    summary = "general text mixed into the training stream at a share of tokens"
    needs_general = True

    def domain_share(self) -> float:
        return 1.0 - self.cfg.ratio

    def build(self, data: TrainingData) -> None:
        general = data.general_blocks(self.ctx, self.cfg.data)
        self.replay = Replay(data.blocks, general, self.cfg.ratio, self.ctx.seed)
        self.ctx.info["replay"] = {"general_blocks": len(general), "ratio": self.cfg.ratio}

    def rows(self, b: BatchInfo) -> np.ndarray:
        rows, _ = self.replay.rows(b.step, b.micro, rank=b.rank, world_size=b.world_size,
                                   micro_batch=b.micro_batch, grad_accum=b.grad_accum)
        return rows
