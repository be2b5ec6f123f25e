"""How likely is a document to be model-generated: per-document scores under a scoring
model, and how well they separate real from generated text.

Each document is tokenized on its own, read after EOS and cut to ``max_tokens``. Per
document, over its scored tokens:

- ``perplexity`` = ``exp(mean NLL)`` under the scoring model M (``log_ppl`` its log);
- ``log_rank`` = mean of ``log(rank)`` of the actual token among M's predictions
  (rank 1 = M's top choice; ties count in the token's favour), as in GLTR/DetectLLM;
- ``top1`` = share of tokens that are M's top choice;
- with an observer model O (same tokenizer), the Binoculars score (Hans et al. 2024)
  ``binoculars = log PPL_M / log X-PPL_{O,M}``, where the log cross-perplexity is the
  mean over positions of the cross-entropy ``-sum_v p_O(v) log p_M(v)`` between the two
  models' next-token distributions (the reference code's performer is M here).

Generated text is likely under a model: low perplexity, low log-rank, low Binoculars
score, high top-1 share (``STATISTICS`` records each direction). ``auroc`` and
``threshold_at_fpr`` take "generated" as the positive class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from odyssey.collapse.config import STATISTICS, DetectConfig
from odyssey.errors import DataError, ModelError
from odyssey.evaluate.metrics import auroc
from odyssey.progress import progress_bar


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


def _row_scores(logits: torch.Tensor, targets: torch.Tensor, observer_logits: torch.Tensor | None) -> dict:
    """Scores of one document from its ``(n, V)`` logits (float32) and ``(n,)`` targets."""
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(1, targets[:, None])[:, 0]
    target_logit = logits.gather(1, targets[:, None])
    rank = 1 + (logits > target_logit).sum(dim=1)
    log_ppl = float(nll.double().mean())
    row = {"log_ppl": log_ppl, "perplexity": math.exp(log_ppl),
           "log_rank": float(torch.log(rank.double()).mean()),
           "top1": float((rank == 1).double().mean())}
    if observer_logits is not None:
        p_obs = torch.softmax(observer_logits, dim=-1)
        x_log_ppl = float(-(p_obs * logp).sum(dim=-1).double().mean())
        row["x_log_ppl"] = x_log_ppl
        row["binoculars"] = log_ppl / x_log_ppl if x_log_ppl > 0 else float("nan")
    return row


def score_token_ids(model, ids: list[np.ndarray], *, eos_id: int, observer=None, batch_size: int = 8,
                    progress: bool = False) -> list[dict]:
    """Scores (see module docstring) of each token-id array under ``model`` (and ``observer``).
    An empty array gets NaN scores."""
    device = next(model.parameters()).device
    nan = {k: float("nan") for k in ("log_ppl", "perplexity", "log_rank", "top1")}
    if observer is not None:
        nan.update(x_log_ppl=float("nan"), binoculars=float("nan"))
    out: list[dict] = [{"tokens": len(x), **nan} for x in ids]
    order = sorted((i for i, x in enumerate(ids) if len(x)), key=lambda i: len(ids[i]))  # similar lengths batch well
    models = [m for m in (model, observer) if m is not None]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with progress_bar(len(order), "score", unit="documents", enabled=progress) as advance, \
                torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                x, mask = _batch([ids[i] for i in chunk], eos_id, device)
                logits = model(input_ids=x, attention_mask=mask, use_cache=False).logits.float()
                obs = None
                if observer is not None:
                    obs = observer(input_ids=x, attention_mask=mask, use_cache=False).logits.float()
                    # Embedding tables padded to different sizes: compare the tokenizer's ids only.
                    vocab = min(obs.shape[-1], logits.shape[-1])
                    obs, logits = obs[..., :vocab], logits[..., :vocab]
                for b, i in enumerate(chunk):
                    n = len(ids[i])
                    out[i].update(_row_scores(logits[b, :n], x[b, 1:n + 1],
                                              None if obs is None else obs[b, :n]))
                advance(len(chunk))
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    return out


def load_scorers(cfg: DetectConfig):
    """``(model, tokenizer, observer or None, max_tokens)`` for ``cfg``, on its device."""
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
    observer = None
    if cfg.observer:
        obs_tok = load_tokenizer(cfg.observer, trust_remote_code=cfg.trust_remote_code)
        if tokenizer_fingerprint(obs_tok) != tokenizer_fingerprint(tokenizer):
            raise ModelError(f"the observer {cfg.observer} has another tokenizer than {name}",
                             "Binoculars compares two models' next-token distributions over the same tokens")
        observer = load_model(cfg.observer, device=device, **kw)
        check_tokenizer_fits(observer, tokenizer)
    # Room for the EOS that every document is read after.
    limit = min(max_context(m) for m in (model, observer) if m is not None) - 1
    return model, tokenizer, observer, min(cfg.max_tokens, limit)


def score_documents(documents: Sequence[dict], cfg: DetectConfig, *, scorers=None,
                    progress: bool = True) -> list[dict]:
    """One row per document: ``id``, ``tokens`` and every score.

    >>> rows = score_documents(load_documents("corpora/legal:test"), DetectConfig(observer="runs/legal"))
    """
    model, tokenizer, observer, max_tokens = scorers or load_scorers(cfg)
    ids = _token_ids(tokenizer, documents, max_tokens)
    rows = score_token_ids(model, ids, eos_id=tokenizer.eos_token_id, observer=observer,
                           batch_size=cfg.batch_size, progress=progress)
    return [{"id": str(d.get("id", i)), **r} for i, (d, r) in enumerate(zip(documents, rows, strict=True))]


# -- separating real from generated ----------------------------------------------------
def oriented(values: Sequence[float], statistic: str) -> np.ndarray:
    """Values turned so that higher means "more likely generated"."""
    v = np.asarray(values, dtype=np.float64)
    return v if STATISTICS[statistic] else -v


def threshold_at_fpr(positive: Sequence[float], negative: Sequence[float], fpr: float) -> dict:
    """The lowest threshold ``t`` for the rule "positive when score > t" whose false-positive
    rate is at most ``fpr``, with the rates it achieves (higher score = positive)."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if neg.size == 0:
        raise DataError("no real documents to set a threshold on")
    desc = np.sort(neg)[::-1]
    # At most floor(fpr * n) negatives may lie strictly above t: t is the next one down.
    t = float(desc[min(int(math.floor(fpr * neg.size + 1e-9)), neg.size - 1)])
    return {"threshold": t, "fpr": float(np.mean(neg > t)),
            "tpr": float(np.mean(pos > t)) if pos.size else float("nan")}


def evaluate_detection(real: Sequence[dict], generated: Sequence[dict], fpr: float = 0.01) -> dict:
    """For each statistic present in the rows: AUROC (generated = positive) and the
    threshold at ``fpr``, in the statistic's own units with its rule (``<`` or ``>``)."""
    out = {}
    for stat, higher in STATISTICS.items():
        if not real or stat not in real[0]:
            continue
        r = [row[stat] for row in real if math.isfinite(row[stat])]
        g = [row[stat] for row in generated if math.isfinite(row[stat])]
        if not r or not g:
            continue
        pos, neg = oriented(g, stat), oriented(r, stat)
        th = threshold_at_fpr(pos, neg, fpr)
        out[stat] = {"auroc": auroc(pos, neg), "threshold": th["threshold"] if higher else -th["threshold"],
                     "rule": ">" if higher else "<", "fpr": th["fpr"], "tpr": th["tpr"],
                     "real": len(r), "generated": len(g)}
    return out


def is_synthetic(row: dict, statistic: str, threshold: float) -> bool:
    """Whether a scored document counts as generated at ``threshold`` (NaN: never)."""
    v = row.get(statistic, float("nan"))
    if not math.isfinite(v):
        return False
    return v > threshold if STATISTICS[statistic] else v < threshold


def filter_synthetic(documents: list[dict], cfg: DetectConfig, threshold: float,
                     progress: bool = True) -> tuple[list[dict], list[dict]]:
    """``(kept documents, dropped records)``: a document is dropped when its score passes
    ``threshold`` (see :func:`is_synthetic`); a record is ``{"id", "sha256", statistic: value}``."""
    from odyssey.io import sha256_text

    stat = cfg.statistic()
    rows = score_documents(documents, cfg, progress=progress)
    kept, dropped = [], []
    for doc, row in zip(documents, rows, strict=True):
        if is_synthetic(row, stat, threshold):
            dropped.append({"id": doc["id"], "sha256": sha256_text(doc["text"]), stat: row[stat]})
        else:
            kept.append(doc)
    return kept, dropped
