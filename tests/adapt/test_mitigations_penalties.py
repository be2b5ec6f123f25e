"""L2-SP and EWC: penalty gradients and the Fisher against independent computations."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_mitigations_config import assert_resume_is_exact, make_cfg

from odyssey.adapt.loop import setup
from odyssey.adapt.mitigations.ewc import empirical_fisher, sample_blocks
from odyssey.blocks import pack_documents
from odyssey.corpora.store import load_documents
from odyssey.models import load_model


def base_weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def perturb(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn(p.shape, generator=g))


def test_l2sp_penalty_gradient_is_2_alpha_times_the_distance(tmp_path, tiny_model_dir, tiny_corpus_dir):
    alpha = 0.3
    run = setup(make_cfg(tiny_model_dir, tiny_corpus_dir, tmp_path / "r",
                         **{"mitigation.methods": "[l2sp]", "mitigation.l2sp.alpha": alpha}))
    run.log.close()
    model = run.accelerator.unwrap_model(run.model)
    perturb(model)
    penalty = run.mit.penalty(model)
    penalty.backward()
    base = base_weights(tiny_model_dir)  # read from disk: independent of the run's anchor copy
    expected_value = 0.0
    for name, p in model.named_parameters():
        diff = p.detach() - base[name]
        expected_value += float((diff.double() ** 2).sum())
        torch.testing.assert_close(p.grad, 2 * alpha * diff, rtol=1e-5, atol=1e-9)
    assert penalty.item() == pytest.approx(alpha * expected_value, rel=1e-5)


def naive_fisher(model_dir, blocks):
    """Mean over blocks of the squared gradient of each block's loss, one backward per block."""
    model = load_model(model_dir)
    sums = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for row in blocks:
        model.zero_grad()
        ids = torch.as_tensor(row, dtype=torch.long)[None]
        model(input_ids=ids, labels=ids).loss.backward()
        for n, p in model.named_parameters():
            sums[n] += p.grad ** 2
    return {n: s / len(blocks) for n, s in sums.items()}


def test_ewc_fisher_matches_a_per_sample_loop_and_the_penalty_gradient(tmp_path, tiny_model_dir, tiny_corpus_dir,
                                                                       general_corpus_dir):
    alpha, samples = 50.0, 5
    run = setup(make_cfg(tiny_model_dir, tiny_corpus_dir, tmp_path / "r", general=general_corpus_dir,
                         **{"mitigation.methods": "[ewc]", "mitigation.ewc.alpha": alpha,
                            "mitigation.ewc.samples": samples}))
    run.log.close()
    general = pack_documents(load_documents(f"{general_corpus_dir}:train"), run.tokenizer, 32)
    chosen = sample_blocks(general, samples, seed=0)
    assert len(chosen) == samples and len({tuple(r) for r in chosen}) == samples
    expected = naive_fisher(tiny_model_dir, chosen)
    assert run.mit["ewc"].fisher.keys() == expected.keys()
    for n, f in expected.items():
        torch.testing.assert_close(run.mit["ewc"].fisher[n], f, rtol=1e-4, atol=1e-10)
    assert any(float(f.max()) > 0 for f in expected.values())

    model = run.accelerator.unwrap_model(run.model)
    perturb(model, seed=1)
    run.mit.penalty(model).backward()
    base = base_weights(tiny_model_dir)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 2 * alpha * expected[name] * (p.detach() - base[name]),
                                   rtol=1e-4, atol=1e-10)


def test_fisher_chunks_agree(tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    blocks = np.random.default_rng(0).integers(0, 300, size=(5, 16))
    names = [n for n, _ in model.named_parameters()]
    one = empirical_fisher(model, blocks, names, chunk=1)
    all_ = empirical_fisher(model, blocks, names, chunk=5)
    for n in names:
        torch.testing.assert_close(one[n], all_[n], rtol=1e-5, atol=1e-12)


def test_penalized_run_resumes_exactly_and_stays_closer_to_the_base(tmp_path, tiny_llama_dir, tiny_corpus_dir,
                                                                   general_corpus_dir):
    # The anchor must be the base model on resume too, not the checkpoint the run resumes from.
    over = {"general": general_corpus_dir, "mitigation.methods": "[l2sp,ewc]", "mitigation.l2sp.alpha": 1.0,
            "mitigation.ewc.samples": 4}
    assert_resume_is_exact(tmp_path, tiny_llama_dir, tiny_corpus_dir, **over)
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    penalties = [r["penalty"] for r in rows if r["kind"] == "train"]
    assert len(penalties) == 6 and penalties[-1] > penalties[0] >= 0  # the weights drift from the base
    from odyssey.adapt.loop import adapt

    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "plain"), progress=False)
    base = base_weights(tiny_llama_dir)

    def distance(run_dir):
        w = load_file(str(run_dir / "model" / "model.safetensors"))
        return sum(float(((w[k] - base[k]) ** 2).sum()) for k in base if k in w)

    assert distance(tmp_path / "full") < distance(tmp_path / "plain")
