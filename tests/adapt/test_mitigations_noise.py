"""Noising: the corruption against a naive loop, the loss against per-token cross-entropy,
the draws reproducible from (seed, epoch, block), exact resume."""

import numpy as np
import pytest
import torch
from test_mitigations_config import assert_resume_is_exact, make_cfg

from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.loop import setup
from odyssey.adapt.mitigations.noise import (
    ABSORB,
    DELETE,
    IGNORE,
    KEEP,
    MASK,
    apply_ops,
    draw_ops,
    noise_rows,
)
from odyssey.config import resolve
from odyssey.errors import ConfigError


def naive_apply(block, ops, mask_id):
    """The corruption spelled out: walk the block, open a unit at every kept or masked
    position, let span continuations join the open unit, skip deleted positions; each
    unit's target is the original token after the last position it holds."""
    units = []  # [input token, last original position]
    for t, op in enumerate(ops):
        if op == KEEP:
            units.append([int(block[t]), t])
        elif op == MASK:
            units.append([mask_id, t])
        elif op == ABSORB:  # a span goes on: the mask unit before it holds this position too
            units[-1][1] = t
        # DELETE: nothing to read
    T = len(block)
    inputs = [mask_id] * T
    labels = [IGNORE] * T
    for j, (token, last) in enumerate(units):
        inputs[j] = token
        if last + 1 < T:
            labels[j + 1] = int(block[last + 1])
    return np.array(inputs), np.array(labels)


def random_ops(rng, T):
    """Plans of every kind, mixed: runs of ABSORB only after a MASK (as spans are)."""
    ops = rng.choice([KEEP, MASK, DELETE], size=T, p=[0.6, 0.2, 0.2]).astype(np.int8)
    ops[0] = KEEP
    for t in range(1, T):
        if ops[t - 1] in (MASK, ABSORB) and rng.random() < 0.5:
            ops[t] = ABSORB
    return ops


def test_corruption_equals_the_naive_loop():
    rng = np.random.default_rng(0)
    for T in (2, 3, 8, 33):
        for _ in range(200):
            block = rng.integers(5, 400, T)
            ops = random_ops(rng, T)
            ours = apply_ops(block, ops, mask_id=1)
            ref = naive_apply(block, ops, mask_id=1)
            assert np.array_equal(ours[0], ref[0]) and np.array_equal(ours[1], ref[1]), (block, ops)


@pytest.mark.parametrize("kind", ["mask", "delete", "infill"])
def test_drawn_corruptions_have_the_asked_rate_and_shape(kind):
    rng = np.random.default_rng(1)
    ops = draw_ops(rng, 20_000, kind, rate=0.15, span_mean=3.0)
    assert ops[0] == KEEP
    hidden = np.isin(ops, [MASK, DELETE, ABSORB]).mean()
    if kind == "infill":
        # overlapping spans merge, so slightly under the rate; every run starts with one MASK
        assert 0.11 < hidden < 0.16
        heads = np.flatnonzero(ops == MASK)
        assert np.all(ops[np.flatnonzero(ops == ABSORB) - 1] != KEEP)
        lengths = np.diff(np.append(heads, len(ops)))  # upper bounds of the span lengths
        assert lengths.min() >= 1
    else:
        assert abs(hidden - 0.15) < 0.01
        assert set(np.unique(ops)) == {KEEP, MASK if kind == "mask" else DELETE}


def test_noise_is_a_function_of_seed_epoch_and_block_not_of_the_batch():
    rows = np.random.default_rng(2).integers(5, 400, (6, 64))
    kw = dict(kinds=["mask", "delete", "infill"], rate=0.3, span_mean=3.0, mask_id=1)
    a = noise_rows(rows, seed=0, epoch=0, **kw)
    b = noise_rows(rows, seed=0, epoch=0, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    alone = noise_rows(rows[3:4], seed=0, epoch=0, **kw)  # another batch, same block
    assert np.array_equal(alone[0][0], a[0][3]) and np.array_equal(alone[1][0], a[1][3])
    assert not np.array_equal(noise_rows(rows, seed=0, epoch=1, **kw)[0], a[0])  # new noise each epoch
    assert not np.array_equal(noise_rows(rows, seed=1, epoch=0, **kw)[0], a[0])
    assert np.array_equal(rows, np.random.default_rng(2).integers(5, 400, (6, 64)))  # input untouched


def test_loss_is_the_mean_cross_entropy_of_the_original_next_tokens(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    run = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "n", **{"mitigation.methods": "[noise]",
                                                                            "mitigation.noise.rate": 0.4}))
    run.log.close()
    method = run.mit["noise"]
    from odyssey.adapt.mitigations.base import BatchInfo

    b = BatchInfo(step=0, micro=0, seed=0, rank=0, world_size=1, micro_batch=3, grad_accum=1, n_blocks=len(run.blocks))
    rows = run.blocks[:3]
    inputs = torch.as_tensor(method.transform_batch(rows, b))
    labels = method._labels[0].clone()
    model = run.accelerator.unwrap_model(run.model)
    ours = run.mit.lm_loss(model, inputs, 0).item()
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=inputs).logits.double(), -1)
    total, n = 0.0, 0
    for r in range(inputs.shape[0]):
        for j in range(inputs.shape[1] - 1):
            target = int(labels[r, j + 1])
            if target != IGNORE:
                total -= float(logp[r, j, target])
                n += 1
    assert ours == pytest.approx(total / n, rel=1e-5)
    assert n < rows.size - rows.shape[0]  # deletions made some rows shorter
    assert not torch.equal(inputs, torch.as_tensor(np.array(rows)))
    assert run.mit.info["noise"]["mask_token"] == "<|endoftext|>"  # the tiny BPE's only special token


def test_noise_resumes_exactly(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    result = assert_resume_is_exact(tmp_path, tiny_llama_dir, tiny_corpus_dir, **{"mitigation.methods": "[noise]"})
    assert result.mitigation["noise"]["kinds"] == ["mask", "delete", "infill"]


@pytest.mark.parametrize("extra,message", [
    (["mitigation.methods=[noise,selective]"], "noise and selective both define the LM loss"),
    (["mitigation.noise.rate=0.7"], "rate"),
    (["mitigation.noise.kinds=[shuffle]"], "kinds"),
])
def test_bad_noise_settings_are_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message):
        resolve(AdaptConfig, overrides=["model=m", "data=d", "out=o", *extra])


def test_a_mask_token_of_several_tokens_is_refused(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    with pytest.raises(ConfigError, match="single token"):
        setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "m", **{
            "mitigation.methods": "[noise]", "mitigation.noise.mask_token": "'the river court'"}))
