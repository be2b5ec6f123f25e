"""How likely is a document to be model-generated: per-document scores under a scoring
model M and, optionally, a reference model R with the same tokenizer.

Each document is tokenized on its own, read after EOS and cut to ``max_tokens``. Per
document, over its scored tokens ``x_1..x_n`` (``p_M(v)`` is M's next-token distribution
at position t, ``p_R(v)`` R's; without R, ``p_R = p_M``):

- ``perplexity`` = ``exp(mean NLL)`` under M (``log_ppl`` its log);
- ``log_rank`` = mean of ``log(rank)`` of the actual token among M's predictions
  (rank 1 = M's top choice; ties count in the token's favour), as in GLTR/DetectLLM;
- ``top1`` = share of tokens that are M's top choice;
- ``fast_detect``, the analytic sampling discrepancy of Fast-DetectGPT (Bao et al., ICLR
  2024): the text's log-likelihood standardized by the mean and variance that the
  log-likelihood would have if each token were drawn from ``p_R``, in closed form::

      mu_t = sum_v p_R(v) log p_M(v)          s2_t = sum_v p_R(v) log^2 p_M(v) - mu_t^2
      fast_detect = (sum_t log p_M(x_t) - sum_t mu_t) / sqrt(sum_t s2_t)

  (the reference code's ``get_sampling_discrepancy_analytic``; R is its sampling model);
- with R, the Binoculars score (Hans et al. 2024) ``binoculars = log PPL_M / log X-PPL``,
  where the log cross-perplexity ``-mean_t mu_t`` is the cross-entropy between R's and M's
  next-token distributions (the reference code's performer is M here, its observer R).

Which way each statistic points depends on the model and the decoding (see the README's
detection grid): :mod:`odyssey.collapse.calibrate` learns it from labelled text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from odyssey.collapse.config import DetectConfig
from odyssey.errors import DataError, ModelError
from odyssey.progress import progress_bar

SCORE_KEYS = ("log_ppl", "perplexity", "log_rank", "top1", "fast_detect")
REFERENCE_KEYS = ("x_log_ppl", "binoculars")


# -- scores ---------------------------------------------------------------------------
def _token_ids(tokenizer, documents: Sequence[dict], max_tokens: int) -> list[np.ndarray]:
    from odyssey.blocks import tokenize_texts

    for i, d in enumerate(documents):
        if not isinstance(d, dict) or not isinstance(d.get("text"), str):
            raise DataError(f"document {i} has no text", 'a document is {"text": str, "id": str}')
    ids = tokenize_texts([d["text"] for d in documents], tokenizer)
    return [np.asarray(x[:max_tokens], dtype=np.int64) for x in ids]


def _batch(rows: list[np.ndarray], eos: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``[eos] + ids`` per row, right-padded with EOS, and the attention mask."""
    T = 1 + max(len(r) for r in rows)
    ids = np.full((len(rows), T), eos, dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, 1:1 + len(r)] = r
        mask[i, :1 + len(r)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def _row_scores(logits: torch.Tensor, targets: torch.Tensor, reference_logits: torch.Tensor | None) -> dict:
    """Scores of one document from its ``(n, V)`` logits (float32) and ``(n,)`` targets."""
    logp = torch.log_softmax(logits, dim=-1)                      # (n, V) log p_M
    token_logp = logp.gather(1, targets[:, None])[:, 0]            # (n,) log p_M(x_t)
    rank = 1 + (logits > logits.gather(1, targets[:, None])).sum(dim=1)
    log_ppl = float(-token_logp.double().mean())
    p_ref = torch.softmax(reference_logits, dim=-1) if reference_logits is not None else logp.exp()
    mean = (p_ref * logp).sum(dim=-1)                              # (n,) mu_t
    # Centred, not E[x^2] - mu^2: near-uniform predictions would cancel away in float32.
    var = (p_ref * (logp - mean[:, None]).square()).sum(dim=-1).double()  # (n,) s2_t
    mean = mean.double()
    spread = math.sqrt(float(var.sum()))
    row = {"log_ppl": log_ppl, "perplexity": math.exp(log_ppl),
           "log_rank": float(torch.log(rank.double()).mean()),
           "top1": float((rank == 1).double().mean()),
           "fast_detect": float(token_logp.double().sum() - mean.sum()) / spread if spread > 0 else float("nan")}
    if reference_logits is not None:
        x_log_ppl = float(-mean.mean())
        row["x_log_ppl"] = x_log_ppl
        row["binoculars"] = log_ppl / x_log_ppl if x_log_ppl > 0 else float("nan")
    return row


def score_token_ids(model, ids: list[np.ndarray], *, eos_id: int, reference=None, batch_size: int = 8,
                    progress: bool = False) -> list[dict]:
    """Scores (see module docstring) of each token-id array under ``model`` (and ``reference``).
    An empty array gets NaN scores."""
    device = next(model.parameters()).device
    keys = SCORE_KEYS + (REFERENCE_KEYS if reference is not None else ())
    out: list[dict] = [{"tokens": len(x), **dict.fromkeys(keys, float("nan"))} for x in ids]
    order = sorted((i for i, x in enumerate(ids) if len(x)), key=lambda i: len(ids[i]))  # similar lengths batch well
    models = [m for m in (model, reference) if m is not None]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with progress_bar(len(order), "score", unit="documents", enabled=progress) as advance, \
                torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                x, mask = _batch([ids[i] for i in chunk], eos_id, device)
                logits = model(input_ids=x, attention_mask=mask, use_cache=False).logits.float()  # (B, T, V)
                ref = None
                if reference is not None:
                    ref = reference(input_ids=x, attention_mask=mask, use_cache=False).logits.float()
                    # Embedding tables padded to different sizes: compare the tokenizer's ids only.
                    vocab = min(ref.shape[-1], logits.shape[-1])
                    ref, logits = ref[..., :vocab], logits[..., :vocab]
                for b, i in enumerate(chunk):
                    n = len(ids[i])  # position t predicts token t + 1: logits 0..n-1 score ids 1..n
                    out[i].update(_row_scores(logits[b, :n], x[b, 1:n + 1],
                                              None if ref is None else ref[b, :n]))
                advance(len(chunk))
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    return out


def load_scorers(cfg: DetectConfig):
    """``(model, tokenizer, reference or None, max_tokens)`` for ``cfg``, on its device."""
    from odyssey.blocks.pack import tokenizer_fingerprint
    from odyssey.collapse.generate import resolve_device
    from odyssey.models import check_tokenizer_fits, load_model, load_tokenizer, max_context
    from odyssey.models.presets import default_base_path

    device = resolve_device(cfg.device)
    name = cfg.model or str(default_base_path())
    kw = dict(allow_pickle=cfg.allow_pickle, trust_remote_code=cfg.trust_remote_code)
    tokenizer = load_tokenizer(name, trust_remote_code=cfg.trust_remote_code)
    model = load_model(name, device=device, **kw)
    check_tokenizer_fits(model, tokenizer)
    reference = None
    if cfg.reference:
        ref_tok = load_tokenizer(cfg.reference, trust_remote_code=cfg.trust_remote_code)
        if tokenizer_fingerprint(ref_tok) != tokenizer_fingerprint(tokenizer):
            raise ModelError(f"the reference model {cfg.reference} has another tokenizer than {name}",
                             "fast_detect and binoculars compare two models' next-token distributions over the "
                             "same tokens: pick a reference trained with the scoring model's tokenizer")
        reference = load_model(cfg.reference, device=device, **kw)
        check_tokenizer_fits(reference, tokenizer)
    # Room for the EOS that every document is read after.
    limit = min(max_context(m) for m in (model, reference) if m is not None) - 1
    return model, tokenizer, reference, min(cfg.max_tokens, limit)


def score_documents(documents: Sequence[dict], cfg: DetectConfig, *, scorers=None,
                    progress: bool = True) -> list[dict]:
    """One row per document: ``id``, ``tokens`` and every score.

    >>> rows = score_documents(load_documents("corpora/legal:test"), DetectConfig(reference="runs/legal"))
    """
    model, tokenizer, reference, max_tokens = scorers or load_scorers(cfg)
    ids = _token_ids(tokenizer, documents, max_tokens)
    rows = score_token_ids(model, ids, eos_id=tokenizer.eos_token_id, reference=reference,
                           batch_size=cfg.batch_size, progress=progress)
    return [{"id": str(d.get("id", i)), **r} for i, (d, r) in enumerate(zip(documents, rows, strict=True))]
