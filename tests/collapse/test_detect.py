"""Synthetic-text detection: scores against a per-token loop, AUROC against a pairwise
count, the FPR threshold against a brute-force search, an easy case end to end, and the
`odyssey detect` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from helpers import make_documents
from odyssey.cli import run
from odyssey.collapse.calibrate import evaluate_detection, is_synthetic, threshold_at_fpr
from odyssey.collapse.config import GenerationConfig
from odyssey.collapse.detect import score_token_ids
from odyssey.collapse.generate import generate_continuations, prompt_blocks
from odyssey.evaluate.metrics import auroc
from odyssey.io import write_jsonl
from odyssey.models import load_model, load_tokenizer
from odyssey.models.presets import build_model


def naive_auroc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_matches_a_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 8, size=37).astype(float)  # few values: many ties
    neg = rng.integers(-2, 6, size=23).astype(float)
    assert auroc(pos, neg) == pytest.approx(naive_auroc(pos, neg))
    assert auroc([3, 4], [1, 2]) == 1.0 and auroc([1, 2], [3, 4]) == 0.0 and auroc([1], [1]) == 0.5


@pytest.mark.parametrize("fpr", [0.0001, 0.05, 0.1, 0.3])
def test_threshold_at_fpr_matches_a_brute_force_search(fpr):
    rng = np.random.default_rng(3)
    neg = np.round(rng.normal(0, 1, 60), 1)  # rounded: ties
    pos = np.round(rng.normal(1.5, 1, 40), 1)
    got = threshold_at_fpr(pos, neg, fpr)
    candidates = sorted(set(neg) | set(pos) | {-np.inf})
    ok = [t for t in candidates if np.mean(neg > t) <= fpr]  # every rule "score > t" within the FPR
    best = min(ok)  # the lowest such threshold has the highest TPR
    assert got["threshold"] == best
    assert got["fpr"] == pytest.approx(np.mean(neg > best)) and got["fpr"] <= fpr
    assert got["tpr"] == pytest.approx(np.mean(pos > best))


def naive_scores(model, reference, ids, eos):
    """Every score by a loop over positions and vocabulary entries, in float64, one
    document at a time (no batching, no padding). Without ``reference`` the scoring model's
    own distribution is the sampling distribution of fast_detect."""
    x = torch.tensor([eos, *ids])[None]
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, :-1].double()
        ref = (reference or model)(input_ids=x).logits[0, :-1].double()
    nll, ranks, xent, means, variances = [], [], [], [], []
    for t, target in enumerate(ids):
        logp = torch.log_softmax(logits[t], -1).tolist()
        p_ref = torch.softmax(ref[t], -1).tolist()
        nll.append(-logp[target])
        ranks.append(1 + sum(1 for v in range(len(logp)) if logits[t, v] > logits[t, target]))
        mean = sum(p_ref[v] * logp[v] for v in range(len(logp)))  # E_{v ~ p_ref} log p(v)
        means.append(mean)
        variances.append(sum(p_ref[v] * (logp[v] - mean) ** 2 for v in range(len(logp))))
        xent.append(-mean)
    log_ppl = sum(nll) / len(nll)
    out = {"log_ppl": log_ppl, "log_rank": sum(math.log(r) for r in ranks) / len(ranks),
           "top1": sum(r == 1 for r in ranks) / len(ranks),
           "fast_detect": (-sum(nll) - sum(means)) / math.sqrt(sum(variances))}
    if reference is not None:
        out["binoculars"] = log_ppl / (sum(xent) / len(xent))
    return out


@pytest.mark.parametrize("with_reference", [True, False])
def test_scores_match_a_per_token_loop(tiny_llama_dir, with_reference):
    tok = load_tokenizer(tiny_llama_dir)
    model = load_model(tiny_llama_dir)
    reference = build_model(model.config, seed=1) if with_reference else None  # same tokenizer, other weights
    docs = make_documents(3, seed=9, min_words=5, max_words=30)
    ids = [np.asarray(tok(d, add_special_tokens=False)["input_ids"][:40]) for d in docs] + [np.zeros(0, int)]
    rows = score_token_ids(model, ids, eos_id=tok.eos_token_id, reference=reference, batch_size=2)
    for row, x in zip(rows[:3], ids[:3], strict=True):
        want = naive_scores(model, reference, x.tolist(), tok.eos_token_id)
        assert row["tokens"] == len(x)
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
        assert row["perplexity"] == pytest.approx(math.exp(want["log_ppl"]), rel=1e-4)
    assert ("binoculars" in rows[0]) == with_reference
    assert rows[3]["tokens"] == 0 and math.isnan(rows[3]["perplexity"])  # an empty document scores NaN
    assert math.isnan(rows[3]["fast_detect"])
    assert not is_synthetic(rows[3], "perplexity", 1e9)


def test_fast_detect_centres_the_models_own_samples(tiny_llama_dir):
    """Text sampled from the scoring model itself at temperature 1 has a discrepancy of
    mean about 0 (it is standardized by the distribution it was drawn from); greedy text,
    always the likeliest token, lies far above."""
    from odyssey.collapse.config import GenerationConfig

    tok, model = load_tokenizer(tiny_llama_dir), load_model(tiny_llama_dir)
    prompts = np.full((48, 1), tok.eos_token_id)
    sample = GenerationConfig(prompt_tokens=1, new_tokens=24, strategy="sample", batch_size=48)
    sampled = generate_continuations(model, prompts, sample, eos_id=tok.eos_token_id, seed=3, progress=False)
    greedy = generate_continuations(model, prompts[:8], GenerationConfig(prompt_tokens=1, new_tokens=24, num_beams=1),
                                    eos_id=tok.eos_token_id, progress=False)
    kw = dict(eos_id=tok.eos_token_id, batch_size=16)
    # Scored from the first generated token on; the EOS prompt is what the scorer reads first anyway.
    d_sampled = np.array([r["fast_detect"] for r in score_token_ids(model, list(sampled), **kw)])
    d_greedy = np.array([r["fast_detect"] for r in score_token_ids(model, list(greedy), **kw)])
    assert abs(d_sampled.mean()) < 3 * d_sampled.std() / math.sqrt(len(d_sampled)) + 0.1
    assert d_greedy.min() > np.quantile(d_sampled, 0.95)


def test_beam_search_text_is_told_from_real_text(tiny_llama_dir):
    """The easy case: a model's own beam-search continuations against real text."""
    tok = load_tokenizer(tiny_llama_dir)
    model = load_model(tiny_llama_dir)
    real_docs = [{"text": t, "id": str(i)} for i, t in enumerate(make_documents(40, seed=21))]
    prompts = prompt_blocks(real_docs, tok, 8)[:24]
    cfg = GenerationConfig(prompt_tokens=8, new_tokens=16, num_beams=3, batch_size=8)
    generated = generate_continuations(model, prompts, cfg, eos_id=tok.eos_token_id, progress=False)
    assert generated.shape == (24, 16) and not (generated == tok.eos_token_id).any()
    real = [np.asarray(tok(d["text"], add_special_tokens=False)["input_ids"][8:24]) for d in real_docs[:24]]
    kw = dict(eos_id=tok.eos_token_id, batch_size=8)
    result = evaluate_detection(score_token_ids(model, real, **kw), score_token_ids(model, list(generated), **kw))
    assert result["perplexity"]["auroc"] >= 0.9
    assert result["perplexity"]["rule"] == "<" and result["top1"]["rule"] == ">"
    assert "binoculars" not in result  # no observer


def test_detect_cli(tiny_llama_dir, tmp_path, capsys):
    real = tmp_path / "real.jsonl"
    gen = tmp_path / "gen.jsonl"
    write_jsonl(real, ({"text": t, "id": f"r{i}"} for i, t in enumerate(make_documents(12, seed=5))))
    write_jsonl(gen, ({"text": "the the the the the the the the the the", "id": f"g{i}"} for i in range(6)))
    code = run(["detect", "--data", str(real), "--model", str(tiny_llama_dir),
                "--observer", str(tiny_llama_dir), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)
    assert doc["statistic"] == "binoculars" and len(doc["documents"]) == 12
    assert {"id", "tokens", "perplexity", "log_rank", "top1", "binoculars"} <= set(doc["documents"][0])

    code = run(["detect", "--eval", str(real), str(gen), "--model", str(tiny_llama_dir), "--fpr", "0.1", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["statistic"] == "perplexity"
    assert set(result["statistics"]) == {"perplexity", "log_rank", "top1", "fast_detect"}
    assert 0.0 <= result["statistics"]["perplexity"]["auroc"] <= 1.0

    code = run(["detect", "--eval", str(real), str(gen), "--model", str(tiny_llama_dir), "--fpr", "0.01"])
    out = capsys.readouterr().out
    assert code == 0 and "fast_detect" in out and "perplexity" in out
    assert "label at least 100 real documents" in " ".join(out.split())  # 12 cannot resolve 1%
    assert "stronger" not in out  # repeated words are told apart from real text at once

    like_real = tmp_path / "like-real.jsonl"  # the same kind of text: no statistic separates it
    write_jsonl(like_real, ({"text": t, "id": f"x{i}"} for i, t in enumerate(make_documents(12, seed=6))))
    code = run(["detect", "--eval", str(real), str(like_real), "--model", str(tiny_llama_dir)])
    assert code == 0 and "score with a model stronger" in " ".join(capsys.readouterr().out.split())

    code = run(["detect", "--data", str(real), "--model", str(tiny_llama_dir)])  # the table
    assert code == 0 and "perplexity" in capsys.readouterr().out

    code = run(["detect", "--model", str(tiny_llama_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "either --data" in err and "Traceback" not in err
    code = run(["detect", "--data", str(real), "--model", str(tiny_llama_dir), "--score", "binoculars"])
    err = capsys.readouterr().err
    assert code == 2 and "observer" in err and "Traceback" not in err


def test_detect_fit_then_drop_synthetic_with_the_fitted_detector(tiny_llama_dir, tmp_path, capsys):
    """`detect fit` learns statistic, direction and threshold; `corpus build --drop-synthetic
    FILE` applies exactly that rule and copies the detector into the manifest."""
    from odyssey.collapse.calibrate import flagged
    from odyssey.collapse.config import DetectConfig
    from odyssey.collapse.detect import score_documents
    from odyssey.corpora.store import read_manifest

    real = [{"text": t, "id": f"r{i}"} for i, t in enumerate(make_documents(10, seed=11, max_words=30))]
    gen = [{"text": " ".join(["the"] * (8 + i)), "id": f"g{i}"} for i in range(6)]
    write_jsonl(tmp_path / "real.jsonl", real)
    write_jsonl(tmp_path / "gen.jsonl", gen)
    det_path = tmp_path / "det.json"
    code = run(["detect", "fit", str(tmp_path / "real.jsonl"), str(tmp_path / "gen.jsonl"), "--out", str(det_path),
                "--model", str(tiny_llama_dir), "--fpr", "0.1", "--set", "folds=3"])
    out = capsys.readouterr().out
    assert code == 0 and "detector:" in out
    det = json.loads(det_path.read_text())
    assert det["kind"] == "odyssey-detector" and det["target_fpr"] == 0.1 and det["fit"]["folds"] == 3
    assert det["fit"]["data"]["real"]["documents"] == 10 and det["direction"] in ("higher", "lower")

    # Applied to a mixture: dropped exactly where the stored rule says.
    write_jsonl(tmp_path / "mix.jsonl", real + gen)
    code = run(["corpus", "build", "mix", "--from", str(tmp_path / "mix.jsonl"), "--out", str(tmp_path / "c"),
                "--no-progress", "--drop-synthetic", str(det_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "synthetic:" in captured.out
    manifest = read_manifest(tmp_path / "c")
    scores = score_documents(real + gen, DetectConfig(model=str(tiny_llama_dir), score=det["statistic"]),
                             progress=False)
    want = [r["id"] for r in scores if flagged(r[det["statistic"]], det["direction"], det["threshold"])]
    filt = manifest["synthetic_filter"]
    assert sorted(d["id"] for d in filt["documents"]) == sorted(want) and want
    assert filt["statistic"] == det["statistic"] and filt["direction"] == det["direction"]
    assert filt["fit"]["cv_auroc"] == det["fit"]["cv_auroc"]  # the fit travels with the corpus
    assert manifest["dropped"]["synthetic"] == len(want) and manifest["documents"] == 16 - len(want)

    code = run(["detect", "--data", str(tmp_path / "mix.jsonl"), "--detector", str(det_path), "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and sorted(d["id"] for d in shown["documents"] if d["generated"]) == sorted(want)

    (tmp_path / "bad.json").write_text('{"statistic": "perplexity"}')
    code = run(["corpus", "build", "x", "--from", str(tmp_path / "mix.jsonl"), "--out", str(tmp_path / "x"),
                "--drop-synthetic", str(tmp_path / "bad.json")])
    err = capsys.readouterr().err
    assert code == 2 and "not a detector file" in err and "Traceback" not in err
    code = run(["corpus", "build", "x", "--from", str(tmp_path / "mix.jsonl"), "--out", str(tmp_path / "x"),
                "--drop-synthetic", "3", "--detector-score", "binoculars"])
    err = capsys.readouterr().err
    assert code == 2 and "reference" in err and "Traceback" not in err
