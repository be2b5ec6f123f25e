"""The similarity measures: one small contract, one registry, and the maths as pure functions.

A measure is an object with a ``name`` (its key in the result of
:func:`odyssey.analysis.similarity.similarity`, and the predictor's feature name, so it
stays stable), ``needs`` (what of the comparison it reads: ``"words"``, ``"ngrams"``,
``"embeddings"`` or ``"model"``) and ``compute(comparison) -> float | None``. They are
registered in :data:`SIMILARITY_MEASURES`, in the order the result lists them; a measure
whose ``needs`` the run cannot meet (embeddings off, no model) is ``None``.

Adding one: a class here with the pure function it computes, and one line in the
registry. :data:`MEASURES` (the names) follows.

>>> SIMILARITY_MEASURES.get("js_divergence").needs, js_divergence({"a": 1}, {"b": 1})
('words', 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from odyssey.errors import DataError
from odyssey.registry import Registry

if TYPE_CHECKING:
    from collections import Counter


# -- the maths, as pure functions ------------------------------------------------------
def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two word distributions given as
    counts or frequencies (each normalized here) over their shared vocabulary.

    >>> js_divergence({"a": 1, "b": 1}, {"a": 1, "b": 1}), js_divergence({"a": 1}, {"b": 1})
    (0.0, 1.0)
    """
    vocab = sorted(set(p) | set(q))  # a fixed order: the sums, and so the last bits, the same every run
    if not vocab:
        raise DataError("both word distributions are empty")
    P = np.fromiter((p.get(w, 0.0) for w in vocab), dtype=np.float64, count=len(vocab))
    Q = np.fromiter((q.get(w, 0.0) for w in vocab), dtype=np.float64, count=len(vocab))
    if P.sum() <= 0 or Q.sum() <= 0:
        raise DataError("a word distribution is empty", "check that the corpus has text")
    P, Q = P / P.sum(), Q / Q.sum()
    M = (P + Q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / M[nz])))

    return min(1.0, max(0.0, 0.5 * kl(P) + 0.5 * kl(Q)))


def rare_rate(counts: Mapping[str, int], reference_freq: Mapping[str, float], threshold: float) -> float:
    """Share of the word occurrences in ``counts`` whose reference frequency is below
    ``threshold`` (a word the reference lacks has frequency 0)."""
    total = sum(counts.values())
    if not total:
        return float("nan")
    rare = sum(c for w, c in counts.items() if reference_freq.get(w, 0.0) < threshold)
    return rare / total


def cosine_of_means(X: np.ndarray, Y: np.ndarray) -> float:
    """Cosine similarity of the mean rows of ``X`` (n, d) and ``Y`` (m, d)."""
    a, b = np.asarray(X, np.float64).mean(0), np.asarray(Y, np.float64).mean(0)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float("nan")


def _sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T
    return np.maximum(d, 0.0)


def mmd_rbf(X: np.ndarray, Y: np.ndarray, bandwidth: float | None = None) -> float:
    """Squared MMD of samples ``X`` (n, d) and ``Y`` (m, d) with the kernel
    ``exp(-|x-y|^2 / (2 s^2))``; ``s`` is ``bandwidth`` or the median pairwise distance
    of the pooled sample (median heuristic). Biased V-statistic: identical samples give 0.
    """
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if bandwidth is None:
        Z = np.concatenate([X, Y])
        D = _sq_dists(Z, Z)[np.triu_indices(len(Z), k=1)]
        D = D[D > 0]
        bandwidth = math.sqrt(float(np.median(D))) if len(D) else 1.0
    g = 1.0 / (2 * bandwidth ** 2)
    kxx = np.exp(-g * _sq_dists(X, X)).mean()
    kyy = np.exp(-g * _sq_dists(Y, Y)).mean()
    kxy = np.exp(-g * _sq_dists(X, Y)).mean()
    return float(max(0.0, kxx + kyy - 2 * kxy))


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def frechet_distance(X: np.ndarray, Y: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to ``X`` (n, d) and ``Y`` (m, d):
    ``|m1-m2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``.

    ``tr((S1 S2)^(1/2))`` is the sum of square roots of the eigenvalues of the symmetric
    ``S1^(1/2) S2 S1^(1/2)`` (same spectrum), which stays real and stable when the
    covariances are singular (fewer samples than dimensions).
    """
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if len(X) < 2 or len(Y) < 2:
        raise DataError("the Fréchet distance needs at least two samples on each side")
    m1, m2 = X.mean(0), Y.mean(0)
    S1, S2 = np.atleast_2d(np.cov(X, rowvar=False)), np.atleast_2d(np.cov(Y, rowvar=False))
    A = _psd_sqrt(S1)
    lam = np.linalg.eigvalsh((A @ S2 @ A + (A @ S2 @ A).T) / 2)
    tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    value = float((m1 - m2) @ (m1 - m2) + np.trace(S1) + np.trace(S2) - 2 * tr_covmean)
    return max(0.0, value)


# -- the contract ------------------------------------------------------------------------
@dataclass
class Comparison:
    """What one pass over the data gathered against a reference: the measures read it.

    ``embeddings()`` and ``model_eval()`` compute their inputs on first use (embedding
    the chunk samples; evaluating the base model on the leading documents), once for all
    the measures that need them.
    """

    counts: Counter[str]  # the data's word counts
    reference_freq: Mapping[str, float]  # the reference's relative word frequencies
    ngram_overlap_by_n: dict[str, float | None]  # share of the data's n-grams found in the reference, per n
    rare_threshold: float
    embed: Callable[[], tuple[np.ndarray, np.ndarray] | None] | None = None  # (data (n, d), reference (m, d))
    evaluate: Callable[[], Any] | None = None  # an EvalResult of the base model on the data
    _cache: dict = field(default_factory=dict)

    def embeddings(self) -> tuple[np.ndarray, np.ndarray] | None:
        if "embeddings" not in self._cache:
            self._cache["embeddings"] = self.embed() if self.embed else None
        return self._cache["embeddings"]

    def model_eval(self):
        if "model" not in self._cache:
            self._cache["model"] = self.evaluate() if self.evaluate else None
        return self._cache["model"]

    def available(self, needs: str) -> bool:
        """Whether this comparison can feed a measure that needs ``needs``."""
        return {"embeddings": self.embed is not None, "model": self.evaluate is not None}.get(needs, True)


@runtime_checkable
class Measure(Protocol):
    """A similarity measure of a corpus against a reference. It may also have
    ``details(c) -> dict``: fields the result lists right after the measure
    (``ngram_overlap_by_n``)."""

    name: str  # the key in similarity()'s result; stable (a predictor feature)
    needs: str  # "words", "ngrams", "embeddings" or "model"

    def compute(self, c: Comparison) -> float | None:
        """The value, or None when it cannot be computed from ``c``."""
        ...


# -- the measures ----------------------------------------------------------------------------
class JSDivergence:
    name: ClassVar[str] = "js_divergence"
    needs: ClassVar[str] = "words"

    def compute(self, c: Comparison) -> float:
        return js_divergence(c.counts, c.reference_freq)


class NgramOverlap:
    name: ClassVar[str] = "ngram_overlap"
    needs: ClassVar[str] = "ngrams"

    def compute(self, c: Comparison) -> float | None:
        valid = [v for v in c.ngram_overlap_by_n.values() if v is not None]
        return float(np.mean(valid)) if valid else None

    def details(self, c: Comparison) -> dict:
        return {"ngram_overlap_by_n": c.ngram_overlap_by_n}


class _EmbeddingMeasure:
    needs: ClassVar[str] = "embeddings"
    of: ClassVar[Callable[[np.ndarray, np.ndarray], float]]

    def compute(self, c: Comparison) -> float | None:
        pair = c.embeddings()
        return None if pair is None else type(self).of(*pair)


class EmbedCosineOfMeans(_EmbeddingMeasure):
    name: ClassVar[str] = "embed_cosine_of_means"
    of = staticmethod(cosine_of_means)


class EmbedMMD(_EmbeddingMeasure):
    name: ClassVar[str] = "embed_mmd"
    of = staticmethod(mmd_rbf)


class EmbedFrechet(_EmbeddingMeasure):
    name: ClassVar[str] = "embed_frechet"
    of = staticmethod(frechet_distance)


class BaseBitsPerByte:
    name: ClassVar[str] = "base_bits_per_byte"
    needs: ClassVar[str] = "model"

    def compute(self, c: Comparison) -> float | None:
        ev = c.model_eval()
        return None if ev is None else ev.bits_per_byte


class RareTokenRate:
    name: ClassVar[str] = "rare_token_rate"
    needs: ClassVar[str] = "words"

    def compute(self, c: Comparison) -> float:
        return rare_rate(c.counts, c.reference_freq, c.rare_threshold)


def measure_details(measure: Measure, c: Comparison) -> dict:
    """The optional detail fields of ``measure`` (see :class:`Measure`)."""
    details = getattr(measure, "details", None)
    return details(c) if details is not None else {}


SIMILARITY_MEASURES: Registry[Measure] = Registry("similarity measure", Measure, [
    JSDivergence(), NgramOverlap(), EmbedCosineOfMeans(), EmbedMMD(), EmbedFrechet(), BaseBitsPerByte(),
    RareTokenRate(),
])
MEASURES: tuple[str, ...] = tuple(SIMILARITY_MEASURES.names())
