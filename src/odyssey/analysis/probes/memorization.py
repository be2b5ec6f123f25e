"""The memorization probe: can the model recite its training text, and does its loss
tell training documents from held-out ones?

Extraction (after Carlini et al., "Quantifying Memorization Across Neural Language
Models", 2023): disjoint windows of ``prefix_tokens + suffix_tokens`` tokens are sampled
(seeded) from the training split, each document tokenized on its own; the model is
prompted with the prefix alone, read after the BOS token (EOS when the tokenizer has no
BOS) as every sequence is scored, and decodes ``suffix_tokens`` tokens greedily (HF
``generate``, no sampling; decoding ends at EOS). A window is *extracted* when the
continuation equals the true suffix token for token. Also reported: the mean length of
the matching start of the continuation, and the share of suffix positions that match.
A model that learned the domain also continues *unseen* text of it better, so the same
decoding runs on as many held-out windows (the control): only the excess of the training
windows over the held-out ones (``train_minus_heldout``) is specific to the training text.

Membership: the mean token loss of training documents against held-out documents (the
first ``membership_max_tokens`` tokens of each, read after EOS as in training). A model
that memorized its training set has a lower loss on it: ``gap`` = held-out loss minus
training loss, with a bootstrap interval, and the AUROC of ``-loss`` as a classifier of
membership (0.5: no signal). A base model that never saw the training split is the
control: its gap measures how different the two splits simply are.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from odyssey.analysis.probes import stats
from odyssey.analysis.probes.config import MemorizationProbeConfig
from odyssey.analysis.probes.scoring import LoadedModel, encode, load, prefix_id, sequence_logprobs
from odyssey.corpora.store import SPLITS, is_corpus_dir, iter_split, parse_data_spec
from odyssey.errors import ConfigError, DataError, ModelError
from odyssey.evaluate.metrics import auroc

DEFINITION = ("extraction: greedy continuation of a training prefix equals the true suffix token for token; "
              "exact_rate = extracted / sequences; mean_match_prefix = mean number of leading suffix tokens "
              "matched; train_minus_heldout: the same on training minus held-out windows (what is specific to the "
              "training text); membership gap = mean held-out loss - mean training loss (nats/token, > 0: training "
              "text is easier); auroc = P(loss of a training document < loss of a held-out one); shift = "
              "model - base on the same sequences or documents; exact_rate intervals: exact binomial "
              "(Clopper-Pearson); exact_rate shift: exact McNemar test (gained: extracted only after, lost: only "
              "before), significant when p < 1 - confidence; other shifts: significant when the bootstrap "
              "interval excludes 0")


def memorization_probe(model, data, *, against=None, tokenizer=None,
                       config: MemorizationProbeConfig | None = None) -> dict:
    """Extraction and membership figures of ``model`` (and ``against``, the model before
    adaptation) on the corpus directory ``data``.

    >>> r = memorization_probe("runs/legal", "world/domains/licenses", against="src/odyssey/assets/default-base")
    >>> r["extraction"]["model"]["exact_rate"], r["membership"]["shift"]["significant"]
    """
    cfg = config or MemorizationProbeConfig()
    t0 = time.perf_counter()
    corpus = _corpus_dir(data, cfg)
    lm = load(model, tokenizer, device=cfg.device, dtype=cfg.dtype)
    base = load(against, device=cfg.device, dtype=cfg.dtype) if against is not None else None
    if base is not None:
        _check_same_tokenizer(lm.tokenizer, base.tokenizer)
    context = _context(lm, base)
    models = {"model": lm, "base": base} if base is not None else {"model": lm}
    prefixes, suffixes = sample_windows(lm.tokenizer, corpus, cfg.split, cfg, context)
    extraction = {"sequences": len(prefixes), "requested": cfg.sequences, "split": cfg.split,
                  "prefix_tokens": cfg.prefix_tokens, "suffix_tokens": cfg.suffix_tokens,
                  **_extraction_stats(_continue(models, prefixes, cfg), suffixes, cfg),
                  "heldout": None, "train_minus_heldout": None}
    if cfg.heldout_control:
        extraction.update(_heldout_control(models, corpus, cfg, context, extraction))
    extraction.pop("_per")
    membership = membership_test(lm, base, corpus, cfg) if cfg.membership_documents else None
    return {"probe": "memorization", "model": lm.name, "against": base.name if base else None,
            "data": str(corpus), "definition": DEFINITION, "config": cfg.model_dump(mode="json"),
            "extraction": extraction, "membership": membership,
            "seconds": round(time.perf_counter() - t0, 3)}


# -- data ------------------------------------------------------------------------------------
def _corpus_dir(data, cfg: MemorizationProbeConfig):
    path, _ = parse_data_spec(str(data))
    if not path.exists():
        raise DataError(f"data not found: {path}", "give the corpus directory the model was trained on")
    if not is_corpus_dir(path):
        raise DataError(f"{path} is not a corpus directory (no manifest.json)",
                        "the probe needs its train split and a held-out split: build one with odyssey corpus build")
    for split in (cfg.split, cfg.membership_split):
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    return path


def _context(lm: LoadedModel, base: LoadedModel | None) -> int:
    from odyssey.models import max_context

    return min(max_context(m.model) for m in (lm, base) if m is not None)


def _check_same_tokenizer(a, b) -> None:
    """Both models are prompted with the same token ids, so they must share a tokenizer."""
    probe = "The quick brown fox, 1234 times.\n\tdef f(x): return x"
    if len(a) != len(b) or a(probe, add_special_tokens=False)["input_ids"] != b(probe, add_special_tokens=False)["input_ids"]:
        raise ModelError("the model and --against use different tokenizers",
                         "memorization compares models on the same token ids; use the base the model was adapted from")


def sample_windows(tokenizer, corpus, split: str, cfg: MemorizationProbeConfig, context: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(prefixes (n, P), suffixes (n, S))``: ``n`` disjoint windows of ``split`` drawn
    without replacement from the window grid of each document (offsets 0, W, 2W, ...
    with W = P + S), documents tokenized on their own."""
    width = cfg.prefix_tokens + cfg.suffix_tokens
    if width + 1 > context:  # + the BOS token the prompt is read after
        raise ConfigError(f"prefix_tokens + suffix_tokens + 1 = {width + 1} exceeds the model's context of {context}",
                          "use shorter prefixes or suffixes")
    docs = list(iter_split(corpus, split))
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])  # each split its own stream
    chosen = rng.permutation(len(docs))[:cfg.max_scan_documents]
    ids = encode(tokenizer, [_text(docs[i], i) for i in chosen])
    grid = [(d, off) for d, x in enumerate(ids) for off in range(0, len(x) - width + 1, width)]
    if not grid:
        raise DataError(f"no {split} document of {corpus} has {width} tokens",
                        "lower prefix_tokens/suffix_tokens")
    pick = rng.choice(len(grid), size=min(cfg.sequences, len(grid)), replace=False)
    windows = np.stack([ids[grid[k][0]][grid[k][1]:grid[k][1] + width] for k in pick])
    return windows[:, :cfg.prefix_tokens], windows[:, cfg.prefix_tokens:]


def _text(doc, i: int) -> str:
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
        raise DataError(f"document {i} has no text", 'a document is {"text": str, "id": str}')
    return doc["text"]


# -- extraction ------------------------------------------------------------------------------
def greedy_continuations(lm: LoadedModel, prefixes: np.ndarray, n_tokens: int, batch_size: int = 32,
                         progress: bool = False) -> np.ndarray:
    """Greedy continuations ``(n, n_tokens)`` of equal-length ``prefixes``, each read after
    the BOS token (so no padding is needed); positions after a generated EOS, where
    decoding ended, hold -1."""
    from rich.progress import Progress

    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    out = np.full((len(prefixes), n_tokens), -1, dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("greedy decoding", total=len(prefixes))
            for start in range(0, len(prefixes), batch_size):
                chunk = np.asarray(prefixes[start:start + batch_size], dtype=np.int64)
                chunk = np.concatenate([np.full((len(chunk), 1), prefix_id(tok)), chunk], axis=1)
                ids = torch.as_tensor(chunk, device=device)
                gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     num_beams=1, max_new_tokens=n_tokens, pad_token_id=pad, eos_token_id=eos)
                new = gen[:, ids.shape[1]:].cpu().numpy()
                out[start:start + len(new), :new.shape[1]] = new
                bar.advance(task, len(new))
    finally:
        model.train(was_training)
    return _cut_at_eos(out, eos)


def _cut_at_eos(tokens: np.ndarray, eos: int | None) -> np.ndarray:
    """Keep each row up to and including its first EOS; the rest (padding) becomes -1."""
    if eos is None:
        return tokens
    tokens = tokens.copy()
    for row in tokens:
        hit = np.flatnonzero(row == eos)
        if hit.size:
            row[hit[0] + 1:] = -1
    return tokens


def match_stats(generated: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per sequence: ``exact`` (1.0 if every token matches), ``match_prefix`` (leading tokens
    that match) and ``token_accuracy`` (share of positions that match)."""
    eq = generated == truth
    # The index of the first mismatch is the length of the matching start.
    match_prefix = np.where(eq.all(axis=1), eq.shape[1], np.argmin(eq, axis=1))
    return {"exact": eq.all(axis=1).astype(np.float64), "match_prefix": match_prefix.astype(np.float64),
            "token_accuracy": eq.mean(axis=1)}


def _extraction_stats(generated: dict[str, np.ndarray], suffixes: np.ndarray, cfg) -> dict:
    boot = {"n_boot": cfg.n_boot, "confidence": cfg.confidence, "seed": cfg.seed}
    per = {who: match_stats(g, suffixes) for who, g in generated.items()}
    out: dict = {"model": None, "base": None, "shift": None}
    for who, m in per.items():
        rate, lo, hi = stats.binomial_interval(int(m["exact"].sum()), len(m["exact"]), cfg.confidence)
        mp, mlo, mhi = stats.bootstrap_mean(m["match_prefix"], **boot)
        out[who] = {"exact_matches": int(m["exact"].sum()), "exact_rate": rate, "ci_low": lo, "ci_high": hi,
                    "mean_match_prefix": mp, "match_prefix_ci_low": mlo, "match_prefix_ci_high": mhi,
                    "token_accuracy": float(m["token_accuracy"].mean())}
    out["_per"] = {who: m["match_prefix"] for who, m in per.items()}  # for the held-out comparison
    if "base" in per:
        a, b = per["model"], per["base"]
        test = stats.mcnemar_exact(a["exact"], b["exact"])  # paired 0/1: exact, also at 0 of n
        mp, mlo, mhi = stats.bootstrap_mean(a["match_prefix"], paired_with=b["match_prefix"], **boot)
        out["shift"] = {"exact_rate": float(a["exact"].mean() - b["exact"].mean()), **test,
                        "significant": test["p_value"] < 1.0 - cfg.confidence,
                        "mean_match_prefix": mp, "match_prefix_ci_low": mlo, "match_prefix_ci_high": mhi,
                        "match_prefix_significant": stats.excludes(0.0, mlo, mhi)}
    return out


def _continue(models: dict[str, LoadedModel], prefixes: np.ndarray, cfg) -> dict[str, np.ndarray]:
    return {who: greedy_continuations(m, prefixes, cfg.suffix_tokens, cfg.batch_size, cfg.progress)
            for who, m in models.items()}


def _heldout_control(models: dict[str, LoadedModel], corpus, cfg, context: int, train: dict) -> dict:
    """The same decoding on held-out windows. A model that learned the domain continues
    unseen text better too; only what exceeds the held-out figure is specific to the
    training text: ``train_minus_heldout`` (unpaired bootstrap over the two window sets)."""
    try:
        prefixes, suffixes = sample_windows(models["model"].tokenizer, corpus, cfg.membership_split, cfg, context)
    except DataError:  # a held-out split with no document long enough: no control, said so
        return {"heldout": None, "train_minus_heldout": None}
    gen = _continue(models, prefixes, cfg)
    heldout = {"sequences": len(prefixes), "split": cfg.membership_split, "base": None,
               **{k: v for k, v in _extraction_stats(gen, suffixes, cfg).items() if k != "shift"}}
    boot = {"n_boot": cfg.n_boot, "confidence": cfg.confidence, "seed": cfg.seed}
    diff = {}
    for who in gen:
        d, lo, hi = stats.bootstrap_gap(heldout["_per"][who], train["_per"][who], **boot)
        diff[who] = {"mean_match_prefix": d, "ci_low": lo, "ci_high": hi, "significant": stats.excludes(0.0, lo, hi)}
    heldout.pop("_per")
    return {"heldout": heldout, "train_minus_heldout": diff}


# -- membership ------------------------------------------------------------------------------
def document_losses(lm: LoadedModel, texts: list[str], max_tokens: int, batch_size: int = 32,
                    progress: bool = False) -> np.ndarray:
    """Mean token loss (nats) of the first ``max_tokens`` tokens of each text (NaN if it has none)."""
    from odyssey.models import max_context

    cap = min(max_tokens, max_context(lm.model))
    ids = [x[:cap] for x in encode(lm.tokenizer, texts)]
    keep = [i for i, x in enumerate(ids) if len(x)]
    out = np.full(len(ids), np.nan)
    logp, n = sequence_logprobs(lm, [ids[i] for i in keep], batch_size=batch_size, progress=progress)
    out[keep] = -logp / n
    return out


def membership_test(lm: LoadedModel, base: LoadedModel | None, corpus, cfg: MemorizationProbeConfig) -> dict:
    """Training against held-out document losses, for ``lm`` and the control ``base``."""
    rng = np.random.default_rng(cfg.seed + 1)  # apart from the window sampling's stream
    texts = {}
    for role, split in (("member", cfg.split), ("nonmember", cfg.membership_split)):
        docs = list(iter_split(corpus, split))
        pick = np.sort(rng.permutation(len(docs))[:cfg.membership_documents])
        texts[role] = [_text(docs[i], int(i)) for i in pick]
    losses = {}
    for who, m in (("model", lm), ("base", base)):
        if m is not None:
            losses[who] = {role: document_losses(m, t, cfg.membership_max_tokens, cfg.batch_size, cfg.progress)
                           for role, t in texts.items()}
    # Documents with no tokens have no loss under any model (same tokenizer): drop them everywhere.
    ok = {role: np.isfinite(losses["model"][role]) for role in texts}
    if not ok["member"].any() or not ok["nonmember"].any():
        raise DataError(f"the {cfg.split} or {cfg.membership_split} split of {corpus} has no scorable document",
                        "set membership_documents=0 to skip the membership test")
    boot = {"n_boot": cfg.n_boot, "confidence": cfg.confidence, "seed": cfg.seed}
    out: dict = {"split": cfg.split, "heldout_split": cfg.membership_split,
                 "documents": {"member": int(ok["member"].sum()), "nonmember": int(ok["nonmember"].sum())},
                 "max_tokens": cfg.membership_max_tokens, "model": None, "base": None, "shift": None}
    sel = {who: {role: v[ok[role]] for role, v in d.items()} for who, d in losses.items()}
    for who, d in sel.items():
        gap, lo, hi = stats.bootstrap_gap(d["member"], d["nonmember"], **boot)
        out[who] = {"train_loss": float(d["member"].mean()), "heldout_loss": float(d["nonmember"].mean()),
                    "gap": gap, "ci_low": lo, "ci_high": hi, "significant": stats.excludes(0.0, lo, hi),
                    "auroc": auroc(-d["member"], -d["nonmember"])}
    if "base" in sel:
        shift, lo, hi = stats.bootstrap_gap(sel["model"]["member"], sel["model"]["nonmember"],
                                            paired_member=sel["base"]["member"],
                                            paired_nonmember=sel["base"]["nonmember"], **boot)
        out["shift"] = {"gap": shift, "ci_low": lo, "ci_high": hi, "significant": stats.excludes(0.0, lo, hi),
                        "auroc": out["model"]["auroc"] - out["base"]["auroc"]}
    return out
