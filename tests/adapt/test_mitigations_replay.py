"""Replay: the realized share of general tokens, purity in (seed, step, slot), exact resume."""

import numpy as np
import pytest
from test_mitigations_config import assert_resume_is_exact, make_cfg

from odyssey.adapt.mitigations.replay import Replay, stream_blocks
from odyssey.adapt.schedule import block_indices


def fake_blocks(n, length, offset):
    # Row i holds offset + i everywhere, so a row tells which corpus and block it came from.
    return (np.arange(n)[:, None] + offset).repeat(length, axis=1)


@pytest.mark.parametrize("ratio,batch,accum", [(0.25, 4, 1), (0.1, 3, 2), (0.5, 8, 1), (0.37, 5, 3)])
def test_realized_token_share_matches_the_asked_ratio(ratio, batch, accum):
    domain, general = fake_blocks(37, 4, 0), fake_blocks(23, 4, 1000)
    replay = Replay(domain, general, ratio, seed=3)
    general_tokens = all_tokens = 0
    for step in range(300):
        for micro in range(accum):
            rows, is_general = replay.rows(step, micro, rank=0, world_size=1, micro_batch=batch, grad_accum=accum)
            assert np.array_equal(rows[:, 0] >= 1000, is_general)  # the mask tells the truth
            general_tokens += int((rows >= 1000).sum())
            all_tokens += rows.size
    slots = 300 * batch * accum
    # Counted independently from the rows: within one block of the asked share.
    assert abs(general_tokens / all_tokens - ratio) <= 1 / slots + 1e-12


def test_blocks_are_a_pure_function_of_the_step_and_split_like_processes():
    domain, general = fake_blocks(11, 2, 0), fake_blocks(7, 2, 1000)
    replay = Replay(domain, general, 0.3, seed=5)
    one = [replay.rows(s, 0, rank=0, world_size=1, micro_batch=4, grad_accum=1)[0] for s in range(20)]
    two = [np.concatenate([Replay(domain, general, 0.3, seed=5).rows(s, 0, rank=r, world_size=2, micro_batch=2,
                                                                       grad_accum=1)[0] for r in (0, 1)])
           for s in range(20)]
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a, b)
    # Each stream walks through whole epochs: every domain block once per 11 domain slots.
    seen = np.concatenate([r[:, 0] for r in one])
    dom = seen[seen < 1000]
    assert sorted(dom[:11]) == list(range(11))
    assert sorted(seen[seen >= 1000][:7] - 1000) == list(range(7))


def test_domain_stream_is_the_plain_loop_order():
    positions = np.arange(0, 50)
    ours = stream_blocks(positions, 13, seed=2)
    plain = np.concatenate([block_indices(p, 0, rank=0, world_size=1, micro_batch=1, grad_accum=1, n_blocks=13, seed=2)
                            for p in positions])
    assert np.array_equal(ours, plain)


def test_replay_run_resumes_exactly_and_counts_epochs_over_the_domain(tmp_path, tiny_llama_dir, tiny_corpus_dir,
                                                                      general_corpus_dir):
    common = dict(general=general_corpus_dir, **{"mitigation.methods": "[replay]", "mitigation.replay.ratio": 0.5})
    result = assert_resume_is_exact(tmp_path, tiny_llama_dir, tiny_corpus_dir, **common)
    assert result.mitigation["replay"]["general_blocks"] > 0
    # One epoch over the domain at ratio 0.5 takes twice the steps of a plain epoch (4 blocks a step).
    from odyssey.adapt.loop import setup

    plain = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "p", **{"train.max_steps": None}))
    mixed = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "m", **{"train.max_steps": None}, **common))
    plain.log.close()
    mixed.log.close()
    n = len(plain.blocks)
    assert (plain.total_steps, mixed.total_steps) == (-(-n // 4), -(-n // 2))
