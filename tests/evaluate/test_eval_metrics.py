"""The AUROC (one definition for detection and membership) against scipy's Mann-Whitney U
and a pairwise count."""

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from odyssey.evaluate.metrics import auroc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_is_mann_whitney_u_over_the_pairs(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 6, size=41).astype(float)  # few distinct values: many ties
    neg = np.concatenate([rng.normal(2.0, 1.5, size=30), [3.0, 3.0]])
    u = mannwhitneyu(pos, neg, alternative="two-sided").statistic  # U of the first sample
    assert auroc(pos, neg) == pytest.approx(u / (pos.size * neg.size), abs=1e-12)
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert auroc(pos, neg) == pytest.approx(pairs / (pos.size * neg.size), abs=1e-12)


def test_auroc_edges():
    assert auroc([3, 4], [1, 2]) == 1.0 and auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 1], [1]) == 0.5  # all tied
    assert math.isnan(auroc([], [1.0])) and math.isnan(auroc([1.0], []))
    # Swapping the sets mirrors the area.
    assert auroc([0.2, 0.9, 0.4], [0.1, 0.5]) == pytest.approx(1 - auroc([0.1, 0.5], [0.2, 0.9, 0.4]))
