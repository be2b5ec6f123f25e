"""The predictor with the learning rate as an input: grouped leave-one-domain-out against
an independent computation, the rate's products with the measures, the largest safe rate,
and the split accuracy figures."""

import math

import numpy as np
import pytest

from odyssey.analysis.config import PredictorFitConfig
from odyssey.analysis.predictor import (
    LR_FEATURE,
    choose_lambda_grouped,
    fit_predictor,
    group_loo_predictions,
    judged,
    largest_safe_rate,
    nested_group_loo,
    predict,
)
from odyssey.errors import DataError

RATIOS = (1.0, 2.5, 5.0, 10.0)


def cells(n_domains: int = 7, noise: float = 0.0, seed: int = 0) -> list[dict]:
    """Cells whose log change is -0.3 * distance + 0.08 * distance' * ln(ratio): near domains
    (distance < 0) get worse at high rates, far ones gain more."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_domains):
        dist = -1.0 + 2.0 * i / (n_domains - 1)  # standardized "distance" from the pretraining data
        for q in RATIOS:
            y = -0.3 * (dist + 1.2) - 0.08 * dist * math.log(q) + 0.05 * math.log(q) + noise * rng.normal()
            rows.append({"name": f"d{i}", "study": "s", "kind": "k", "lr": 2e-4 * q, "lr_ratio": q,
                         "delta_ppl_pct": 100 * math.expm1(y), "forgetting_pct": 1.0,
                         "features": {"base_bits_per_byte": 2.0 + dist, "js_divergence": 0.3 + 0.1 * dist}})
    return rows


def naive_group_loo(X, y, groups, lam):
    """Refit by hand, standardizing on the training rows only, for each held-out group."""
    preds = np.empty(len(y))
    for g in set(groups):
        out = np.array([x == g for x in groups])
        Xt, yt = X[~out], y[~out]
        mu, sd = Xt.mean(0), Xt.std(0)
        sd[sd == 0] = 1
        Z = (Xt - mu) / sd
        b = np.linalg.solve(Z.T @ Z + lam * np.eye(Z.shape[1]), Z.T @ (yt - yt.mean()))
        preds[out] = yt.mean() + ((X[out] - mu) / sd) @ b
    return preds


def test_group_loo_holds_every_cell_of_a_domain_out_as_a_direct_refit_does():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    groups = [i // 4 for i in range(20)]
    for lam in (0.01, 1.0, 30.0):
        assert np.allclose(group_loo_predictions(X, y, groups, lam), naive_group_loo(X, y, groups, lam))
    # one row per group: the closed-form shortcut (scales fixed on all rows) is used
    single = list(range(20))
    from odyssey.analysis.predictor import ridge_loo_residuals

    assert np.allclose(group_loo_predictions(X, y, single, 1.0), y - ridge_loo_residuals(X, y, 1.0))


def test_nested_group_loo_never_sees_the_held_out_domain():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(24, 2)), rng.normal(size=24)
    groups = [i // 4 for i in range(24)]
    preds, lams = nested_group_loo(X, y, groups, [0.1, 1.0, 10.0])
    assert len(lams) == 6
    y2 = y.copy()
    y2[:4] += 100.0  # change only the first domain's targets
    preds2, _ = nested_group_loo(X, y2, groups, [0.1, 1.0, 10.0])
    assert np.allclose(preds[:4], preds2[:4])  # its own predictions cannot depend on them
    lam, mse = choose_lambda_grouped(X, y, groups, [0.1, 1.0, 10.0])
    assert lam in (0.1, 1.0, 10.0) and len(mse) == 3


def test_fit_adds_the_rate_and_its_products_and_recovers_the_interaction():
    fit = fit_predictor(cells(), PredictorFitConfig(features=["base_bits_per_byte", "js_divergence"]))
    assert fit["features"] == ["base_bits_per_byte", "js_divergence", LR_FEATURE,
                               f"base_bits_per_byte×{LR_FEATURE}", f"js_divergence×{LR_FEATURE}"]
    assert fit["learning_rate"]["ratios"] == list(RATIOS)
    loo = fit["targets"]["delta_ppl_pct"]["loo"]
    assert loo["n"] == 28 and loo["domains"] == 7
    assert loo["spearman"] > 0.95 and loo["sign_accuracy"] >= 0.9
    near = {"base_bits_per_byte": 1.0, "js_divergence": 0.2}
    far = {"base_bits_per_byte": 3.0, "js_divergence": 0.4}
    p = lambda f, q: predict(fit, {**f, LR_FEATURE: math.log(q)})["predicted_delta_ppl_pct"]  # noqa: E731
    assert p(near, 10.0) > p(near, 1.0)  # near: a higher rate makes it worse
    assert p(far, 10.0) < p(far, 1.0)  # far: a higher rate helps more
    with pytest.raises(DataError, match="learning rate"):
        predict(fit, near)


def test_one_rate_keeps_the_old_fit_and_no_rate_feature():
    rows = [r for r in cells() if r["lr_ratio"] == 1.0]
    fit = fit_predictor(rows, PredictorFitConfig(features=["base_bits_per_byte"]))
    assert fit["features"] == ["base_bits_per_byte"] and fit["learning_rate"] is None
    with pytest.raises(DataError, match="one learning rate"):
        largest_safe_rate(fit, {"base_bits_per_byte": 2.0})


def test_largest_safe_rate_is_the_last_grid_point_predicted_below_zero():
    fit = fit_predictor(cells(), PredictorFitConfig(features=["base_bits_per_byte"]))
    for bpb in (1.0, 1.6, 2.0, 3.0):
        safe = largest_safe_rate(fit, {"base_bits_per_byte": bpb})
        grid = safe["grid"]
        assert [g["ratio"] for g in grid] == sorted(g["ratio"] for g in grid)
        assert grid[0]["ratio"] == pytest.approx(1.0) and grid[-1]["ratio"] == pytest.approx(10.0)
        below = [g["ratio"] for g in grid if g["predicted_delta_ppl_pct"] < 0]
        assert safe["ratio"] == (max(below) if below else None)
    assert largest_safe_rate(fit, {"base_bits_per_byte": 3.0})["ratio"] == pytest.approx(10.0)


def test_judged_splits_accuracy_by_what_happened():
    j = judged([5.0, 3.0, -2.0, -10.0, -1.0], [1.0, -1.0, -3.0, -8.0, 2.0])
    assert (j["worse"], j["improved"]) == (2, 3)
    assert j["sign_accuracy_worse"] == pytest.approx(0.5)
    assert j["sign_accuracy_improved"] == pytest.approx(2 / 3)
    from scipy.stats import spearmanr

    assert j["spearman"] == pytest.approx(spearmanr([5, 3, -2, -10, -1], [1, -1, -3, -8, 2]).statistic)
    assert judged([-1.0, -2.0, -3.0], [-1.0, -2.0, -3.0])["sign_accuracy_worse"] is None
