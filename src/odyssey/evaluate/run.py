"""The evaluate stage: documents in, per-token NLLs, perplexity and bits per byte out.

Definitions (one number, one definition; see :mod:`odyssey.evaluate.windows`):

- each document is tokenized on its own, without special tokens, and scored as
  ``[eos] + ids`` so its first token counts too; ``tokens`` = number of ids;
- perplexity is token-weighted over all documents, ``exp(sum NLL / tokens)``;
- bits per byte is ``sum NLL / ln 2 / UTF-8 bytes`` of the documents' text;
- word and byte perplexity are lm-evaluation-harness's (its ``wikitext`` task):
  ``exp(sum NLL / words)`` and ``exp(sum NLL / bytes)``, words counted as the harness
  counts them (:func:`count_words`), so figures compare with it directly;
- the window (context length ``L``) and stride ``S`` are recorded with the result.

A run directory gets ``eval.json`` (summary, per-document figures, config, model and
data specs) and ``tokens.safetensors`` (flat ``token_ids`` int32, ``nll`` float32 and
CSR ``doc_offsets`` int64), the per-token arrays that token attribution diffs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from odyssey.errors import ConfigError, DataError
from odyssey.evaluate import metrics
from odyssey.evaluate.config import EvalConfig
from odyssey.evaluate.nll import token_nlls
from odyssey.io import atomic_write, read_json, write_json

EVAL_JSON = "eval.json"
TOKENS_FILE = "tokens.safetensors"
SUMMARY_KEYS = ("perplexity", "bits_per_byte", "word_perplexity", "byte_perplexity", "tokens", "bytes",
                "words", "documents", "nll_sum", "context_length", "stride")
_WHITESPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """Words as lm-evaluation-harness counts them for word perplexity (``Task.count_words``):
    ``"a b\nc"`` -> 3; the empty string counts 1, as there."""
    return len(_WHITESPACE.split(text))


@dataclass
class EvalResult:
    """What an evaluation measured. ``token_ids[i]`` and ``nll[i]`` (nats) are aligned
    arrays for document ``i`` (``per_document[i]``)."""

    perplexity: float
    bits_per_byte: float
    nll_sum: float
    tokens: int
    bytes: int
    documents: int
    context_length: int
    stride: int
    per_document: list[dict]
    token_ids: list[np.ndarray]
    nll: list[np.ndarray]
    config: dict = field(default_factory=dict)
    model: str | None = None
    data: str | None = None
    data_sha256: str | None = None
    words: int = 0
    word_perplexity: float = float("nan")
    byte_perplexity: float = float("nan")
    model_source: dict | None = None  # the GGUF file (quantization type) the model was dequantized from
    tasks: dict | None = None  # lm-evaluation-harness task accuracies, when tasks were asked for

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in SUMMARY_KEYS}


def resolve_window(config: EvalConfig, model_max: int) -> tuple[int, int]:
    """``(L, S)`` from the config and the model's maximum positions, checked."""
    L = config.context_length or model_max
    if model_max < L:
        raise ConfigError(f"context length {L} is longer than the model accepts ({model_max})",
                          f"use a context length of at most {model_max}")
    if L < 1:
        raise ConfigError(f"context length must be at least 1, got {L}")
    S = config.stride if config.stride is not None else max(1, L // 2)
    if not 1 <= S <= L:
        raise ConfigError(f"stride {S} is outside [1, context length {L}]",
                          "use 1 <= stride <= context length (L // 2 is the default)")
    return L, S


def tokenize(tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Token ids of each text on its own, no special tokens added."""
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, verbose=False)
    return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]


def _texts(documents: list[dict], first: int = 0) -> list[str]:
    for i, doc in enumerate(documents, start=first):
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise DataError(f"document {i} has no text", 'a document is {"text": str, "id": str}')
    return [doc["text"] for doc in documents]


def _tokenize_selected(tokenizer, documents: list[dict], config: EvalConfig) -> list[np.ndarray]:
    """Token ids of the leading documents that ``max_documents`` and ``max_tokens``
    select. With ``max_tokens``, documents are tokenized in growing slices so that a
    quick evaluation of a large set does not tokenize all of it."""
    docs = documents[:config.max_documents]
    if config.max_tokens is None:
        return tokenize(tokenizer, _texts(docs))
    ids: list[np.ndarray] = []
    total, step = 0, 64
    while len(ids) < len(docs) and total < config.max_tokens:
        for x in tokenize(tokenizer, _texts(docs[len(ids):len(ids) + step], len(ids))):
            if total >= config.max_tokens:
                break
            ids.append(x)
            total += len(x)
        step *= 2
    return ids


def evaluate_documents(model, tokenizer, documents: list[dict],
                       config: EvalConfig | None = None) -> EvalResult:
    """Per-token NLLs, perplexity and bits per byte of ``documents`` under ``model``.

    The model runs on its own device (under autocast if ``config.dtype`` is lower
    than the model's float32); its train/eval mode is restored afterwards.

    >>> result = evaluate_documents(model, tok, [{"text": "Hello world", "id": "a"}])
    >>> result.perplexity, result.bits_per_byte
    """
    from odyssey.models import check_tokenizer_fits, max_context, model_source

    config = config or EvalConfig()
    check_tokenizer_fits(model, tokenizer)
    L, S = resolve_window(config, max_context(model))
    if not documents:
        raise DataError("no documents to evaluate", "give a corpus split or file that has documents")
    ids = _tokenize_selected(tokenizer, documents, config)
    docs = documents[:len(ids)]
    if sum(len(x) for x in ids) == 0:
        raise DataError("the documents have no tokens to evaluate", "check that the text is not empty")
    nll = token_nlls(model, ids, prefix_id=tokenizer.eos_token_id, context_length=L, stride=S,
                     batch_size=config.batch_size, dtype=config.dtype, progress=config.progress)
    per_document = [_doc_row(doc, i, len(doc_ids), float(np.sum(doc_nll, dtype=np.float64)))
                    for i, (doc, doc_ids, doc_nll) in enumerate(zip(docs, ids, nll, strict=True))]
    result = _result(per_document, [x.astype(np.int32) for x in ids], nll, L, S,
                     config.model_dump(mode="json"))
    result.data_sha256 = _texts_sha256(docs)
    result.model_source = model_source(model)
    return result


def _doc_row(doc: dict, index: int, tokens: int, nll_sum: float) -> dict:
    n_bytes = len(doc["text"].encode("utf-8"))
    return {"id": str(doc["id"]) if doc.get("id") is not None else str(index), "tokens": tokens,
            "bytes": n_bytes, "words": count_words(doc["text"]), "nll_sum": nll_sum,
            "perplexity": metrics.finite_or_none(metrics.perplexity(nll_sum, tokens)),
            "bits_per_byte": metrics.finite_or_none(metrics.bits_per_byte(nll_sum, n_bytes))}


def _texts_sha256(docs: list[dict]) -> str:
    """One hash of the evaluated texts, in order: two evaluations are comparable token by
    token only if they read the same text."""
    h = hashlib.sha256()
    for doc in docs:
        h.update(doc["text"].encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def _result(per_document, token_ids, nll, L, S, config, model=None, data=None) -> EvalResult:
    nll_sum, tokens = metrics.total((d["nll_sum"], d["tokens"]) for d in per_document)
    n_bytes = sum(d["bytes"] for d in per_document)
    # evaluations saved before word counts existed have none: their word perplexity is unknown
    words = sum(d["words"] for d in per_document) if all("words" in d for d in per_document) else 0
    return EvalResult(perplexity=metrics.perplexity(nll_sum, tokens),
                      bits_per_byte=metrics.bits_per_byte(nll_sum, n_bytes), nll_sum=nll_sum,
                      tokens=tokens, bytes=n_bytes, documents=len(per_document), context_length=L,
                      stride=S, per_document=per_document, token_ids=token_ids, nll=nll,
                      config=config, model=model, data=data, words=words,
                      word_perplexity=metrics.perplexity(nll_sum, words),
                      byte_perplexity=metrics.perplexity(nll_sum, n_bytes))


def evaluate(model: str, data: str, config: EvalConfig | None = None, *, out_dir=None, revision=None,
             allow_pickle: bool = False, trust_remote_code: bool = False, tasks=None,
             task_limit: int | None = None, energy=None) -> EvalResult:
    """Load ``model`` (hub id, local or run directory, ``.gguf`` file, adapter directory or
    short name) and the documents ``data`` names (``CORPUS[:split]``, default split
    ``test``, or a text/JSONL path), evaluate, and write ``eval.json`` +
    ``tokens.safetensors`` to ``out_dir`` if given. ``tasks`` (names or ``"a,b"``) also
    runs lm-evaluation-harness tasks on the loaded model (:mod:`odyssey.evaluate.harness`;
    ``task_limit`` documents each), whose accuracies go into ``result.tasks``.

    ``energy``: the settings of its ``energy.csv`` row (an
    :class:`~odyssey.energy.config.EnergyConfig`; the command line passes the user's).

    >>> r = evaluate("runs/legal", "corpora/legal:test", EvalConfig(stride=256), out_dir="evals/legal")
    """
    from odyssey.corpora.store import load_documents
    from odyssey.energy.meter import measure_phase
    from odyssey.evaluate.windows import forward_tokens
    from odyssey.models import load_model, load_tokenizer

    config = config or EvalConfig()
    _check_device(config.device)
    # energy.csv in out_dir (odyssey.energy): measured from loading to saving
    with measure_phase(out_dir, "evaluate", device=config.device, config=energy) if out_dir is not None \
            else contextlib.nullcontext() as meter:
        documents = load_documents(data, default_split="test")
        tokenizer = load_tokenizer(model, revision=revision, trust_remote_code=trust_remote_code)
        lm = load_model(model, revision=revision, dtype=config.dtype, device=config.device,
                        allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        result = evaluate_documents(lm, tokenizer, documents, config)
        result.model, result.data = str(model), str(data)
        if tasks:
            from odyssey.evaluate.harness import task_accuracy

            result.tasks = task_accuracy(lm, tokenizer, tasks, batch_size=config.batch_size, limit=task_limit,
                                         work_dir=None if out_dir is None else Path(out_dir) / "tasks")
        if out_dir is not None:
            save_eval(result, out_dir)
            meter.add_tokens(lm, forward_tokens(result), training=False)
    return result


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {device!r}", "use cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but CUDA is not available", "use --device cpu")


def save_eval(result: EvalResult, out_dir: str | os.PathLike) -> None:
    """Write ``eval.json`` and ``tokens.safetensors`` into ``out_dir``, atomically."""
    from safetensors.numpy import save

    out = Path(out_dir)
    offsets = np.zeros(len(result.token_ids) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in result.token_ids], out=offsets[1:])
    flat = {
        "token_ids": _concat(result.token_ids, np.int32),
        "nll": _concat(result.nll, np.float32),
        "doc_offsets": offsets,
    }
    with atomic_write(out / TOKENS_FILE, "wb") as f:
        f.write(save(flat, metadata={"format": "odyssey-eval-tokens/1"}))
    write_json(out / EVAL_JSON, {
        **{k: metrics.finite_or_none(v) if isinstance(v, float) else v for k, v in result.summary().items()},
        "model": result.model, "data": result.data, "data_sha256": result.data_sha256,
        "model_source": result.model_source, "tasks": result.tasks,
        "config": result.config,
        "per_document": result.per_document,
    })


def load_eval(out_dir: str | os.PathLike) -> EvalResult:
    """Read back what :func:`save_eval` wrote."""
    from safetensors.numpy import load

    out = Path(out_dir)
    meta = read_json(out / EVAL_JSON)
    path = out / TOKENS_FILE
    if not path.is_file():
        raise DataError(f"file not found: {path}", "rerun odyssey evaluate with --out")
    try:
        arrays = load(path.read_bytes())
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise DataError(f"{path}: unreadable ({e})", "rerun odyssey evaluate with --out") from e
    offsets = arrays["doc_offsets"]
    split = lambda a: [a[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]  # noqa: E731
    result = _result(meta["per_document"], split(arrays["token_ids"]), split(arrays["nll"]),
                     meta["context_length"], meta["stride"], meta.get("config", {}),
                     meta.get("model"), meta.get("data"))
    result.data_sha256 = meta.get("data_sha256")
    result.model_source, result.tasks = meta.get("model_source"), meta.get("tasks")
    return result


def _concat(arrays: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]) if arrays else np.zeros(0, dtype)
