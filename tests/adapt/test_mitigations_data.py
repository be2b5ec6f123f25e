"""Token-selective loss and data normalization, against independent computations."""

import json
import math

import pytest
import torch
from test_mitigations_config import assert_resume_is_exact, make_cfg

from odyssey.adapt.loop import adapt, setup
from odyssey.adapt.mitigations.config import NormalizeConfig
from odyssey.adapt.mitigations.normalize import normalize_documents
from odyssey.analysis.categories import classify
from odyssey.corpora.normalize import (
    duplicate_line_ratio,
    normalize,
    normalize_newlines,
    normalize_whitespace,
    symbol_ratio,
)
from odyssey.models import load_model


# -- selective -------------------------------------------------------------------------------
def naive_selective_loss(model, base, tokenizer, batch, chosen, weight, threshold, easy_weight):
    """Per-token CE and weight in explicit loops: sum(w * ce) / sum(w)."""
    specials = set(tokenizer.all_special_ids)
    num = den = 0.0
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=batch).logits.double(), -1)
        base_logp = torch.log_softmax(base(input_ids=batch).logits.double(), -1)
    for b in range(batch.shape[0]):
        for t in range(batch.shape[1] - 1):
            target = int(batch[b, t + 1])
            ce = -float(logp[b, t, target])
            cat = "other" if target in specials else classify(tokenizer.decode([target]))
            w = weight if cat in chosen else 1.0
            if threshold is not None and -float(base_logp[b, t, target]) < threshold:
                w *= easy_weight
            num += w * ce
            den += w
    return num / den


@pytest.mark.parametrize("threshold", [None, "median"])
def test_selective_loss_weights_exactly_the_chosen_tokens(tmp_path, tiny_model_dir, tiny_corpus_dir, threshold):
    chosen, weight, easy = ["newline", "punctuation", "function"], 0.5, 0.25
    base = load_model(tiny_model_dir)
    batch = torch.as_tensor(setup_blocks(tmp_path, tiny_model_dir, tiny_corpus_dir)[:3].copy(), dtype=torch.long)
    if threshold == "median":  # half the targets count as easy for the base
        with torch.no_grad():
            logp = torch.log_softmax(base(input_ids=batch).logits, -1)
        ce = -logp[:, :-1].gather(-1, batch[:, 1:, None]).squeeze(-1)
        s = ce.flatten().sort().values
        k = len(s) // 2
        threshold = float(s[k] + s[k + 1]) / 2  # between two targets: no tie with float rounding
    over = {"mitigation.methods": "[selective]", "mitigation.selective.categories": f"[{','.join(chosen)}]",
            "mitigation.selective.weight": weight, "mitigation.selective.easy_weight": easy}
    if threshold is not None:
        over["mitigation.selective.base_loss_below"] = threshold
    run = setup(make_cfg(tiny_model_dir, tiny_corpus_dir, tmp_path / "sel", **over))
    run.log.close()
    model = run.accelerator.unwrap_model(run.model)
    with torch.no_grad():  # move away from the base, so base and model losses differ
        for p in model.parameters():
            p.mul_(1.05)
    ours = run.mit.lm_loss(model, batch).item()
    expected = naive_selective_loss(model, base, run.tokenizer, batch, chosen, weight, threshold, easy)
    assert ours == pytest.approx(expected, rel=1e-5)
    plain = model(input_ids=batch, labels=batch).loss.item()
    assert abs(ours - plain) > 1e-3  # the weights changed something


def setup_blocks(tmp_path, model_dir, corpus):
    run = setup(make_cfg(model_dir, corpus, tmp_path / "blocks"))
    run.log.close()
    return run.blocks


def test_masking_every_target_gives_zero_loss_and_gradient(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    run = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "all", **{
        "mitigation.methods": "[selective]", "mitigation.selective.categories":
            "[newline,whitespace,punctuation,digits,function,content,other]"}))
    run.log.close()
    batch = torch.as_tensor(run.blocks[:2].copy(), dtype=torch.long)
    loss = run.mit.lm_loss(run.model, batch)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in run.model.parameters())


def test_selective_step_loss_does_not_depend_on_the_micro_batch_split(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    run = setup(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "split", **{
        "mitigation.methods": "[selective]", "mitigation.selective.weight": 0.2,
        "mitigation.selective.base_loss_below": 5.8, "mitigation.selective.easy_weight": 0.5}))
    run.log.close()
    model, acc = run.model, run.accelerator
    batch = torch.as_tensor(run.blocks[:4].copy(), dtype=torch.long)
    losses, grads = [], []
    for parts in ([batch], [batch[:1], batch[1:3], batch[3:]]):
        model.zero_grad()
        run.mit.start_step(parts, acc)
        total = 0.0
        for i, part in enumerate(parts):
            loss = run.mit.lm_loss(model, part, i) / len(parts)  # as the loop does with grad_accum
            loss.backward()
            total += loss.item()
        losses.append(total)
        grads.append([p.grad.clone() for p in model.parameters()])
    whole = run.mit.lm_loss(model, batch).item()  # one weighted mean over all targets
    assert losses[0] == pytest.approx(whole, rel=1e-6) and losses[1] == pytest.approx(whole, rel=1e-5)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_selective_with_base_scorer_resumes_exactly(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    assert_resume_is_exact(tmp_path, tiny_llama_dir, tiny_corpus_dir, **{
        "mitigation.methods": "[selective,freeze]", "mitigation.selective.base_loss_below": 5.5,
        "mitigation.selective.weight": 0.3})


# -- normalization -----------------------------------------------------------------------------
def test_whitespace_and_newline_normalization():
    assert normalize_whitespace("def f(x):  \n    return  x\t+ 1\t\n") == "def f(x):\n    return x + 1\n"
    assert normalize_whitespace("\tindented\ttab") == "\tindented tab"  # indentation stays
    assert normalize_newlines("a\r\nb\rc\n\n\n\nd\n\ne") == "a\nb\nc\n\nd\n\ne"
    # A line of spaces between newlines is blank once stripped, so the run collapses too.
    assert normalize("a\n  \n \t\n\nb  ") == "a\n\nb"
    assert normalize("a  b\n\n\n", whitespace=False) == "a  b\n\n"
    assert normalize("a  b\n\n\n", newlines=False) == "a b\n\n\n"


def test_quality_measures():
    assert symbol_ratio("ab $$") == pytest.approx(2 / 4)
    assert symbol_ratio("   ") == 0.0
    assert duplicate_line_ratio("x\ny\nx\n\nx\n z") == pytest.approx(2 / 5)


def test_normalize_documents_counts_every_change_and_drop():
    words = "the river flows past the old mill and into the quiet valley below the hills".split()
    base = " ".join(words * 3)
    docs = [
        {"id": "keep", "text": base + "  \r\n\r\n\r\n end"},  # normalized, kept
        {"id": "short", "text": "too short  "},  # normalized, then dropped
        {"id": "symbols", "text": "#### $$$$ %%%% ^^^^ &&&& **** (((( )))) !!!! ???? ;;;; ::::" * 2},
        {"id": "lines", "text": "same line here\n" * 8 + "and one other line to pass the length filter"},
        {"id": "near-dup", "text": base + " end."},  # near duplicate of "keep"
        {"id": "other", "text": " ".join(reversed(words * 3)) + " and so on and so forth for a while"},
    ]
    cfg = NormalizeConfig(min_chars=40, threshold=0.7)
    kept, counts = normalize_documents(docs, cfg)
    assert [d["id"] for d in kept] == ["keep", "other"]
    assert kept[0]["text"] == base + "\n\n end"
    assert counts["dropped"] == {"too_short": 1, "symbols": 1, "duplicate_lines": 1, "near_duplicate": 1}
    assert counts["normalized"] == 2 and counts["documents_in"] == 6 and counts["documents_out"] == 2
    assert docs[0]["text"].endswith("\r\n\r\n\r\n end")  # the input is not modified


def test_normalize_applies_to_training_documents_only(tmp_path, tiny_llama_dir, documents):
    from conftest import write_corpus_dir

    corpus = tmp_path / "dup"
    n_train = int(len(documents) * 0.7)
    texts = list(documents)
    texts[1] = texts[0] + "  "  # a near (whitespace) duplicate in the train split
    texts[n_train + 1] = texts[n_train] + "   \n\n\n\n"  # and in the valid split, which must stay
    write_corpus_dir(corpus, texts)
    result = adapt(make_cfg(tiny_llama_dir, corpus, tmp_path / "run", **{"mitigation.methods": "[normalize]",
                                                                         "mitigation.normalize.min_chars": 10,
                                                                         "eval.max_tokens": "null"}),
                   progress=False)
    counts = json.loads((tmp_path / "run" / "normalize.json").read_text())
    assert counts == result.mitigation["normalize"]
    assert counts["documents_in"] == n_train and counts["dropped"].get("near_duplicate") == 1
    n_valid = int(len(texts) * 0.85) - n_train
    assert result.evals["valid"]["after"]["documents"] == n_valid
    assert math.isfinite(result.evals["valid"]["after"]["perplexity"])
