"""Intervals and tests the probes report: percentile-bootstrap intervals of means, exact
(Clopper-Pearson) intervals of 0/1 rates, and the exact McNemar test of a paired change
of a 0/1 outcome. (The AUROC is :func:`odyssey.evaluate.metrics.auroc`.)

A percentile bootstrap of a rate collapses to ``[0, 0]`` when nothing happened (0 of 32):
every resample is 0 as well. The exact binomial interval says what 0 of 32 allows (up to
10.9% at 95%). Every bootstrap interval is seeded: the same data, seed and ``n_boot``
give the same interval.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def _quantiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_mean(x, *, paired_with=None, clusters=None, n_boot: int = 2000,
                   confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)`` of ``mean(x)``, or of ``mean(x) - mean(y)`` when
    ``paired_with=y`` (``y[i]`` measured on the same item as ``x[i]``: both are
    resampled with the same indices, so what the items share cancels).

    ``clusters`` (one label per item) resamples whole clusters with replacement (e.g.
    all pairs of one template), for items that are not independent within a cluster.

    >>> rate, lo, hi = bootstrap_mean([1, 0, 1, 1], n_boot=1000)
    """
    x = np.asarray(x, dtype=np.float64)
    d = x if paired_with is None else x - np.asarray(paired_with, dtype=np.float64)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    # With clusters, the mean of a resample is sum(cluster sums) / sum(cluster sizes);
    # without, every item is its own cluster of size one.
    labels = np.arange(d.size) if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1]
    sums = np.bincount(labels, weights=d)
    sizes = np.bincount(labels).astype(np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, sums.size, size=(n_boot, sums.size))
    stats = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    return float(d.mean()), *_quantiles(stats, confidence)


def bootstrap_gap(member, nonmember, *, paired_member=None, paired_nonmember=None, n_boot: int = 2000,
                  confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)`` of ``mean(nonmember) - mean(member)``, the two
    groups resampled independently.

    With ``paired_*`` (the same documents measured under a second model), the statistic is
    the difference of the two gaps, ``gap(x) - gap(paired)``, each resample using the same
    documents for both models.
    """
    a = np.asarray(member, dtype=np.float64)
    b = np.asarray(nonmember, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan"), float("nan")
    if paired_member is not None:
        a = a - np.asarray(paired_member, dtype=np.float64)
        b = b - np.asarray(paired_nonmember, dtype=np.float64)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = rng.integers(0, b.size, size=(n_boot, b.size))
    stats = b[ib].mean(axis=1) - a[ia].mean(axis=1)
    return float(b.mean() - a.mean()), *_quantiles(stats, confidence)


def binomial_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(rate, ci_low, ci_high)`` of ``successes`` out of ``n`` with the exact
    (Clopper-Pearson) interval: it covers the true rate at least ``confidence`` of the time,
    also at 0 or ``n`` successes, where the bootstrap interval shrinks to a point.

    >>> binomial_interval(0, 32)   # (0.0, 0.0, 0.1089...)
    """
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return successes / n, float(ci.low), float(ci.high)


def mcnemar_exact(after, before) -> dict:
    """The exact McNemar test of a change of a 0/1 outcome measured twice on the same items.

    Only discordant items tell: ``gained`` (1 after, 0 before) and ``lost`` (0 after, 1
    before). With no change, each discordant item is equally likely to be either, so
    ``gained ~ Binomial(gained + lost, 1/2)``; the two-sided p-value is that of the exact
    binomial test (1.0 when nothing is discordant).

    >>> mcnemar_exact([1, 1, 0, 1], [0, 0, 0, 1])   # {'gained': 2, 'lost': 0, 'p_value': 0.5}
    """
    a = np.asarray(after, dtype=bool)
    b = np.asarray(before, dtype=bool)
    gained, lost = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(gained, gained + lost, 0.5).pvalue if gained + lost else 1.0
    return {"gained": gained, "lost": lost, "p_value": float(p)}


def excludes(value: float, lo: float, hi: float) -> bool | None:
    """Whether the interval ``[lo, hi]`` leaves out ``value`` (None if it is undefined)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return bool(value < lo or value > hi)
