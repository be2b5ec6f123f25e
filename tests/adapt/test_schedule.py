import math

import numpy as np
import pytest

from odyssey.adapt.schedule import block_indices, lr_at, steps_for


def test_warmup_then_cosine_to_floor():
    kw = dict(base_lr=1.0, total_steps=11, warmup_steps=1, kind="cosine", min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(1.0)
    assert lr_at(1, **kw) == pytest.approx(1.0)  # first step after warmup is the peak
    assert lr_at(6, **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 9)))  # (6-1)/(11-1-1)
    assert lr_at(10, **kw) == pytest.approx(0.1)
    assert lr_at(50, **kw) == pytest.approx(0.1)


def test_linear_and_constant():
    assert lr_at(5, base_lr=2.0, total_steps=11, warmup_steps=0, kind="linear", min_lr_ratio=0.0) == pytest.approx(1.0)
    assert lr_at(7, base_lr=2.0, total_steps=11, warmup_steps=4, kind="constant", min_lr_ratio=0.0) == 2.0
    assert lr_at(1, base_lr=2.0, total_steps=11, warmup_steps=4, kind="constant", min_lr_ratio=0.0) == 1.0


def test_one_epoch_covers_every_block_once():
    n, bs, accum, world = 23, 3, 2, 1
    steps = steps_for(1.0, n, bs * accum * world)
    seen = [i for s in range(steps) for m in range(accum)
            for i in block_indices(s, m, rank=0, world_size=world, micro_batch=bs, grad_accum=accum, n_blocks=n, seed=5)]
    assert sorted(seen[:n]) == list(range(n))  # the first n positions are one permutation
    assert len(seen) == steps * bs * accum >= n


def test_two_processes_see_the_single_process_batch():
    kw = dict(grad_accum=1, n_blocks=40, seed=3)
    for step in range(5):
        single = block_indices(step, 0, rank=0, world_size=1, micro_batch=8, **kw)
        split = np.concatenate([block_indices(step, 0, rank=r, world_size=2, micro_batch=4, **kw) for r in range(2)])
        assert np.array_equal(single, split)


def test_seed_changes_order():
    a = block_indices(0, 0, rank=0, world_size=1, micro_batch=10, grad_accum=1, n_blocks=10, seed=0)
    b = block_indices(0, 0, rank=0, world_size=1, micro_batch=10, grad_accum=1, n_blocks=10, seed=1)
    assert sorted(a) == sorted(b) == list(range(10)) and not np.array_equal(a, b)
