"""Memorization probe: greedy decoding against a naive loop, match counting, a tiny model
forced to memorize its training text, a model that memorized nothing, and bad input."""

import math

import numpy as np
import pytest
import torch

from helpers import make_documents
from odyssey.analysis.probes import MemorizationProbeConfig, memorization_probe
from odyssey.analysis.probes.memorization import greedy_continuations, match_stats
from odyssey.analysis.probes.scoring import load
from odyssey.errors import ConfigError, DataError, ModelError
from odyssey.io import write_json, write_jsonl
from odyssey.models import load_model, load_tokenizer

FAST = {"n_boot": 200, "device": "cpu", "batch_size": 8}


def write_corpus(path, train: list[str], test: list[str]):
    for split, texts in (("train", train), ("valid", test[:1]), ("test", test)):
        write_jsonl(path / split / "shard-00000.jsonl",
                    ({"text": t, "id": f"{split}-{i}", "meta": {}} for i, t in enumerate(texts)))
    write_json(path / "manifest.json", {"name": path.name})
    return path


def naive_greedy(model, prefix: list[int], n: int, bos: int, eos: int) -> list[int]:
    """Argmax of a full forward pass per step, prompt read after BOS; stops after EOS."""
    seq, out = [bos] + list(prefix), []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            out.append(nxt)
            seq.append(nxt)
            if nxt == eos:
                break
    return out + [-1] * (n - len(out))


def test_greedy_continuations_match_a_naive_loop(tiny_llama_dir):
    lm = load(str(tiny_llama_dir), device="cpu")
    rng = np.random.default_rng(0)
    prefixes = rng.integers(1, len(lm.tokenizer), size=(5, 6))
    got = greedy_continuations(lm, prefixes, 7, batch_size=2)
    want = [naive_greedy(lm.model, list(p), 7, lm.tokenizer.bos_token_id, lm.tokenizer.eos_token_id) for p in prefixes]
    np.testing.assert_array_equal(got, np.array(want))


def test_match_stats_counts_exact_and_leading_matches():
    truth = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    gen = np.array([[1, 2, 3, 4], [1, 2, 9, 4], [9, 2, 3, 4], [1, 2, 3, -1]])
    s = match_stats(gen, truth)
    assert list(s["exact"]) == [1, 0, 0, 0]
    assert list(s["match_prefix"]) == [4, 2, 0, 3]
    assert list(s["token_accuracy"]) == [1.0, 0.75, 0.75, 0.75]


def memorizer(tiny_llama_dir, text: str, width: int):
    """The tiny Llama trained until it recites every window of ``width`` tokens of ``text``
    on the probe's grid (offsets 0, width, ...), each read after BOS as the probe prompts."""
    tok = load_tokenizer(tiny_llama_dir)
    model = load_model(tiny_llama_dir)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([[tok.bos_token_id] + ids[o:o + width] for o in range(0, len(ids) - width + 1, width)])
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if loss.item() < 0.005:
            break
    return model.eval(), tok


def test_a_memorizing_model_is_caught_and_a_random_one_is_not(tmp_path, tiny_llama_dir):
    text = make_documents(1, seed=7, min_words=45, max_words=45)[0]
    corpus = write_corpus(tmp_path / "mem", [text], make_documents(8, seed=3, min_words=30, max_words=40))
    cfg = MemorizationProbeConfig(sequences=8, prefix_tokens=8, suffix_tokens=8, membership_documents=8, **FAST)
    model, tok = memorizer(tiny_llama_dir, text, 16)
    r = memorization_probe((model, tok), corpus, against=str(tiny_llama_dir), config=cfg)
    e = r["extraction"]
    n = e["sequences"]
    assert n == min(8, len(tok(text, add_special_tokens=False)["input_ids"]) // 16) and n >= 2
    # After: every window recited; before (random init): none.
    assert e["model"]["exact_matches"] == n and e["model"]["exact_rate"] == 1.0
    assert e["base"]["exact_matches"] == 0 and e["base"]["mean_match_prefix"] < 1
    # Exact McNemar: n gained, none lost: p = 2 / 2**n (significant from n = 6 on).
    assert e["shift"]["exact_rate"] == 1.0 and (e["shift"]["gained"], e["shift"]["lost"]) == (n, 0)
    assert e["shift"]["p_value"] == pytest.approx(min(1.0, 2 / 2**n))
    assert e["shift"]["significant"] is (2 / 2**n < 0.05)
    # Exact intervals: n of n reaches 1; 0 of n still allows a rate above 0.
    assert e["model"]["ci_high"] == 1.0 and e["model"]["ci_low"] == pytest.approx(0.025 ** (1 / n))
    assert e["base"]["ci_low"] == 0.0 and e["base"]["ci_high"] == pytest.approx(1 - 0.025 ** (1 / n))
    # The control: unseen text of the same kind is not recited, so the recall is specific.
    h, d = e["heldout"], e["train_minus_heldout"]
    assert h["sequences"] >= 2 and h["model"]["exact_matches"] == 0 and h["model"]["mean_match_prefix"] < 2
    assert d["model"]["mean_match_prefix"] > 6 and d["model"]["significant"] is True
    assert d["model"]["mean_match_prefix"] == pytest.approx(8 - h["model"]["mean_match_prefix"])
    m = r["membership"]
    assert m["documents"] == {"member": 1, "nonmember": 8}
    # The memorized windows make the training document far easier than any held-out one.
    assert m["model"]["train_loss"] + 1.0 < m["model"]["heldout_loss"] and m["model"]["auroc"] == 1.0
    assert m["shift"]["gap"] > 0


def test_no_matches_and_determinism(tiny_llama_dir, tiny_corpus_dir):
    cfg = MemorizationProbeConfig(sequences=6, prefix_tokens=8, suffix_tokens=8, membership_documents=5, **FAST)
    r = memorization_probe(str(tiny_llama_dir), tiny_corpus_dir, config=cfg)
    assert r["extraction"]["model"]["exact_matches"] == 0 and r["extraction"]["sequences"] == 6
    assert r["extraction"]["base"] is None and r["extraction"]["shift"] is None
    assert r["membership"]["base"] is None and 0.0 <= r["membership"]["model"]["auroc"] <= 1.0
    assert r["extraction"]["heldout"]["base"] is None and set(r["extraction"]["train_minus_heldout"]) == {"model"}
    again = memorization_probe(str(tiny_llama_dir), tiny_corpus_dir, config=cfg)
    # Same seed, same result: counts exactly, losses up to float summation order (CPU kernels
    # may split a sum across threads differently from one call to the next).
    assert again["extraction"] == r["extraction"]
    assert _differences(again["membership"], r["membership"]) == []


def _differences(a, b, path: str = "") -> list[str]:
    """Paths where two nested results differ; floats (losses of a few nats, and differences of
    them) compared to 1e-7 relative or 1e-6 absolute."""
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-6) else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return [d for k in a for d in _differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_bad_input(tmp_path, tiny_llama_dir, tiny_gpt2_dir, tiny_corpus_dir, text_corpus_file):
    cfg = MemorizationProbeConfig(sequences=2, membership_documents=0, **FAST)
    with pytest.raises(DataError, match="not found"):
        memorization_probe(str(tiny_llama_dir), tmp_path / "nope", config=cfg)
    with pytest.raises(DataError, match="not a corpus directory"):
        memorization_probe(str(tiny_llama_dir), text_corpus_file, config=cfg)
    with pytest.raises(ConfigError, match="context"):
        memorization_probe(str(tiny_llama_dir), tiny_corpus_dir,
                           config=cfg.model_copy(update={"prefix_tokens": 100, "suffix_tokens": 100}))
    short = write_corpus(tmp_path / "short", ["A short text.", "Another one."], ["Held out."])
    with pytest.raises(DataError, match="has 64 tokens"):
        memorization_probe(str(tiny_llama_dir), short, config=cfg)
    with pytest.raises(ModelError, match="different tokenizers"):
        memorization_probe(str(tiny_llama_dir), tiny_corpus_dir, against=str(tiny_gpt2_dir), config=cfg)
