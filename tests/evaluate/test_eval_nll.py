"""Perplexity equals an independent, naive computation on both tiny architectures.

The naive side takes its windows from lm-evaluation-harness, runs one plain forward
pass per window and one ``torch.log_softmax`` per scored position in a Python loop.
"""

import math

import numpy as np
import pytest
import torch
from lm_eval.utils import get_rolling_token_windows

from helpers import make_documents
from odyssey.evaluate import EvalConfig, evaluate_documents
from odyssey.evaluate.nll import token_nlls
from odyssey.models import load_model, load_tokenizer

CASES = [(16, 1), (16, 8), (16, 16), (33, 1), (33, 16), (33, 33), (128, 1), (128, 64), (128, 128)]
_models: dict = {}
_naive_cache: dict = {}


def _load(model_dir):
    key = str(model_dir)
    if key not in _models:
        _models[key] = (load_model(model_dir), load_tokenizer(model_dir))
    return _models[key]


def _docs(tok) -> list[dict]:
    """Varied lengths: empty, one token, short, and longer than every window."""
    one = next(w for w in ("the", "a", "of") if len(tok(w, add_special_tokens=False).input_ids) == 1)
    short, mid, long = make_documents(3, seed=3, min_words=10, max_words=120)
    texts = ["", one, "The river.", short, mid, long + "\n\n" + mid]
    lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
    assert lengths[:2] == [0, 1] and max(lengths) > 128
    return [{"text": t, "id": f"n{i}"} for i, t in enumerate(texts)]


def naive_nlls(model, tok, texts, L, S) -> list[list[float]]:
    """One document, one window, one position at a time."""
    out = []
    for text in texts:
        ids = tok(text, add_special_tokens=False).input_ids
        nlls = []
        for inp, pred in get_rolling_token_windows(ids, prefix_token=tok.eos_token_id, max_seq_len=L,
                                                   context_len=L - S + 1):
            with torch.no_grad():
                logits = model(torch.tensor([inp])).logits[0]
            first = len(inp) - len(pred)
            for k, target in enumerate(pred):
                nlls.append(-torch.log_softmax(logits[first + k].float(), dim=-1)[target].item())
        assert len(nlls) == len(ids)
        out.append(nlls)
    return out


def _naive(model_dir, L, S):
    key = (str(model_dir), L, S)
    if key not in _naive_cache:
        model, tok = _load(model_dir)
        _naive_cache[key] = naive_nlls(model, tok, [d["text"] for d in _docs(tok)], L, S)
    return _naive_cache[key]


@pytest.mark.parametrize(("L", "S"), CASES)
def test_perplexity_equals_naive(tiny_model_dir, L, S):
    model, tok = _load(tiny_model_dir)
    docs = _docs(tok)
    naive = _naive(tiny_model_dir, L, S)
    naive_sum = sum(sum(x) for x in naive)
    naive_tokens = sum(len(x) for x in naive)
    naive_ppl = math.exp(naive_sum / naive_tokens)
    for batch_size in (1, 3, 8):
        r = evaluate_documents(model, tok, docs, EvalConfig(context_length=L, stride=S,
                                                           batch_size=batch_size, progress=False))
        assert (r.context_length, r.stride, r.tokens) == (L, S, naive_tokens)
        assert r.perplexity == pytest.approx(naive_ppl, rel=1e-5)
        assert r.nll_sum == pytest.approx(naive_sum, rel=1e-5)
        for got, want in zip(r.nll, naive, strict=True):
            np.testing.assert_allclose(got, np.asarray(want, dtype=np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("L", "S"), [(16, 8), (33, 33)])
def test_full_forward_path_equals_naive(tiny_model_dir, L, S):
    """The fallback for models whose head cannot be split off gives the same numbers."""
    model, tok = _load(tiny_model_dir)
    ids = [np.asarray(tok(d["text"], add_special_tokens=False).input_ids) for d in _docs(tok)]
    got = token_nlls(model, ids, prefix_id=tok.eos_token_id, context_length=L, stride=S, batch_size=3,
                     split_head=False)
    for g, want in zip(got, _naive(tiny_model_dir, L, S), strict=True):
        np.testing.assert_allclose(g, np.asarray(want, dtype=np.float32), rtol=1e-4, atol=1e-4)


def test_model_mode_restored_and_bf16_autocast(tiny_llama_dir):
    model, tok = _load(tiny_llama_dir)
    docs = _docs(tok)
    model.train()
    fp32 = evaluate_documents(model, tok, docs, EvalConfig(context_length=33, progress=False))
    assert model.training
    model.eval()
    bf16 = evaluate_documents(model, tok, docs, EvalConfig(context_length=33, dtype="bfloat16",
                                                          progress=False))
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32  # autocast, not a cast of the model
    assert bf16.perplexity == pytest.approx(fp32.perplexity, rel=2e-2)
    assert all(x.dtype == np.float32 for x in bf16.nll)


def test_peft_lora_model_matches_its_full_forward(tiny_llama_dir):
    """The adapt stage may hand over a LoRA-wrapped model (head included)."""
    from peft import LoraConfig, get_peft_model

    model = load_model(tiny_llama_dir)
    tok = load_tokenizer(tiny_llama_dir)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "lm_head"],
                                            init_lora_weights=False))
    ids = [np.asarray(tok(d["text"], add_special_tokens=False).input_ids) for d in _docs(tok)]
    kw = dict(prefix_id=tok.eos_token_id, context_length=33, stride=16, batch_size=3)
    fast, full = token_nlls(lora, ids, **kw), token_nlls(lora, ids, split_head=False, **kw)
    base = token_nlls(load_model(tiny_llama_dir), ids, **kw)
    assert not np.allclose(np.concatenate(fast), np.concatenate(base))  # LoRA changed the model
    for a, b in zip(fast, full, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_body_and_head_split_is_taken(tiny_model_dir):
    """So that the naive comparison above checks the fast path, not the fallback."""
    from odyssey.evaluate.nll import _Scorer

    model, tok = _load(tiny_model_dir)
    model.eval()
    scorer = _Scorer(model, torch.device("cpu"), split_head=True)
    with torch.inference_mode():
        scorer.check_split(torch.tensor([[tok.eos_token_id, 5, 6, 7]]))
    assert scorer.head is not None and scorer.vocab == model.get_output_embeddings().out_features


@pytest.mark.parametrize("use_numpy", [True, False])
def test_cpu_head_gemm_routes_equal_naive(tiny_model_dir, monkeypatch, use_numpy):
    """Whichever GEMM the CPU head runs on (numpy's OpenBLAS or torch's), the numbers
    are the naive ones."""
    from odyssey.evaluate import nll as nll_mod

    def wrap(head, device, total_rows):
        wrapped = nll_mod._CpuHead(head)
        wrapped.use_numpy = use_numpy
        return wrapped

    monkeypatch.setattr(nll_mod._CpuHead, "wrap", staticmethod(wrap))
    model, tok = _load(tiny_model_dir)
    ids = [np.asarray(tok(d["text"], add_special_tokens=False).input_ids) for d in _docs(tok)]
    got = token_nlls(model, ids, prefix_id=tok.eos_token_id, context_length=33, stride=16, batch_size=3)
    for g, want in zip(got, _naive(tiny_model_dir, 33, 16), strict=True):
        np.testing.assert_allclose(g, np.asarray(want, dtype=np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("vendor", "blas", "mkl", "numpy_route"), [
    ("AuthenticAMD", {"openblas"}, True, True), ("GenuineIntel", {"openblas"}, True, False),
    ("AuthenticAMD", {"mkl"}, True, False), ("AuthenticAMD", {"openblas"}, False, False), (None, set(), False, False)])
def test_gemm_route_is_a_rule_of_the_machine(vendor, blas, mkl, numpy_route):
    from odyssey.evaluate.nll import gemm_rule

    assert gemm_rule(vendor, blas, mkl) is numpy_route


def test_repeated_evaluation_is_bit_identical_whatever_the_timings(tiny_model_dir, monkeypatch):
    """The GEMM route used to be picked by timing the two on the first chunk: under a
    varying load the pick changed between runs, and with it the last bits of every NLL.
    Here the clock says numpy is 10x faster in one run and 10x slower in the other."""
    import itertools
    import time

    model, tok = _load(tiny_model_dir)
    ids = [np.asarray(tok(d["text"], add_special_tokens=False).input_ids) for d in _docs(tok)] * 12
    runs = []
    for numpy_seconds in (0.1, 10.0):
        # A timing reads the clock before and after each GEMM: torch's takes 1 s, numpy's 0.1 or 10.
        clock = itertools.accumulate(itertools.cycle([1.0, 1.0, 1.0, numpy_seconds]))
        monkeypatch.setattr(time, "perf_counter", lambda clock=clock: next(clock))
        got = token_nlls(model, ids, prefix_id=tok.eos_token_id, context_length=33, stride=16, batch_size=3)
        runs.append(np.concatenate(got))
    monkeypatch.undo()
    assert runs[0].tobytes() == runs[1].tobytes()
    assert float(np.sum(runs[0], dtype=np.float64)) == float(np.sum(runs[1], dtype=np.float64))
