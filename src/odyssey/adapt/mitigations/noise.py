"""Noising: the training blocks corrupted anew each epoch, the original text kept as the target.

Each training block (domain or replayed) gets one corruption, drawn per block from ``kinds``
(as in BART's denoising objectives, Lewis et al. 2020):

- ``mask``: each token after the first becomes the mask token with probability ``rate``;
- ``delete``: each token after the first is removed with probability ``rate``;
- ``infill``: spans start at each position after the first with probability
  ``rate / span_mean``, with lengths ``1 + Poisson(span_mean - 1)`` (overlaps merge), and each
  span becomes one mask token (text infilling), so about ``rate`` of the tokens are hidden.

The model reads the corrupted block and is trained to predict the *original* text: every
input token stands for a run of original positions (itself; a span for an infilled mask), and
its target is the original token right after that run. A deleted token is not read, but it
is still predicted (as the target of the token before it), so the model must notice what is
missing. A block that got shorter is padded with the mask token, padding targets ignored
(causal attention: padding at the end changes nothing before it). Valid and test text are
never noised.

Which corruption a block gets is drawn from ``(seed, epoch, hash of the block's tokens)``: a
pure function of the block and the pass over the data, so a resumed run, another batch size
or another number of processes sees the same noise, and each epoch sees new noise.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from odyssey.adapt.mitigations.base import BatchInfo, Mitigation, TrainingData
from odyssey.config import StageConfig
from odyssey.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch

KEEP, MASK, DELETE, ABSORB = 0, 1, 2, 3  # what happens to each position of a block
IGNORE = -100  # the label the HF losses skip
NOISE_STREAM = 0x9015E  # keeps noise draws apart from the data order's


class NoiseConfig(StageConfig):
    kinds: list[Literal["mask", "delete", "infill"]] = Field(
        default_factory=lambda: ["mask", "delete", "infill"], min_length=1,
        description="corruptions to draw from, one per block: mask (tokens replaced by the mask token), "
                    "delete (tokens removed), infill (spans replaced by one mask token each)")
    rate: float = Field(0.15, gt=0, le=0.5, description="share of a block's tokens corrupted")
    span_mean: float = Field(3.0, ge=1, description="infill: mean span length (1 + Poisson(span_mean - 1))")
    mask_token: str | None = Field(None, description=(
        "text of the single token that marks a masked token or span (default: the tokenizer's mask token, "
        "else its unknown token, else its end-of-text token)"))

    @field_validator("kinds")
    @classmethod
    def _once(cls, v):
        return list(dict.fromkeys(v))


# -- the corruption, as pure functions ----------------------------------------------------
def block_rng(block: np.ndarray, seed: int, epoch: int) -> np.random.Generator:
    """The generator of one block's noise: a function of its tokens, the seed and the epoch."""
    import numpy as np

    digest = hashlib.blake2b(np.ascontiguousarray(block, dtype="<i8").tobytes(), digest_size=16).digest()
    return np.random.default_rng([seed, NOISE_STREAM, epoch, *np.frombuffer(digest, dtype="<u4").tolist()])


def draw_ops(rng: np.random.Generator, length: int, kind: str, rate: float, span_mean: float) -> np.ndarray:
    """What happens to each position (KEEP, MASK, DELETE or ABSORB into the preceding MASK);
    the first position is always kept, so every block keeps a target."""
    import numpy as np

    ops = np.full(length, KEEP, dtype=np.int8)
    if kind in ("mask", "delete"):
        hit = rng.random(length) < rate
        hit[0] = False
        ops[hit] = MASK if kind == "mask" else DELETE
        return ops
    starts = np.flatnonzero(rng.random(length) < rate / span_mean)
    starts = starts[starts > 0]
    ends = np.minimum(starts + 1 + rng.poisson(span_mean - 1, len(starts)), length)
    depth = np.zeros(length + 1, dtype=np.int64)  # spans covering each position, by a difference array
    np.add.at(depth, starts, 1)
    np.add.at(depth, ends, -1)
    covered = np.cumsum(depth[:length]) > 0
    head = covered & ~np.concatenate([[False], covered[:-1]])
    ops[covered] = ABSORB
    ops[head] = MASK
    return ops


def apply_ops(block: np.ndarray, ops: np.ndarray, mask_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The corrupted block and its labels, both of the block's length ``T``, in the HF
    convention (``labels[j]`` is predicted from ``inputs[:j]``).

    Input ``j`` is the ``j``-th surviving position (a run head that is not deleted; a masked
    one shows ``mask_id``); it stands for itself and the ABSORB positions after it, and its
    target ``labels[j + 1]`` is the original token after that run.
    """
    import numpy as np

    T = len(block)
    heads = np.flatnonzero(ops != ABSORB)
    last = np.append(heads[1:], T) - 1  # the last original position each head stands for
    kept = ops[heads] != DELETE
    heads, last = heads[kept], last[kept]
    n = len(heads)
    inputs = np.full(T, mask_id, dtype=np.int64)  # the tail past n is padding
    inputs[:n] = np.where(ops[heads] == MASK, mask_id, block[heads])
    labels = np.full(T, IGNORE, dtype=np.int64)
    has_next = last + 1 < T
    labels[np.flatnonzero(has_next) + 1] = block[last[has_next] + 1]
    return inputs, labels


def noise_rows(rows: np.ndarray, *, seed: int, epoch: int, kinds: list[str], rate: float, span_mean: float,
               mask_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Corrupted inputs and original-text labels ``(n, T)`` of the blocks ``rows`` ``(n, T)``."""
    import numpy as np

    inputs, labels = np.empty(rows.shape, np.int64), np.empty(rows.shape, np.int64)
    for i, block in enumerate(np.asarray(rows, dtype=np.int64)):
        rng = block_rng(block, seed, epoch)
        kind = kinds[int(rng.integers(len(kinds)))]
        inputs[i], labels[i] = apply_ops(block, draw_ops(rng, len(block), kind, rate, span_mean), mask_id)
    return inputs, labels


def mask_token_id(tokenizer, text: str | None) -> int:
    """The id that marks masked tokens and spans (see ``NoiseConfig.mask_token``)."""
    if text is not None:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"mitigation.noise.mask_token={text!r} is {len(ids)} tokens for this tokenizer",
                              "give text that is a single token (a special token, or a rare word piece)")
        return int(ids[0])
    for name in ("mask_token_id", "unk_token_id", "eos_token_id"):
        found = getattr(tokenizer, name, None)
        if found is not None:
            return int(found)
    raise ConfigError("the tokenizer has no mask, unknown or end-of-text token to mark noised text",
                      "set mitigation.noise.mask_token to text that is a single token")


class NoiseMethod(Mitigation):
    """Corrupts each micro-batch's blocks (``transform_batch``) and trains them against the
    original text (``lm_loss``)."""

    name = section = "noise"
    Config = NoiseConfig
    summary = "blocks masked, thinned or span-infilled anew each epoch; the original text is the target"

    @classmethod
    def check_methods(cls, m) -> None:
        if "selective" in m.methods:
            raise ValueError("noise and selective both define the LM loss: combine at most one of them")

    def build(self, data: TrainingData) -> None:
        self.mask_id = mask_token_id(data.tokenizer, self.cfg.mask_token)
        self._labels: dict[int, torch.Tensor] = {}  # micro -> labels of the batch just made
        self.ctx.info["noise"] = {"kinds": list(self.cfg.kinds), "rate": self.cfg.rate,
                                  "span_mean": self.cfg.span_mean, "mask_token_id": self.mask_id,
                                  "mask_token": data.tokenizer.convert_ids_to_tokens(self.mask_id)}

    def transform_batch(self, rows: np.ndarray, b: BatchInfo) -> np.ndarray:
        import torch

        c = self.cfg
        inputs, labels = noise_rows(rows, seed=b.seed, epoch=b.epoch, kinds=c.kinds, rate=c.rate,
                                    span_mean=c.span_mean, mask_id=self.mask_id)
        # The loop makes every micro-batch of a step, then asks for their losses: keep the
        # labels until then.
        self._labels[b.micro] = torch.from_numpy(labels)
        return inputs

    def lm_loss(self, model, batch: torch.Tensor, micro: int | None) -> torch.Tensor:
        labels = self._labels.pop(micro, None) if micro is not None else None
        if labels is None:  # a batch the hook did not make (no step): the plain loss
            return model(input_ids=batch, labels=batch).loss
        if labels.shape != batch.shape:
            raise RuntimeError(f"noise: labels {tuple(labels.shape)} do not match the batch {tuple(batch.shape)}")
        return model(input_ids=batch, labels=labels.to(batch.device)).loss
