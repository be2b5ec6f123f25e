"""The evaluate stage: bits per byte, sums, saved outputs, document selection, errors."""

import math
import re

import numpy as np
import pytest
import torch

from odyssey.config import resolve
from odyssey.errors import ConfigError, DataError, ModelError
from odyssey.evaluate import EvalConfig, evaluate, evaluate_documents, load_eval, metrics, save_eval
from odyssey.evaluate.nll import token_nlls
from odyssey.models import load_model, load_tokenizer
from odyssey.models.gpt2_tokenizer import gpt2_tokenizer

TEXTS = ["Café au lait, naïve façade.", "日本語のテキスト and English.", "", "The river court.\n\n  Indented line."]
FAST = dict(context_length=16, stride=8, progress=False)


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    return load_model(tiny_gpt2_dir), load_tokenizer(tiny_gpt2_dir)


def _docs(texts=TEXTS):
    return [{"text": t, "id": f"doc{i}"} for i, t in enumerate(texts)]


def test_metrics_from_pairs():
    assert metrics.total([(2.0, 3), (1.0, 1)]) == (3.0, 4)
    assert metrics.perplexity(3.0, 4) == pytest.approx(math.exp(0.75))
    assert metrics.bits_per_byte(math.log(2) * 10, 5) == pytest.approx(2.0)
    assert math.isnan(metrics.perplexity(0.0, 0)) and math.isnan(metrics.bits_per_byte(1.0, 0))
    assert metrics.perplexity(1e6, 1) == math.inf


def test_bits_per_byte_by_hand_and_sums_add_up(gpt2):
    model, tok = gpt2
    r = evaluate_documents(model, tok, _docs(), EvalConfig(**FAST))
    nll_nats = sum(float(np.sum(x, dtype=np.float64)) for x in r.nll)
    n_bytes = sum(len(t.encode("utf-8")) for t in TEXTS)
    assert n_bytes > sum(len(t) for t in TEXTS)  # multi-byte characters are counted as bytes
    assert r.bytes == n_bytes
    assert r.bits_per_byte == pytest.approx(nll_nats / math.log(2) / n_bytes, rel=1e-12)
    assert r.perplexity == pytest.approx(math.exp(nll_nats / r.tokens), rel=1e-12)
    # per-document figures add up to the totals
    assert sum(d["tokens"] for d in r.per_document) == r.tokens == sum(len(x) for x in r.token_ids)
    assert sum(d["bytes"] for d in r.per_document) == r.bytes
    assert sum(d["nll_sum"] for d in r.per_document) == pytest.approx(r.nll_sum, rel=1e-12)
    assert [d["id"] for d in r.per_document] == ["doc0", "doc1", "doc2", "doc3"]
    empty = r.per_document[2]
    assert (empty["tokens"], empty["nll_sum"], empty["perplexity"], empty["bits_per_byte"]) == (0, 0.0, None, None)
    for d, ids, nll in zip(r.per_document, r.token_ids, r.nll, strict=True):
        assert len(ids) == len(nll) == d["tokens"] and np.isfinite(nll).all()
        assert ids.tolist() == tok(TEXTS[int(d["id"][3:])], add_special_tokens=False).input_ids
        if d["tokens"]:
            assert d["perplexity"] == pytest.approx(math.exp(d["nll_sum"] / d["tokens"]))
    assert r.summary().keys() == {"perplexity", "bits_per_byte", "word_perplexity", "byte_perplexity", "tokens",
                                  "bytes", "words", "documents", "nll_sum", "context_length", "stride"}
    # lm-evaluation-harness's definitions: words split on whitespace runs, per document
    assert r.words == sum(len(re.split(r"\s+", t)) for t in TEXTS)
    assert r.word_perplexity == pytest.approx(math.exp(nll_nats / r.words), rel=1e-12)
    assert r.byte_perplexity == pytest.approx(math.exp(nll_nats / n_bytes), rel=1e-12)


def test_default_window_is_model_max_and_half_stride(llama):
    model, tok = llama
    r = evaluate_documents(model, tok, _docs(), EvalConfig(progress=False))
    assert (r.context_length, r.stride) == (128, 64)


def test_save_load_round_trip(tmp_path, llama):
    model, tok = llama
    r = evaluate_documents(model, tok, _docs(), EvalConfig(**FAST))
    r.model, r.data = "m", "d"
    save_eval(r, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "tokens.safetensors"]
    back = load_eval(tmp_path)
    assert back.summary() == r.summary()
    assert back.per_document == r.per_document
    assert (back.model, back.data, back.config) == ("m", "d", r.config)
    assert back.data_sha256 == r.data_sha256 and len(r.data_sha256) == 64
    for a, b in zip(back.token_ids, r.token_ids, strict=True):
        assert a.dtype == np.int32 and np.array_equal(a, b)
    for a, b in zip(back.nll, r.nll, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    from safetensors.numpy import load_file

    flat = load_file(tmp_path / "tokens.safetensors")
    assert flat["doc_offsets"].dtype == np.int64 and flat["doc_offsets"].tolist()[0] == 0
    assert flat["doc_offsets"].tolist()[-1] == len(flat["nll"]) == r.tokens
    assert len(flat["doc_offsets"]) == r.documents + 1


def test_max_documents_and_max_tokens(llama):
    model, tok = llama
    docs = _docs(["one two three four five"] * 10)
    n_each = len(tok(docs[0]["text"], add_special_tokens=False).input_ids)
    r = evaluate_documents(model, tok, docs, EvalConfig(max_documents=3, **FAST))
    assert r.documents == 3 and r.tokens == 3 * n_each
    r = evaluate_documents(model, tok, docs, EvalConfig(max_tokens=2 * n_each + 1, **FAST))
    assert r.documents == 3  # the document that crosses the limit is the last one added
    r = evaluate_documents(model, tok, docs * 20, EvalConfig(max_tokens=150 * n_each, **FAST))
    assert r.documents == 150


def test_evaluate_from_files_and_writes_outputs(tmp_path, tiny_llama_dir, text_corpus_file):
    r = evaluate(str(tiny_llama_dir), str(text_corpus_file), EvalConfig(max_documents=5, **FAST),
                 out_dir=tmp_path / "ev")
    assert r.documents == 5 and r.model == str(tiny_llama_dir)
    assert load_eval(tmp_path / "ev").summary() == r.summary()


def test_a_model_that_rescales_its_logits_is_not_split(llama):
    """The body+head shortcut is checked against the model's own logits."""
    model, tok = llama
    ids = [np.asarray(tok("The river court of the king.", add_special_tokens=False).input_ids)]
    kw = dict(prefix_id=tok.eos_token_id, context_length=16, stride=8)
    plain = token_nlls(model, ids, **kw)[0]
    handle = model.register_forward_hook(lambda m, a, out: out.__setitem__("logits", out.logits * 3.0) or out)
    try:
        scaled = token_nlls(model, ids, **kw)[0]
        with torch.no_grad():
            seq = torch.tensor([[tok.eos_token_id, *ids[0].tolist()]])
            want = -torch.log_softmax(model(seq[:, :-1]).logits[0], -1).gather(1, seq[0, 1:, None])[:, 0]
    finally:
        handle.remove()
    assert not np.allclose(plain, scaled)
    np.testing.assert_allclose(scaled, want.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("cfg", "match"), [
    (dict(context_length=129), "longer than the model accepts"),
    (dict(context_length=16, stride=17), "stride 17 is outside"),
    (dict(stride=200), "stride 200 is outside"),
])
def test_bad_window_is_a_config_error(llama, cfg, match):
    model, tok = llama
    with pytest.raises(ConfigError, match=match) as e:
        evaluate_documents(model, tok, _docs(), EvalConfig(progress=False, **cfg))
    assert e.value.hint


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="stride"):
        resolve(EvalConfig, values={"stride": 0})
    with pytest.raises(ConfigError, match="dtype"):
        resolve(EvalConfig, values={"dtype": "float8"})


def test_empty_data_and_unfit_tokenizer(llama):
    model, tok = llama
    with pytest.raises(DataError, match="no documents"):
        evaluate_documents(model, tok, [], EvalConfig(**FAST))
    with pytest.raises(DataError, match="no tokens"):
        evaluate_documents(model, tok, _docs(["", ""]), EvalConfig(**FAST))
    with pytest.raises(DataError, match="has no text"):
        evaluate_documents(model, tok, [{"id": "x"}], EvalConfig(**FAST))
    with pytest.raises(ModelError, match="embeds only"):
        evaluate_documents(model, gpt2_tokenizer(), _docs(), EvalConfig(**FAST))
