"""The adapt-or-rely predictor: from how much a domain resembles the base model's
pretraining data, predict the change of in-domain perplexity that one epoch of
additional pretraining will bring, before spending the compute.

The model is deliberately small, because a study has about ten domains: ridge
regression on standardized features, closed form,

    z_j = (x_j - mean_j) / scale_j              (mean and scale of the training domains)
    b   = (Z'Z + lambda I)^-1 Z'(y - mean(y))   (intercept = mean(y), not penalized)
    y^  = mean(y) + z . b

with ``lambda`` chosen by leave-one-out squared error (:func:`choose_lambda`, using the
exact hat-matrix shortcut :func:`ridge_loo_residuals`). It is judged honestly by
:func:`nested_loo`: every domain is predicted by a model that never saw it, with the
standardization and ``lambda`` chosen again without it. The prediction interval is ±
the ``interval_level`` quantile of those absolute leave-one-domain-out residuals.

Two targets are fitted on the same features: ``delta_ppl_pct`` (in-domain test
perplexity after vs before, in %) and ``forgetting_pct`` (the same on the general
corpus); :func:`decide` turns both into a recommendation. Both are regressed as log
perplexity ratios, ``ln(after / before) = ln(1 + pct / 100)``, and turned back into %:
perplexity changes multiply, and a change in % is bounded below by -100 (a linear fit
in % predicted -107% for a domain of the default world). So the interval is symmetric
in log space and asymmetric in %, and a feature's contribution multiplies perplexity.

The learning rate. When the studies ran several peak learning rates, each row is one
cell (domain × rate), and the fit adds ``log_lr_ratio = ln(lr / the base's final
pretraining rate)`` and its product with each measure (``measure×log_lr_ratio``), so
the rate's effect may depend on how similar the domain is. Every judgement is then
*leave-one-domain-out*: all cells of a domain are held out together (a domain's cells
share their similarity measures, so leaving one cell out would leak the others), with
the penalty chosen by the same grouped cross-validation on the remaining domains.
:func:`largest_safe_rate` scans the studied range of rates for the largest one
predicted not to make in-domain perplexity worse.

A fit is a plain JSON file (:func:`fit_predictor` writes its content; the shipped one is
``odyssey/assets/predictor/default-fit.json``):

>>> fit = fit_predictor(rows, PredictorFitConfig())
>>> predict(fit, {"ngram_overlap": 0.8, "js_divergence": 0.1, ...})["predicted_delta_ppl_pct"]
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odyssey.analysis.config import DecisionConfig, PredictorFitConfig
from odyssey.errors import ConfigError, DataError

TARGETS = ("delta_ppl_pct", "forgetting_pct")
PROBE_FEATURE = "probe_delta_ppl_pct"
LR_FEATURE = "log_lr_ratio"
INTERACTION = "×"  # "embed_mmd×log_lr_ratio": a measure times the log rate ratio
FIT_FORMAT = 2  # 2: cells of domain × learning rate, grouped leave-one-domain-out
DEFAULT_FIT = Path(__file__).resolve().parent.parent / "assets" / "predictor" / "default-fit.json"


# -- ridge regression ---------------------------------------------------------------------
@dataclass
class Ridge:
    """A fitted ridge regression: ``predict(X) = intercept + ((X - mean) / scale) @ coef``."""

    mean: np.ndarray  # (p,)
    scale: np.ndarray  # (p,)
    coef: np.ndarray  # (p,) per standard deviation of each feature
    intercept: float
    lam: float

    def z(self, X: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(np.asarray(X, np.float64)) - self.mean) / self.scale

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.intercept + self.z(X) @ self.coef


def standardization(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (ddof 0) of ``X`` (n, p); a constant column
    gets scale 1, so it stays at z = 0 and has no effect."""
    X = np.asarray(X, np.float64)
    mean, scale = X.mean(0), X.std(0)
    return mean, np.where(scale > 1e-12 * np.maximum(1.0, np.abs(mean)), scale, 1.0)


def ridge_fit(X: np.ndarray, y: np.ndarray, lam: float, scale: np.ndarray | None = None) -> Ridge:
    """Ridge regression of ``y`` (n,) on ``X`` (n, p), closed form (see the module
    docstring). ``scale`` fixes the feature scales (default: their standard deviations
    in ``X``); the centering is always ``X``'s own, which, the intercept being
    unpenalized, does not change the coefficients.

    >>> ridge_fit(np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0]), lam=0).coef
    array([1.63299316])
    """
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    mean, own_scale = standardization(X)
    scale = own_scale if scale is None else np.asarray(scale, np.float64)
    Z = (X - mean) / scale
    coef = np.linalg.solve(Z.T @ Z + lam * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))
    return Ridge(mean, scale, coef, float(y.mean()), float(lam))


def ridge_loo_residuals(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Leave-one-out residuals ``y_i - y^_(-i)`` of :func:`ridge_fit` with the scales of
    all of ``X`` held fixed, without refitting: ``e_i / (1 - H_ii)`` with the hat matrix
    ``H = 11'/n + Z (Z'Z + lambda I)^-1 Z'`` (exact for penalized least squares with an
    unpenalized intercept)."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    n = len(y)
    mean, scale = standardization(X)
    Z = (X - mean) / scale
    H = np.full((n, n), 1.0 / n) + Z @ np.linalg.solve(Z.T @ Z + lam * np.eye(Z.shape[1]), Z.T)
    resid = y - H @ y
    return resid / (1.0 - np.diag(H))


def choose_lambda(X: np.ndarray, y: np.ndarray, lambdas: Sequence[float]) -> tuple[float, list[float]]:
    """The penalty of ``lambdas`` with the smallest leave-one-out mean squared error (ties,
    within 1e-9 relative, to the larger penalty: the simpler model); also every MSE."""
    mse = [float(np.mean(ridge_loo_residuals(X, y, lam) ** 2)) for lam in lambdas]
    best = min(mse)
    candidates = [lam for lam, m in zip(lambdas, mse, strict=True) if m <= best * (1 + 1e-9) + 1e-300]
    return float(max(candidates)), mse


def nested_loo(X: np.ndarray, y: np.ndarray, lambdas: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """Leave-one-domain-out predictions (n,): domain ``i`` is predicted by a ridge fitted
    on the others, its standardization and penalty chosen on the others alone. Also the
    penalty chosen in each fold."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    n = len(y)
    preds, lams = np.empty(n), []
    for i in range(n):
        keep = np.arange(n) != i
        lam, _ = choose_lambda(X[keep], y[keep], lambdas)
        preds[i] = ridge_fit(X[keep], y[keep], lam).predict(X[i:i + 1])[0]
        lams.append(lam)
    return preds, lams


def group_loo_predictions(X: np.ndarray, y: np.ndarray, groups: Sequence, lam: float) -> np.ndarray:
    """Predictions (n,) of each group's rows by a ridge fitted on the other groups (its
    own standardization), at penalty ``lam``. With one row per group this is ordinary
    leave-one-out, computed with the exact shortcut of :func:`ridge_loo_residuals`."""
    X, y, groups = np.asarray(X, np.float64), np.asarray(y, np.float64), np.asarray(groups, dtype=object)
    if len(set(groups.tolist())) == len(groups):
        return y - ridge_loo_residuals(X, y, lam)
    preds = np.empty(len(y))
    for g in dict.fromkeys(groups.tolist()):
        out = groups == g
        preds[out] = ridge_fit(X[~out], y[~out], lam).predict(X[out])
    return preds


def choose_lambda_grouped(X: np.ndarray, y: np.ndarray, groups: Sequence,
                          lambdas: Sequence[float]) -> tuple[float, list[float]]:
    """:func:`choose_lambda` with leave-one-group-out errors (ties to the larger penalty)."""
    mse = [float(np.mean((np.asarray(y) - group_loo_predictions(X, y, groups, lam)) ** 2)) for lam in lambdas]
    best = min(mse)
    candidates = [lam for lam, m in zip(lambdas, mse, strict=True) if m <= best * (1 + 1e-9) + 1e-300]
    return float(max(candidates)), mse


def nested_group_loo(X: np.ndarray, y: np.ndarray, groups: Sequence,
                     lambdas: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """Leave-one-domain-out predictions (n,): each group is predicted by a ridge fitted on
    the other groups, its standardization and penalty chosen on them alone (the penalty
    by leave-one-group-out among them). Also the penalty chosen in each fold."""
    X, y, groups = np.asarray(X, np.float64), np.asarray(y, np.float64), np.asarray(groups, dtype=object)
    if len(set(groups.tolist())) == len(groups):
        return nested_loo(X, y, lambdas)
    preds, lams = np.empty(len(y)), []
    for g in dict.fromkeys(groups.tolist()):
        out = groups == g
        lam, _ = choose_lambda_grouped(X[~out], y[~out], groups[~out], lambdas)
        preds[out] = ridge_fit(X[~out], y[~out], lam).predict(X[out])
        lams.append(lam)
    return preds, lams


def to_log(pct):
    """A change in % as a log ratio: ``ln(1 + pct / 100)``."""
    return np.log1p(np.asarray(pct, np.float64) / 100.0)


def to_pct(log_ratio):
    """A log ratio as a change in %: ``100 (e^x - 1)``."""
    return 100.0 * np.expm1(np.asarray(log_ratio, np.float64))


def sign_accuracy(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """Share of domains whose predicted change has the actual change's direction (worse,
    i.e. > 0, or not worse)."""
    a, p = np.asarray(actual) > 0, np.asarray(predicted) > 0
    return float(np.mean(a == p))


def judged(actual: Sequence[float], predicted: Sequence[float]) -> dict:
    """How well held-out predictions did, split by what happened: the sign accuracy over
    the cells that got worse and over those that improved (each None when there is no
    such cell), and Spearman's rank correlation of predicted against measured change."""
    from scipy.stats import spearmanr

    a, p = np.asarray(actual, np.float64), np.asarray(predicted, np.float64)
    worse, better = a > 0, a <= 0
    rho = pval = None
    if len(a) >= 3 and len(set(a.tolist())) > 1 and len(set(p.tolist())) > 1:
        r = spearmanr(a, p)
        rho, pval = float(r.statistic), float(r.pvalue)
    return {"worse": int(worse.sum()), "improved": int(better.sum()),
            "sign_accuracy_worse": float(np.mean(p[worse] > 0)) if worse.any() else None,
            "sign_accuracy_improved": float(np.mean(p[better] <= 0)) if better.any() else None,
            "spearman": rho, "spearman_p": pval}


# -- fitting on study results -------------------------------------------------------------
def _matrix(rows: Sequence[Mapping], features: Sequence[str]) -> np.ndarray:
    return np.array([[float(r["features"][f]) for f in features] for r in rows], np.float64)


def _usable(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def with_learning_rate(measures: Sequence[str]) -> list[str]:
    """The feature names of a fit with the learning rate: the measures, the log rate ratio,
    and each measure's product with it."""
    return [*measures, LR_FEATURE, *(f"{m}{INTERACTION}{LR_FEATURE}" for m in measures)]


def expand(features: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    """``features`` with the products a fit's ``names`` ask for (``a×b`` = a · b)."""
    out = dict(features)
    for name in names:
        if INTERACTION in name and name not in out:
            a, b = name.split(INTERACTION, 1)
            if _usable(out.get(a)) and _usable(out.get(b)):
                out[name] = float(out[a]) * float(out[b])
    return out


def fit_target(X: np.ndarray, y_pct: np.ndarray, features: Sequence[str], config: PredictorFitConfig,
               groups: Sequence | None = None) -> dict:
    """Fit one target (changes in %, regressed as log ratios): the final ridge on every
    row, its nested leave-one-domain-out predictions (``groups``: the domain of each row;
    default one row per domain), errors (in % points and in log units) and interval (in
    log units), as the plain data of a fit file."""
    y_pct = np.asarray(y_pct, np.float64)
    if (y_pct <= -100).any():
        raise DataError("a perplexity change of -100% or less cannot be", "check the study's results.json")
    y = to_log(y_pct)
    groups = list(range(len(y))) if groups is None else list(groups)
    lam, mse = choose_lambda_grouped(X, y, groups, config.lambdas)
    model = ridge_fit(X, y, lam)
    loo, fold_lams = nested_group_loo(X, y, groups, config.lambdas)
    resid = y - loo
    loo_pct = to_pct(loo)
    garr = np.asarray(groups, dtype=object)
    mean_only = to_pct([y[garr != g].mean() for g in garr])  # the baseline to beat: the other domains' mean
    return {
        "scale": "log_ratio",
        "lambda": lam,
        "lambda_grid": [{"lambda": float(lm), "loo_mse": m} for lm, m in zip(config.lambdas, mse, strict=True)],
        "fold_lambdas": fold_lams,
        "intercept": model.intercept,
        "coefficients": dict(zip(features, model.coef.tolist(), strict=True)),
        "standardization": {"mean": dict(zip(features, model.mean.tolist(), strict=True)),
                            "scale": dict(zip(features, model.scale.tolist(), strict=True))},
        "loo_predictions": loo_pct.tolist(),
        "loo_predictions_log": loo.tolist(),
        "loo": {"n": len(y), "domains": len(set(groups)), "sign_accuracy": sign_accuracy(y_pct, loo_pct),
                **judged(y_pct, loo_pct),
                "mae": float(np.mean(np.abs(y_pct - loo_pct))),
                "rmse": float(np.sqrt(np.mean((y_pct - loo_pct) ** 2))),
                "mae_log": float(np.mean(np.abs(resid))),
                "mae_mean_only": float(np.mean(np.abs(y_pct - mean_only))),
                "sign_accuracy_mean_only": sign_accuracy(y_pct, mean_only)},
        "interval": {"level": config.interval_level,
                     "half_width_log": float(np.quantile(np.abs(resid), config.interval_level)),
                     "method": f"prediction ± the {config.interval_level:.0%} quantile of |leave-one-domain-out "
                               "residuals|, in log ratio"},
        "groups": [str(g) for g in groups],
    }


def fit_predictor(rows: Sequence[Mapping], config: PredictorFitConfig | None = None,
                  studies: Sequence[Mapping] = ()) -> dict:
    """The content of a fit file, from one row per training cell (a domain adapted at one
    learning rate)::

        {"name": str, "study": str, "kind": str, "delta_ppl_pct": float,
         "forgetting_pct": float | None, "features": {measure: value},
         "lr": float | None, "lr_ratio": float | None}

    Features missing (``None``) for any row are dropped, with a note; a target missing
    for any row is not fitted. With ``config.learning_rate`` and several rates among the
    rows (each with its ``lr_ratio``), the rate and its products join the features.

    >>> fit = fit_predictor(rows, PredictorFitConfig(features=["ngram_overlap"]))
    >>> fit["targets"]["delta_ppl_pct"]["loo"]["sign_accuracy"]
    """
    config = config or PredictorFitConfig()
    rows = list(rows)
    groups = [f"{r.get('study', '')}:{r['name']}" for r in rows]
    if len(set(groups)) < config.min_domains:
        raise DataError(f"the predictor needs at least {config.min_domains} done domains, got {len(set(groups))}",
                        "run a study with more domains, or give several study directories")
    notes = []
    ratios = [r.get("lr_ratio") for r in rows]
    use_lr = config.learning_rate and all(_usable(q) and q > 0 for q in ratios) and len(set(ratios)) > 1
    if config.learning_rate and len({q for q in ratios if _usable(q)}) > 1 and not use_lr:
        notes.append("the learning rate is not a feature: some rows have no rate ratio (give base_final_lr)")
    if use_lr:
        rows = [{**r, "features": {**r["features"], LR_FEATURE: math.log(r["lr_ratio"])}} for r in rows]
    features = [f for f in config.features if all(_usable(r["features"].get(f)) for r in rows)]
    dropped = [f for f in config.features if f not in features]
    if dropped:
        notes.append(f"features dropped, missing for some domain: {', '.join(dropped)}")
    if not features:
        raise DataError("no feature is available for every domain",
                        "compute the features with the base model (base_bits_per_byte) or check features.json")
    if use_lr:
        features = with_learning_rate(features)
        rows = [{**r, "features": expand(r["features"], features)} for r in rows]
    X = _matrix(rows, features)
    targets = {}
    for target in TARGETS:
        if all(_usable(r.get(target)) for r in rows):
            targets[target] = fit_target(X, np.array([r[target] for r in rows], np.float64), features, config,
                                         groups)
        else:
            notes.append(f"{target} not fitted: missing for some domain")
    if "delta_ppl_pct" not in targets:
        raise DataError("delta_ppl_pct is missing for some domain", "fit on done domains of a study")
    domains = []
    for i, r in enumerate(rows):
        d = {k: r.get(k) for k in ("name", "study", "kind", "path", "delta_ppl_pct", "forgetting_pct", "lr",
                                   "lr_ratio", "run")}
        for target, t in targets.items():
            d[f"loo_{target}"] = t["loo_predictions"][i]
        d["features"] = dict(r["features"])
        domains.append(d)
    from odyssey import __version__

    return {"format": FIT_FORMAT, "kind": "odyssey-predictor-fit", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "odyssey_version": __version__, "studies": list(studies), "features": features,
            "config": config.model_dump(mode="json"), "targets": targets, "domains": domains, "notes": notes,
            "learning_rate": {"feature": LR_FEATURE, "ratios": sorted(set(ratios))} if use_lr else None}


# -- using a fit ----------------------------------------------------------------------------
def load_fit(path: str | os.PathLike | None = None) -> dict:
    """A fit file (default: the shipped ``default-fit.json``), checked."""
    from odyssey.io import read_json

    path = Path(path) if path else DEFAULT_FIT
    if not path.is_file():
        hint = ("make one: odyssey diagnose fit STUDY_DIR --out FIT.json" if path == DEFAULT_FIT
                else "give a file written by odyssey diagnose fit")
        raise ConfigError(f"predictor fit not found: {path}", hint)
    fit = read_json(path)
    if not isinstance(fit, dict) or fit.get("kind") != "odyssey-predictor-fit":
        raise ConfigError(f"{path} is not a predictor fit", "give a file written by odyssey diagnose fit")
    if fit.get("format") not in (1, FIT_FORMAT):  # 1: one row per domain, at one rate (still readable)
        raise ConfigError(f"{path} has fit format {fit.get('format')}, this odyssey reads {FIT_FORMAT}",
                          "refit it with odyssey diagnose fit")
    fit["_path"] = str(path)
    return fit


def _ridge_of(target: Mapping, features: Sequence[str]) -> Ridge:
    std = target["standardization"]
    return Ridge(np.array([std["mean"][f] for f in features]), np.array([std["scale"][f] for f in features]),
                 np.array([target["coefficients"][f] for f in features]), float(target["intercept"]),
                 float(target["lambda"]))


def predict(fit: Mapping, features: Mapping[str, float]) -> dict:
    """Predicted changes (%) of a domain with the given feature values, with intervals
    and the evidence: per feature, its value, its z-score against the training domains,
    its contribution to the predicted log ratio (``contribution_log``; they add up with
    ``intercept_log``) and as the % by which it alone multiplies perplexity
    (``contribution_pct``), and whether it lies outside the training domains' range
    (extrapolation)."""
    names = list(fit["features"])
    features = expand(features, names)
    missing = [f for f in names if not _usable(features.get(f))]
    if LR_FEATURE in missing:
        raise DataError("the fit predicts at a learning rate, and none was given",
                        "give --lr (and --base-final-lr when the model has no provenance.json)")
    if missing:
        raise DataError(f"feature(s) {', '.join(missing)} could not be measured, and the fit uses them",
                        "give --model for base_bits_per_byte, --probe for the probe, or use a fit "
                        "without them (odyssey diagnose fit --features ...)")
    x = np.array([[float(features[f]) for f in names]])
    out: dict = {}
    for target, t in fit["targets"].items():
        model = _ridge_of(t, names)
        p = float(model.predict(x)[0])
        w = float(t["interval"]["half_width_log"])
        interval = [float(to_pct(p - w)), float(to_pct(p + w))]
        out[f"predicted_{target}"] = float(to_pct(p))
        out[f"{target}_interval"] = interval
        if target == "delta_ppl_pct":
            out["predicted_log_ratio"] = p
            out["interval"] = interval
            out["interval_level"] = t["interval"]["level"]
            out["intercept_log"] = model.intercept
            out["intercept_pct"] = float(to_pct(model.intercept))
            z = model.z(x)[0]
            out["features"] = []
            for j, f in enumerate(names):
                seen = [d["features"][f] for d in fit.get("domains", []) if _usable(d["features"].get(f))]
                lo, hi = (min(seen), max(seen)) if seen else (None, None)
                c = float(model.coef[j] * z[j])
                out["features"].append({
                    "name": f, "value": float(x[0, j]), "z": float(z[j]), "coefficient": float(model.coef[j]),
                    "contribution_log": c, "contribution_pct": float(to_pct(c)), "direction": "worse" if c > 0 else "better" if c < 0 else "none",
                    "training_range": [lo, hi],
                    "outside_training_range": bool(seen) and not lo <= float(x[0, j]) <= hi})
    return out


def studied_ratios(fit: Mapping) -> list[float]:
    """The learning-rate ratios the fit was made on (empty for a fit at one rate)."""
    return list((fit.get("learning_rate") or {}).get("ratios") or [])


def largest_safe_rate(fit: Mapping, features: Mapping[str, float], points: int = 41) -> dict:
    """The largest learning-rate ratio, within the range the fit was made on (never
    extrapolated), whose predicted in-domain change is below zero; with the prediction
    at each point of a log-spaced grid that includes the studied ratios.

    Returns ``{"ratio": float | None, "predicted_delta_ppl_pct": ..., "grid": [...]}``;
    ``ratio`` is None when every rate is predicted to make the domain worse."""
    ratios = studied_ratios(fit)
    if not ratios:
        raise DataError("the fit was made at one learning rate", "refit it on a study with several rates "
                        "(odyssey study --lr ...; odyssey diagnose fit STUDY_DIR)")
    lo, hi = math.log(min(ratios)), math.log(max(ratios))
    grid = sorted({*ratios, *(math.exp(lo + (hi - lo) * k / (points - 1)) for k in range(points))})
    rows = []
    for q in grid:
        p = predict(fit, {**features, LR_FEATURE: math.log(q)})
        rows.append({"ratio": q, "predicted_delta_ppl_pct": p["predicted_delta_ppl_pct"], "interval": p["interval"]})
    safe = [r for r in rows if r["predicted_delta_ppl_pct"] < 0]
    best = max(safe, key=lambda r: r["ratio"]) if safe else None
    return {"ratio": best["ratio"] if best else None,
            "predicted_delta_ppl_pct": best["predicted_delta_ppl_pct"] if best else None,
            "interval": best["interval"] if best else None, "grid": rows,
            "studied": [min(ratios), max(ratios)]}


def decide(predicted: float, interval: Sequence[float], forgetting: float | None = None,
           config: DecisionConfig | None = None) -> dict:
    """The recommendation for a predicted in-domain perplexity change ``predicted`` (%)
    with its ``interval`` ``(lo, hi)`` (%) and a predicted general-perplexity change
    ``forgetting`` (%). First matching row wins::

        condition                                        recommendation  mitigations
        -----------------------------------------------  --------------  -----------
        (hi < 0 or predicted <= -clear_gain_pct)         adapt           -
          and forgetting <= forgetting_max_pct
        (hi < 0 or predicted <= -clear_gain_pct)         mitigate        replay
          and forgetting > forgetting_max_pct
        lo > 0                                           rely            -
        otherwise (the interval holds 0)                 mitigate        normalize
                                                                         (+ replay if forgetting
                                                                          > forgetting_max_pct)

    - adapt: a gain is predicted beyond the interval, or is clearly large.
    - mitigate/replay: the gain would be bought with forgetting; mix general data back in.
    - rely: even the interval's best case makes in-domain perplexity worse; the base
      model already knows this kind of text (the Adaptation Odyssey's similar domains).
    - mitigate/normalize: too close to call; in that regime the paper found the change
      carried by formatting tokens (newlines, whitespace, punctuation), which normalizing
      the text's formatting (or a token-selective loss) targets.

    An unknown ``forgetting`` (``None``) never triggers replay.

    >>> decide(-12.0, (-15.0, -9.0))["recommendation"], decide(4.0, (1.0, 7.0))["recommendation"]
    ('adapt', 'rely')
    """
    cfg = config or DecisionConfig()
    lo, hi = interval
    forgets = forgetting is not None and forgetting > cfg.forgetting_max_pct
    gain = hi < 0 or predicted <= -cfg.clear_gain_pct
    if gain and not forgets:
        return {"recommendation": "adapt", "mitigation": None, "mitigations": [],
                "reason": f"in-domain perplexity is predicted to improve ({predicted:+.1f}%, interval "
                          f"{lo:+.1f}% to {hi:+.1f}%)"}
    if gain:
        return {"recommendation": "mitigate", "mitigation": "replay", "mitigations": ["replay"],
                "reason": f"in-domain perplexity is predicted to improve ({predicted:+.1f}%), but general "
                          f"perplexity to rise by {forgetting:.1f}% (> {cfg.forgetting_max_pct:g}%): "
                          "replay general data while adapting"}
    if lo > 0:
        return {"recommendation": "rely", "mitigation": None, "mitigations": [],
                "reason": f"in-domain perplexity is predicted to get worse ({predicted:+.1f}%, interval "
                          f"{lo:+.1f}% to {hi:+.1f}%): the base model already fits text like this"}
    mitigations = ["normalize"] + (["replay"] if forgets else [])
    return {"recommendation": "mitigate", "mitigation": "normalize", "mitigations": mitigations,
            "reason": f"the change is too close to call ({predicted:+.1f}%, interval {lo:+.1f}% to "
                      f"{hi:+.1f}%); such changes are carried by formatting tokens: normalize the "
                      "formatting (or mask those tokens) before adapting"
                      + (f"; general perplexity is predicted to rise by {forgetting:.1f}%: replay"
                         if forgets else "")}


# -- the report section -----------------------------------------------------------------------
def predictor_section(results: Mapping, fit: Mapping | None,
                      features: Mapping[str, Mapping[str, float]] | None = None) -> dict:
    """What the report's predictor section shows, as plain data: for each similarity
    measure its Spearman correlation (with p-value) with the change of in-domain
    perplexity over the study's domains; the fit's leave-one-domain-out sign accuracy
    and error; and points for a scatter plot (measure value or leave-one-out prediction
    against the actual change).

    Args:
        results: a study's ``results.json`` content (its ``domains``).
        fit: a fit file's content (:func:`load_fit`), or ``None``.
        features: domain name -> measures (e.g. from ``STUDY_DIR/features.json``);
            default: the measures the fit recorded for domains of the same name.

    >>> section = predictor_section(read_json("study/results.json"), load_fit())
    >>> section["measures"][0]["rho"], section["loo"]["sign_accuracy"]
    """
    from scipy.stats import spearmanr

    from odyssey.analysis.similarity import MEASURES

    fit_rows = (fit or {}).get("domains", [])
    if features is None:
        features = {d["name"]: d.get("features", {}) for d in fit_rows}
    points, notes = [], []
    for d in results.get("domains", []):
        feats = features.get(d["name"])
        if feats is None:
            notes.append(f"{d['name']}: no similarity features")
            continue
        # A leave-one-out prediction belongs to this point only if the fit was made on this very
        # result (same name and same measured change), not on another study's domain of that name.
        fd = next((r for r in fit_rows if r["name"] == d["name"] and _usable(r.get("delta_ppl_pct"))
                   and _usable(d.get("delta_ppl_pct"))
                   and math.isclose(r["delta_ppl_pct"], d["delta_ppl_pct"], rel_tol=1e-9, abs_tol=1e-9)), {})
        same = bool(fd)
        points.append({"name": d["name"], "kind": d.get("kind"), "delta_ppl_pct": d.get("delta_ppl_pct"),
                       "forgetting_pct": d.get("forgetting_pct"),
                       "loo_predicted": fd.get("loo_delta_ppl_pct") if same else None,
                       "features": {m: feats.get(m) for m in MEASURES if m in feats}})
    measures = []
    for m in MEASURES:
        pairs = [(p["features"].get(m), p["delta_ppl_pct"]) for p in points
                 if _usable(p["features"].get(m)) and _usable(p["delta_ppl_pct"])]
        rho = pval = None
        if len(pairs) >= 3:
            xs, ys = zip(*pairs, strict=True)
            if len(set(xs)) > 1 and len(set(ys)) > 1:
                r = spearmanr(xs, ys)
                rho, pval = float(r.statistic), float(r.pvalue)
        measures.append({"measure": m, "rho": rho, "p_value": pval, "n": len(pairs),
                         "used_by_fit": m in (fit or {}).get("features", [])})
    target = (fit or {}).get("targets", {}).get("delta_ppl_pct")
    return {
        "available": bool(points),
        "fit": None if fit is None else {"path": fit.get("_path"), "studies": fit.get("studies"),
                                         "features": fit.get("features"), "created": fit.get("created")},
        "measures": measures,
        "loo": None if target is None else {**target["loo"],
                                            "interval_half_width_log": target["interval"]["half_width_log"],
                                            "interval_level": target["interval"]["level"]},
        "coefficients": None if target is None else target["coefficients"],
        "points": points,
        "notes": notes,
    }
