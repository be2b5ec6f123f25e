"""The adapt-or-rely predictor: ridge regression against numpy's least squares and naive
refit loops, the decision rule as a table, and `diagnose fit` on a hand-written study."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from odyssey.analysis.config import DecisionConfig, DiagnoseConfig, PredictorFitConfig
from odyssey.analysis.diagnose import load_study_features, settings_hash
from odyssey.analysis.predictor import (
    choose_lambda,
    decide,
    fit_predictor,
    load_fit,
    nested_loo,
    predict,
    predictor_section,
    ridge_fit,
    ridge_loo_residuals,
    sign_accuracy,
    standardization,
)
from odyssey.cli import run
from odyssey.errors import ConfigError, DataError
from odyssey.io import read_json, write_json

LAMBDAS = [10.0 ** (k / 2) for k in range(-6, 9)]


def synthetic(n=12, p=3, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * [1.0, 5.0, 0.2][:p] + [0.0, 10.0, -1.0][:p]
    y = 2.0 + X @ np.array([1.5, -0.3, 4.0][:p]) + noise * rng.normal(size=n)
    return X, y


# -- ridge --------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.0, 0.7, 25.0])
def test_ridge_matches_augmented_least_squares(lam):
    X, y = synthetic()
    m = ridge_fit(X, y, lam)
    mean, scale = X.mean(0), X.std(0)
    Z = (X - mean) / scale
    # Ridge = least squares on [Z; sqrt(lam) I] b = [y - mean(y); 0]; the intercept is mean(y).
    A = np.vstack([Z, np.sqrt(lam) * np.eye(3)])
    b = np.linalg.lstsq(A, np.concatenate([y - y.mean(), np.zeros(3)]), rcond=None)[0]
    np.testing.assert_allclose(m.coef, b, rtol=1e-10, atol=1e-12)
    assert m.intercept == pytest.approx(y.mean())
    np.testing.assert_allclose(m.predict(X), y.mean() + Z @ b, rtol=1e-10)


def test_ridge_without_penalty_is_ordinary_least_squares_on_raw_features():
    X, y = synthetic()
    w = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), y, rcond=None)[0]
    new = np.array([[0.3, 9.0, -1.1], [1.0, 12.0, -0.8]])
    np.testing.assert_allclose(ridge_fit(X, y, 0.0).predict(new), w[0] + new @ w[1:], rtol=1e-9)


def test_constant_feature_has_no_effect():
    X, y = synthetic()
    Xc = np.column_stack([X, np.full(len(X), 3.0)])
    assert standardization(Xc)[1][-1] == 1.0
    np.testing.assert_allclose(ridge_fit(Xc, y, 1.0).predict(Xc), ridge_fit(X, y, 1.0).predict(X), rtol=1e-10)


@pytest.mark.parametrize("lam", [0.0, 0.5, 10.0])
def test_loo_shortcut_matches_naive_refit_loop(lam):
    X, y = synthetic(n=9)
    _, scale = standardization(X)
    naive = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        naive.append(y[i] - ridge_fit(X[keep], y[keep], lam, scale=scale).predict(X[i:i + 1])[0])
    np.testing.assert_allclose(ridge_loo_residuals(X, y, lam), naive, rtol=1e-8, atol=1e-10)


def test_nested_loo_matches_naive_double_loop():
    X, y = synthetic(n=8, noise=1.0)
    preds, lams = nested_loo(X, y, LAMBDAS)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        Xi, yi = X[keep], y[keep]
        _, scale = standardization(Xi)
        # choose lambda by an explicit inner refit loop on the other domains only
        mse = []
        for lam in LAMBDAS:
            inner = [yi[j] - ridge_fit(np.delete(Xi, j, 0), np.delete(yi, j), lam, scale=scale).predict(Xi[j:j + 1])[0]
                     for j in range(len(yi))]
            mse.append(np.mean(np.square(inner)))
        best = max(lam for lam, m in zip(LAMBDAS, mse, strict=True) if m <= min(mse) * (1 + 1e-9))
        assert lams[i] == best
        assert preds[i] == pytest.approx(ridge_fit(Xi, yi, best).predict(X[i:i + 1])[0], rel=1e-10)


def test_lambda_choice_follows_the_signal():
    X, y = synthetic(n=12, noise=0.05)
    assert choose_lambda(X, y, LAMBDAS)[0] <= 1.0
    rng = np.random.default_rng(3)
    noise = rng.normal(size=12)
    assert choose_lambda(X, noise, LAMBDAS)[0] >= 100.0  # no signal: shrink to the mean


def test_sign_accuracy():
    assert sign_accuracy([1, -1, 2, -3], [0.5, -0.1, -1, -2]) == 0.75
    assert sign_accuracy([0.0], [-1.0]) == 1.0  # zero counts as "not worse"


# -- the decision rule ------------------------------------------------------------------------
@pytest.mark.parametrize("p, w, f, expected, mitigations", [
    (-10.0, 3.0, 2.0, "adapt", []),                 # interval below zero
    (-2.0, 1.5, None, "adapt", []),                 # small but beyond the half-width
    (-6.0, 8.0, 2.0, "adapt", []),                  # interval holds zero, but clearly negative (<= -5)
    (-5.0, 8.0, 2.0, "adapt", []),                  # exactly at -clear_gain_pct
    (-10.0, 3.0, 15.0, "mitigate", ["replay"]),     # gain bought with forgetting
    (-10.0, 3.0, 10.0, "adapt", []),                # forgetting at the threshold is tolerated
    (4.0, 3.0, 2.0, "rely", []),                    # interval above zero
    (4.0, 3.0, 50.0, "rely", []),                   # worse both ways
    (1.0, 3.0, 2.0, "mitigate", ["normalize"]),     # too close to call
    (-1.0, 3.0, None, "mitigate", ["normalize"]),
    (1.0, 3.0, 20.0, "mitigate", ["normalize", "replay"]),
    (3.0, 3.0, 0.0, "mitigate", ["normalize"]),     # lo == 0 is not "above zero"
])
def test_decision_table(p, w, f, expected, mitigations):
    d = decide(p, (p - w, p + w), f, DecisionConfig(clear_gain_pct=5.0, forgetting_max_pct=10.0))
    assert d["recommendation"] == expected
    assert d["mitigations"] == mitigations
    assert d["mitigation"] == (mitigations[0] if mitigations else None)
    assert d["reason"]


# -- fit files --------------------------------------------------------------------------------
FEATS = ["ngram_overlap", "js_divergence", "base_bits_per_byte"]


def rows(n=9, seed=0):
    """Synthetic domains: the more n-gram overlap with the pretraining data, the worse."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        overlap = i / (n - 1)
        out.append({"name": f"d{i}", "study": "s", "kind": "custom", "path": f"/nowhere/d{i}",
                    "delta_ppl_pct": -30 + 40 * overlap + rng.normal(0, 2),
                    "forgetting_pct": 5 - 3 * overlap + rng.normal(0, 0.5),
                    "features": {"ngram_overlap": overlap, "js_divergence": 0.6 - 0.5 * overlap + rng.normal(0, 0.05),
                                 "base_bits_per_byte": 2.5 - overlap + rng.normal(0, 0.1), "embed_mmd": None,
                                 "rare_token_rate": float(rng.uniform(0, 0.1))}})
    return out


def test_fit_predictor_records_what_it_learned():
    r = rows()
    fit = fit_predictor(r, PredictorFitConfig(features=[*FEATS, "embed_mmd"], lambdas=LAMBDAS))
    assert fit["features"] == FEATS and "embed_mmd" in fit["notes"][0]
    t = fit["targets"]["delta_ppl_pct"]
    assert set(t) >= {"lambda", "intercept", "coefficients", "standardization", "loo", "interval"}
    assert t["coefficients"]["ngram_overlap"] > 0
    assert t["loo"]["sign_accuracy"] >= 0.8 and t["loo"]["mae"] < t["loo"]["mae_mean_only"]
    X = np.array([[d["features"][f] for f in FEATS] for d in r])
    y = np.array([d["delta_ppl_pct"] for d in r])
    ylog = np.log(1 + y / 100)  # regressed as log perplexity ratios
    loo_log, _ = nested_loo(X, ylog, LAMBDAS)
    loo = 100 * (np.exp(loo_log) - 1)
    np.testing.assert_allclose([d["loo_delta_ppl_pct"] for d in fit["domains"]], loo)
    assert t["loo"]["mae"] == pytest.approx(np.mean(np.abs(y - loo)))
    assert t["loo"]["mae_log"] == pytest.approx(np.mean(np.abs(ylog - loo_log)))
    assert t["interval"]["half_width_log"] == pytest.approx(np.quantile(np.abs(ylog - loo_log), 0.8))
    assert "forgetting_pct" in fit["targets"]
    json.dumps(fit)  # plain data


def test_predict_explains_itself():
    fit = fit_predictor(rows(), PredictorFitConfig(features=FEATS, lambdas=LAMBDAS))
    x = {"ngram_overlap": 0.95, "js_divergence": 0.1, "base_bits_per_byte": 1.6}
    out = predict(fit, x)
    contrib = sum(f["contribution_log"] for f in out["features"])
    assert out["predicted_delta_ppl_pct"] == pytest.approx(100 * (np.exp(out["intercept_log"] + contrib) - 1))
    factors = np.prod([1 + f["contribution_pct"] / 100 for f in out["features"]])
    assert 1 + out["predicted_delta_ppl_pct"] / 100 == pytest.approx((1 + out["intercept_pct"] / 100) * factors)
    w = fit["targets"]["delta_ppl_pct"]["interval"]["half_width_log"]
    p = out["predicted_log_ratio"]
    assert out["interval"] == pytest.approx([100 * np.expm1(p - w), 100 * np.expm1(p + w)])
    assert out["interval"][0] > -100
    ng = next(f for f in out["features"] if f["name"] == "ngram_overlap")
    assert ng["direction"] == "worse" and not ng["outside_training_range"]
    far = predict(fit, {**x, "ngram_overlap": 3.0})
    assert next(f for f in far["features"] if f["name"] == "ngram_overlap")["outside_training_range"]
    with pytest.raises(DataError, match="base_bits_per_byte"):
        predict(fit, {**x, "base_bits_per_byte": None})


def test_impossible_changes_are_refused():
    r = rows()
    r[0]["delta_ppl_pct"] = -100.0
    with pytest.raises(DataError, match="-100%"):
        fit_predictor(r, PredictorFitConfig(features=FEATS))


def test_too_few_domains_is_a_clear_error():
    with pytest.raises(DataError, match="at least 4"):
        fit_predictor(rows(3), PredictorFitConfig(features=FEATS))


def test_load_fit_checks_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_fit(tmp_path / "none.json")
    write_json(tmp_path / "bad.json", {"hello": 1})
    with pytest.raises(ConfigError, match="not a predictor fit"):
        load_fit(tmp_path / "bad.json")


def test_predictor_section_against_scipy():
    r = rows()
    fit = fit_predictor(r, PredictorFitConfig(features=FEATS, lambdas=LAMBDAS))
    results = {"domains": [{k: d[k] for k in ("name", "kind", "delta_ppl_pct", "forgetting_pct")} for d in r]
               + [{"name": "unmeasured", "delta_ppl_pct": 1.0}]}
    sec = predictor_section(results, fit)
    assert sec["available"] and len(sec["points"]) == 9 and "unmeasured" in sec["notes"][0]
    by = {m["measure"]: m for m in sec["measures"]}
    ref = spearmanr([d["features"]["js_divergence"] for d in r], [d["delta_ppl_pct"] for d in r])
    assert by["js_divergence"]["rho"] == pytest.approx(ref.statistic)
    assert by["js_divergence"]["p_value"] == pytest.approx(ref.pvalue)
    assert by["embed_mmd"]["rho"] is None and by["embed_mmd"]["n"] == 0
    assert by["ngram_overlap"]["used_by_fit"] and not by["rare_token_rate"]["used_by_fit"]
    assert sec["loo"]["sign_accuracy"] == fit["targets"]["delta_ppl_pct"]["loo"]["sign_accuracy"]
    assert all(p["loo_predicted"] is not None for p in sec["points"])
    assert predictor_section(results, None)["available"] is False
    other = {"domains": [{**results["domains"][0], "delta_ppl_pct": 99.0}]}  # same name, another study
    assert predictor_section(other, fit)["points"][0]["loo_predicted"] is None


# -- `odyssey diagnose fit` on a hand-written study -----------------------------------------------
def write_study(study, r, general="/nowhere/general", model="/nowhere/model"):
    write_json(study / "results.json", {
        "study": {"name": "synthetic", "model": model, "general": general, "recipe": None},
        "base": {},
        "domains": [{k: d[k] for k in ("name", "kind", "path", "delta_ppl_pct", "forgetting_pct")} | {"status": "done"}
                    for d in r]})
    key = {"general": general, "general_sha256": None, "model": model, "model_sha256": None,
           "settings": settings_hash(DiagnoseConfig())}
    write_json(study / "features.json", {"format": 1, "domains": {
        d["name"]: {"key": {**key, "path": d["path"], "data_sha256": None}, "features": d["features"]} for d in r}})


def test_diagnose_fit_on_a_synthetic_study(tmp_path, capsys):
    study = tmp_path / "study"
    r = rows()
    write_study(study, r)
    out = tmp_path / "fit.json"
    # Nothing exists at /nowhere: the features must come from features.json, nothing is measured.
    code = run(["diagnose", "fit", str(study), "--out", str(out), "--features", ",".join(FEATS), "--json"])
    assert code == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    fit = read_json(out)
    assert printed["features"] == fit["features"] == FEATS
    assert fit["studies"][0]["dir"] == str(study) and fit["studies"][0]["domains"] == 9
    assert [d["name"] for d in fit["domains"]] == [d["name"] for d in r]
    assert fit["targets"]["delta_ppl_pct"]["loo"]["sign_accuracy"] >= 0.8
    assert fit["measurement"]["settings_hash"] == settings_hash(DiagnoseConfig())
    assert load_fit(out)["_path"] == str(out)
    # the report section from the study's own features.json
    sec = predictor_section(read_json(study / "results.json"), load_fit(out), load_study_features(study))
    assert len(sec["points"]) == 9 and sec["measures"][0]["rho"] is not None
    assert load_study_features(tmp_path) == {}
    # a human-readable run prints the leave-one-out table
    assert run(["diagnose", "fit", str(study), "--out", str(out), "--features", ",".join(FEATS)]) == 0
    assert "sign accuracy" in capsys.readouterr().out


def test_diagnose_fit_errors_are_one_line(tmp_path, capsys):
    assert run(["diagnose", "fit", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.json" in err and "Traceback" not in err
    study = tmp_path / "s"
    write_study(study, rows(3))
    assert run(["diagnose", "fit", str(study)]) == 2
    assert "at least 4" in capsys.readouterr().err
