"""Token-level attribution: which tokens carry a change in loss between two evaluations.

Two evaluation directories (``eval.json`` + ``tokens.safetensors``, written by
``odyssey evaluate --out`` or by a study) of the same text and tokenizer are diffed
token by token: ``delta[i] = nll_after[i] - nll_before[i]`` (nats; positive = the
token got harder). The total change is split by token category
(:mod:`odyssey.analysis.categories`) and by token type (id):

- ``by_category[c]``: ``delta`` (sum over the tokens of ``c``), ``share``
  (``delta / total_delta``; the shares sum to 1, a share can be negative or above 1
  when categories move in opposite directions), ``abs_share`` (``sum |delta|`` over
  the tokens of ``c`` / ``sum |delta|`` over all tokens: how much of the per-token
  churn is in ``c``), ``tokens`` and ``mean_delta``;
- ``top_types``: the token types with the largest summed change, worse and better;
- ``half_mass_types``: the fewest token types whose ``|summed change|`` (types sorted
  by it, largest first) reaches half of ``sum over types |summed change|``; and
  ``half_mass_share``, that number over the number of types present. A small share
  means that a handful of types carries the change (the Adaptation Odyssey's finding).

Domain terms are the words of the evaluated text over-represented against a reference
(a corpus, or wordfreq's English frequencies without one): the log-odds ratio with a
Dirichlet prior of Monroe, Colaresi and Quinn (2008, "Fightin' words", eq. 16-22),
with ``z > domain_z`` and at least ``domain_min_count`` occurrences.

>>> att = attribute("study/runs/wiki-arts/evals/base-test", "study/runs/wiki-arts/evals/adapted-test")
>>> att.summary()["by_category"]["newline"]["share"]
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from odyssey.analysis.categories import CATEGORIES, CATEGORY_INDEX, STOP_WORDS, categorize_ids
from odyssey.analysis.config import TokensConfig
from odyssey.analysis.similarity import (
    WORDFREQ,
    WORDFREQ_TOKENS,
    iter_texts,
    wordfreq_reference,
    words,
)
from odyssey.errors import DataError, ModelError


@dataclass
class Attribution:
    """Aligned per-token arrays of two evaluations of the same text, and the category of
    every token. ``doc_offsets`` (D+1,) splits the flat arrays (N,) into documents."""

    token_ids: np.ndarray  # (N,) int64
    nll_before: np.ndarray  # (N,) float64, nats
    nll_after: np.ndarray  # (N,) float64, nats
    doc_offsets: np.ndarray  # (D+1,) int64
    doc_ids: list[str]
    categories: np.ndarray  # (N,) int8, index into CATEGORIES
    strings: dict[int, str]  # decoded string of each token type present
    domain_terms: list[tuple[str, float]] = field(default_factory=list)  # (word, z), z descending
    before: str = ""
    after: str = ""
    reference: str = ""
    tokenizer: str = ""
    top_k: int = 20

    @property
    def delta(self) -> np.ndarray:
        return self.nll_after - self.nll_before

    def by_category(self) -> dict[str, dict]:
        d = self.delta
        total, total_abs = float(d.sum()), float(np.abs(d).sum())
        k = len(CATEGORIES)
        sums = np.bincount(self.categories, weights=d, minlength=k)
        abs_sums = np.bincount(self.categories, weights=np.abs(d), minlength=k)
        counts = np.bincount(self.categories, minlength=k)
        # "+ 0.0" turns the -0.0 of an empty category over a negative total into 0.0
        return {c: {"delta": float(sums[i]) + 0.0,
                    "share": float(sums[i] / total) + 0.0 if total else None,
                    "abs_share": float(abs_sums[i] / total_abs) if total_abs else None,
                    "tokens": int(counts[i]),
                    "mean_delta": float(sums[i] / counts[i]) if counts[i] else None}
                for i, c in enumerate(CATEGORIES)}

    def type_table(self) -> list[dict]:
        """Every token type present: id, string, category (its most frequent one), count,
        summed and mean change; sorted by summed change, largest first."""
        uniq, inverse = np.unique(self.token_ids, return_inverse=True)
        d = self.delta
        sums = np.bincount(inverse, weights=d, minlength=len(uniq))
        counts = np.bincount(inverse, minlength=len(uniq))
        k = len(CATEGORIES)
        cat_counts = np.bincount(inverse * k + self.categories, minlength=len(uniq) * k).reshape(-1, k)
        modes = cat_counts.argmax(1)
        order = np.argsort(-sums, kind="stable")
        return [{"token_id": int(uniq[i]), "token": self.strings.get(int(uniq[i]), ""),
                 "category": CATEGORIES[modes[i]], "count": int(counts[i]), "delta": float(sums[i]),
                 "mean_delta": float(sums[i] / counts[i])} for i in order]

    def half_mass(self) -> tuple[int, float]:
        """``(types, share of types)``: the fewest types whose |summed change| reaches half
        of the total over types (see the module docstring)."""
        uniq, inverse = np.unique(self.token_ids, return_inverse=True)
        contrib = np.sort(np.abs(np.bincount(inverse, weights=self.delta, minlength=len(uniq))))[::-1]
        total = contrib.sum()
        if not len(contrib) or total == 0:
            return 0, 0.0
        n = int(np.argmax(np.cumsum(contrib) >= 0.5 * total)) + 1
        return n, n / len(contrib)

    def summary(self) -> dict:
        d = self.delta
        table = self.type_table()
        n_half, share_half = self.half_mass()
        return {
            "before": self.before, "after": self.after, "reference": self.reference,
            "tokenizer": self.tokenizer,
            "tokens": int(len(d)), "documents": len(self.doc_ids), "types": len(table),
            "nll_before": float(self.nll_before.sum()), "nll_after": float(self.nll_after.sum()),
            "total_delta": float(d.sum()), "total_abs_delta": float(np.abs(d).sum()),
            "mean_delta": float(d.mean()) if len(d) else None,
            "by_category": self.by_category(),
            "top_types": {"worse": [t for t in table[:self.top_k] if t["delta"] > 0],
                          "better": [t for t in table[::-1][:self.top_k] if t["delta"] < 0]},
            "half_mass_types": n_half, "half_mass_share": share_half,
            "domain_terms": [w for w, _ in self.domain_terms[:50]],
        }

    def document(self, i: int) -> slice:
        return slice(int(self.doc_offsets[i]), int(self.doc_offsets[i + 1]))


# -- decoding -----------------------------------------------------------------------------
def token_strings(tokenizer, ids: Iterable[int]) -> dict[int, str]:
    """The text each token id stands for, leading space included.

    Decoded after an anchor token and cut after the anchor's text, because some
    decoders (SentencePiece's) drop the leading space of the first token decoded.
    """
    kw = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    anchor = tokenizer.encode("a", add_special_tokens=False)[:1]
    prefix = tokenizer.decode(anchor, **kw) if anchor else ""
    out = {}
    for t in ids:
        t = int(t)
        s = tokenizer.decode(anchor + [t], **kw) if anchor else tokenizer.decode([t], **kw)
        out[t] = s[len(prefix):] if anchor and s.startswith(prefix) else tokenizer.decode([t], **kw)
    return out


def _load_tokenizer(tokenizer, before, after):
    if tokenizer is not None and not isinstance(tokenizer, str | os.PathLike):
        return tokenizer, getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    from odyssey.models import load_tokenizer

    names = [str(tokenizer)] if tokenizer is not None else [m for m in (before.model, after.model) if m]
    if not names:
        raise ModelError("the evaluations record no model to take the tokenizer from",
                         "give the tokenizer with --tokenizer PATH")
    errors = []
    for name in names:
        try:
            return load_tokenizer(name), name
        except ModelError as e:
            errors.append(str(e))
    raise ModelError(f"cannot load the tokenizer ({'; '.join(errors)})", "give it with --tokenizer PATH")


def _check_same_text(before, after, before_dir, after_dir) -> None:
    hint = ("evaluate both models on the same data, with the same tokenizer and the same "
            "max_documents/max_tokens")
    if before.data_sha256 and after.data_sha256 and before.data_sha256 != after.data_sha256:
        raise DataError(f"{before_dir} and {after_dir} evaluated different text (data_sha256 differs)", hint)
    if len(before.token_ids) != len(after.token_ids):
        raise DataError(f"{before_dir} has {len(before.token_ids)} documents, {after_dir} "
                        f"{len(after.token_ids)}", hint)
    for i, (x, y) in enumerate(zip(before.token_ids, after.token_ids, strict=True)):
        if len(x) != len(y) or not np.array_equal(x, y):
            raise DataError(f"{before_dir} and {after_dir} have different token ids in document {i}", hint)


# -- domain terms ---------------------------------------------------------------------------
def log_odds_z(counts: Mapping[str, float], reference: Mapping[str, float], *, prior_flat: float = 0.5,
               prior_share: float = 0.05) -> dict[str, float]:
    """z-scores of the log-odds ratio of each word of ``counts`` against ``reference``
    (both word -> count), with a Dirichlet prior (Monroe et al. 2008, eq. 16-22)::

        a_w = prior_flat + prior_share * min(n, m) * (y_w + r_w) / (n + m)
        d_w = log((y_w + a_w) / (n + a0 - y_w - a_w)) - log((r_w + a_w) / (m + a0 - r_w - a_w))
        z_w = d_w / sqrt(1 / (y_w + a_w) + 1 / (r_w + a_w))

    with ``y_w``, ``r_w`` the counts, ``n``, ``m`` the totals and ``a0`` the sum of
    ``a_w`` over the pooled vocabulary. The informative part is sized by the smaller
    corpus so that the prior never outweighs the evaluated text.
    """
    vocab = list(counts)
    y = np.array([counts[w] for w in vocab], dtype=np.float64)
    r = np.array([reference.get(w, 0.0) for w in vocab], dtype=np.float64)
    n, m = float(sum(counts.values())), float(sum(reference.values()))
    v = len(set(reference) | set(counts))
    strength = prior_share * min(n, m)
    a = prior_flat + strength * (y + r) / (n + m)
    a0 = prior_flat * v + strength
    delta = np.log((y + a) / (n + a0 - y - a)) - np.log((r + a) / (m + a0 - r - a))
    z = delta / np.sqrt(1.0 / (y + a) + 1.0 / (r + a))
    return dict(zip(vocab, z.tolist(), strict=True))


def reference_counts(reference: str | os.PathLike | None, config: TokensConfig) -> tuple[dict, str]:
    """Word counts of the reference and its name; wordfreq's frequencies (scaled to a
    nominal 1e9 words) when ``reference`` is ``None``."""
    if reference is None or str(reference) in ("wordfreq", WORDFREQ):
        return {w: f * WORDFREQ_TOKENS for w, f in wordfreq_reference().freq.items()}, WORDFREQ
    counts: Counter[str] = Counter()
    for text in iter_texts(reference, config.reference_split, config.reference_max_bytes):
        counts.update(words(text))
    if not counts:
        raise DataError(f"the reference {reference} has no words", "give a reference corpus with text")
    return counts, str(reference)


def domain_terms(texts: Iterable[str], reference: Mapping[str, float], config: TokensConfig) -> list[tuple[str, float]]:
    """``(word, z)`` of the words of ``texts`` over-represented against ``reference``
    counts: letter words, not function words, ``z > domain_z``, at least
    ``domain_min_count`` occurrences; z descending."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words(text))
    if not counts:
        return []
    z = log_odds_z(counts, reference, prior_flat=config.prior_flat, prior_share=config.prior_share)
    terms = [(w, s) for w, s in z.items()
             if s > config.domain_z and counts[w] >= config.domain_min_count and w not in STOP_WORDS
             and all(ch.isalpha() or ch == "'" for ch in w)]
    return sorted(terms, key=lambda t: -t[1])


# -- the entry point ----------------------------------------------------------------------------
def attribute(before_dir: str | os.PathLike, after_dir: str | os.PathLike, *, tokenizer=None,
              reference: str | os.PathLike | None = None, config: TokensConfig | None = None) -> Attribution:
    """Diff two evaluations of the same text token by token and categorize every token.

    ``tokenizer`` is a loaded tokenizer or a path; default: the model recorded in
    ``before_dir``'s (else ``after_dir``'s) ``eval.json``. ``reference`` (a corpus or
    text path; default wordfreq) decides which words are domain terms.

    >>> att = attribute("evals/base", "evals/adapted", reference="world/general")
    >>> att.summary()["half_mass_types"]
    """
    from odyssey.evaluate.run import load_eval

    return attribute_results(load_eval(before_dir), load_eval(after_dir), tokenizer=tokenizer,
                             reference=reference, config=config, names=(str(before_dir), str(after_dir)))


def attribute_results(before, after, *, tokenizer=None, reference: str | os.PathLike | None = None,
                      config: TokensConfig | None = None, names: tuple[str, str] = ("before", "after")) -> Attribution:
    """:func:`attribute` on two :class:`~odyssey.evaluate.run.EvalResult` objects (in memory,
    e.g. from ``odyssey.evaluate``); ``names`` label them in the summary."""
    before_dir, after_dir = names
    config = config or TokensConfig()
    _check_same_text(before, after, before_dir, after_dir)
    tok, tok_name = _load_tokenizer(tokenizer, before, after)
    ids = np.concatenate([np.asarray(x, np.int64) for x in before.token_ids]) if before.token_ids \
        else np.zeros(0, np.int64)
    if not len(ids):
        raise DataError(f"{before_dir} has no tokens", "evaluate a non-empty text")
    if int(ids.max()) >= len(tok):
        raise ModelError(f"token id {int(ids.max())} is outside the tokenizer's {len(tok)} ids",
                         "give the tokenizer the evaluations used with --tokenizer")
    offsets = np.zeros(len(before.token_ids) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in before.token_ids], out=offsets[1:])
    strings = token_strings(tok, np.unique(ids))
    texts = (tok.decode(x.tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False)
             for x in before.token_ids)
    ref_counts, ref_name = reference_counts(reference, config)
    terms = domain_terms(texts, ref_counts, config)
    cats = categorize_ids(ids, strings, {w for w, _ in terms}, offsets)
    special = list(getattr(tok, "all_special_ids", []) or [])
    if special:
        cats[np.isin(ids, special)] = CATEGORY_INDEX["other"]
    concat = lambda arrs: np.concatenate([np.asarray(a, np.float64) for a in arrs])  # noqa: E731
    return Attribution(token_ids=ids, nll_before=concat(before.nll), nll_after=concat(after.nll),
                       doc_offsets=offsets, doc_ids=[str(d.get("id", i)) for i, d in enumerate(before.per_document)],
                       categories=cats, strings=strings, domain_terms=terms, before=str(before_dir),
                       after=str(after_dir), reference=ref_name, tokenizer=str(tok_name), top_k=config.top_k)
