"""Exact intervals and tests of 0/1 outcomes, checked against independent computations
(closed forms, binomial sums with math.comb, scipy's beta quantiles)."""

from __future__ import annotations

import math

import pytest
from scipy.stats import beta

from odyssey.analysis.probes.stats import binomial_interval, bootstrap_mean, mcnemar_exact


def _binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _clopper_pearson_by_bisection(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The interval's definition solved numerically: lo is the rate at which k or more
    successes have probability alpha/2, hi the rate at which k or fewer do."""
    alpha = (1 - confidence) / 2

    def solve(f):  # f increasing in p on [0, 1]
        lo, hi = 0.0, 1.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return (lo + hi) / 2

    low = 0.0 if k == 0 else solve(lambda p: (1 - _binom_cdf(k - 1, n, p)) - alpha)
    high = 1.0 if k == n else solve(lambda p: alpha - _binom_cdf(k, n, p))
    return low, high


def test_zero_of_32_has_a_real_upper_bound_where_the_bootstrap_collapses():
    rate, lo, hi = binomial_interval(0, 32, 0.95)
    assert (rate, lo) == (0.0, 0.0)
    assert hi == pytest.approx(1 - 0.025 ** (1 / 32), rel=1e-9)  # closed form at k = 0: 0.1089
    assert bootstrap_mean([0] * 32, n_boot=500)[1:] == (0.0, 0.0)  # what was reported before


@pytest.mark.parametrize(("k", "n", "confidence"), [(0, 32, 0.95), (1, 32, 0.95), (5, 20, 0.9), (16, 32, 0.95),
                                                    (31, 32, 0.99), (32, 32, 0.95), (3, 7, 0.8)])
def test_clopper_pearson_matches_its_definition_and_the_beta_form(k, n, confidence):
    rate, lo, hi = binomial_interval(k, n, confidence)
    assert rate == k / n
    want_lo, want_hi = _clopper_pearson_by_bisection(k, n, confidence)
    assert (lo, hi) == pytest.approx((want_lo, want_hi), abs=1e-9)
    alpha = 1 - confidence
    beta_lo = 0.0 if k == 0 else beta.ppf(alpha / 2, k, n - k + 1)
    beta_hi = 1.0 if k == n else beta.ppf(1 - alpha / 2, k + 1, n - k)
    assert (lo, hi) == pytest.approx((beta_lo, beta_hi), abs=1e-9)


def test_empty_rate_is_undefined():
    assert all(math.isnan(v) for v in binomial_interval(0, 0))


def _mcnemar_naive(gained: int, lost: int) -> float:
    """Two-sided exact p-value: twice the smaller binomial tail, at most 1."""
    m = gained + lost
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(gained, lost) + 1)) / 2**m
    return min(1.0, 2 * tail)


@pytest.mark.parametrize(("after", "before"), [
    ([1] * 6 + [0] * 26, [0] * 32),  # 6 gained: p = 2 / 64
    ([1] * 3 + [0] * 29, [0] * 32),  # 3 of 3: p = 0.25, not significant
    ([0] * 32, [0] * 32),  # nothing discordant
    ([1, 0, 1, 0, 1, 1, 0, 0, 1, 1], [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]),
])
def test_mcnemar_exact_against_the_binomial_sum(after, before):
    r = mcnemar_exact(after, before)
    gained = sum(a and not b for a, b in zip(after, before, strict=True))
    lost = sum(b and not a for a, b in zip(after, before, strict=True))
    assert (r["gained"], r["lost"]) == (gained, lost)
    assert r["p_value"] == pytest.approx(_mcnemar_naive(gained, lost), rel=1e-12)


def test_mcnemar_known_values():
    assert mcnemar_exact([1] * 6 + [0] * 26, [0] * 32)["p_value"] == pytest.approx(2 / 2**6)
    assert mcnemar_exact([0] * 32, [0] * 32)["p_value"] == 1.0
