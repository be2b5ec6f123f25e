"""Direction-free detection: AUROC both ways, cross-validated AUROC against a naive loop,
a detector that learns a direction the literature does not assume, and its rates on other
text counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from odyssey.collapse.calibrate import (
    choose_statistic,
    cross_validated_auroc,
    detector_on,
    evaluate_detection,
    fit_detector,
    flagged,
    fpr_resolution,
    hand_set_detector,
    threshold_at_fpr,
    weak_separation,
)
from odyssey.collapse.config import DetectConfig, Detector
from odyssey.errors import DataError


def pairwise_auroc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def naive_cv_auroc(real, generated, k, seed):
    """The same folds (a seeded permutation dealt round-robin, real first), every AUROC by
    counting pairs, the direction by majority on the training folds."""
    rng = np.random.default_rng([seed, len(real), len(generated)])
    fold_r, fold_g = [0] * len(real), [0] * len(generated)
    for pos, i in enumerate(rng.permutation(len(real))):
        fold_r[i] = pos % k
    for pos, i in enumerate(rng.permutation(len(generated))):
        fold_g[i] = pos % k
    total = 0.0
    for f in range(k):
        pairs_g, pairs_r = list(zip(generated, fold_g, strict=True)), list(zip(real, fold_r, strict=True))
        train = pairwise_auroc([g for g, h in pairs_g if h != f], [r for r, h in pairs_r if h != f])
        held = pairwise_auroc([g for g, h in pairs_g if h == f], [r for r, h in pairs_r if h == f])
        total += held if train >= 0.5 else 1 - held  # ties: the conventional direction, "higher" here
    return total / k


def rows(values: dict[str, list[float]]) -> list[dict]:
    n = len(next(iter(values.values())))
    return [{k: v[i] for k, v in values.items()} for i in range(n)]


@pytest.mark.parametrize(("n_real", "n_gen", "k", "shift"), [(20, 20, 5, 1.0), (13, 7, 5, -0.7), (9, 30, 3, 0.0)])
def test_cross_validated_auroc_matches_a_naive_loop(n_real, n_gen, k, shift):
    rng = np.random.default_rng(n_real)
    real = np.round(rng.normal(0, 1, n_real), 1).tolist()  # rounded: ties
    gen = np.round(rng.normal(shift, 1, n_gen), 1).tolist()
    assert cross_validated_auroc(real, gen, k, seed=4) == pytest.approx(naive_cv_auroc(real, gen, k, 4))


def test_no_signal_scores_about_half_where_in_sample_choice_looks_better():
    rng = np.random.default_rng(0)
    cv, best = [], []
    for _ in range(40):
        real, gen = rng.normal(size=12), rng.normal(size=12)
        cv.append(cross_validated_auroc(real, gen, 4, seed=1))
        a = pairwise_auroc(gen, real)
        best.append(max(a, 1 - a))
    assert abs(np.mean(cv) - 0.5) < 0.06 and np.mean(best) > 0.56


def test_both_ways_and_the_threshold_in_the_better_direction():
    real = rows({"perplexity": [10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19], "top1": [0.5] * 10})
    gen = rows({"perplexity": [16.5, 18.5, 20, 21, 22], "top1": [0.5] * 5})
    result = evaluate_detection(real, gen, fpr=0.1)
    p = result["perplexity"]
    assert p["auroc_higher"] == pytest.approx(pairwise_auroc([16.5, 18.5, 20, 21, 22], list(range(10, 20))))
    assert p["auroc_lower"] == pytest.approx(1 - p["auroc_higher"]) and p["auroc"] == p["auroc_lower"]
    assert p["direction"] == "higher" and p["rule"] == ">"  # against the literature's assumption
    assert p["threshold"] == 18 and p["fpr"] == pytest.approx(0.1) and p["tpr"] == pytest.approx(0.8)
    assert result["top1"]["auroc_higher"] == 0.5 and result["top1"]["direction"] == "higher"  # a tie: conventional


def test_fit_learns_an_unassumed_direction_and_the_informative_statistic():
    rng = np.random.default_rng(7)
    # fast_detect is conventionally "higher"; here generated text scores lower. perplexity is noise.
    real = rows({"fast_detect": rng.normal(1.0, 0.5, 30).tolist(), "perplexity": rng.normal(50, 5, 30).tolist()})
    gen = rows({"fast_detect": rng.normal(-1.0, 0.5, 30).tolist(), "perplexity": rng.normal(50, 5, 30).tolist()})
    det = fit_detector(real, gen, DetectConfig(fpr=0.05, folds=5))
    assert det.statistic == "fast_detect" and det.direction == "lower" and det.rule == "<"
    assert det.fit["cv_auroc"] > 0.9 and abs(det.fit["candidates"]["perplexity"] - 0.5) < 0.2
    flagged_real = sum(flagged(r["fast_detect"], "lower", det.threshold) for r in real)
    assert flagged_real <= math.floor(0.05 * 30) and det.fit["fpr"] == pytest.approx(flagged_real / 30)
    # On other text from the same sources, the rates are what a count gives.
    real2 = rows({"fast_detect": [2.0, 0.0, -3.0, 1.0], "perplexity": [50.0] * 4})
    gen2 = rows({"fast_detect": [-2.0, -1.5, 5.0], "perplexity": [50.0] * 3})
    on = detector_on(det, real2, gen2)
    assert on["fpr"] == pytest.approx(np.mean([v < det.threshold for v in (2.0, 0.0, -3.0, 1.0)]))
    assert on["tpr"] == pytest.approx(np.mean([v < det.threshold for v in (-2.0, -1.5, 5.0)]))
    assert on["auroc"] == pytest.approx(pairwise_auroc([2.0, 1.5, -5.0], [-2.0, 0.0, 3.0, -1.0]))
    # It survives a round trip through JSON.
    assert Detector.model_validate_json(det.model_dump_json()) == det


def test_a_named_statistic_is_kept_and_too_little_text_is_one_error():
    real = rows({"perplexity": [1.0, 2, 3], "top1": [0.1, 0.2, 0.3]})
    gen = rows({"perplexity": [4.0, 5, 6], "top1": [0.3, 0.1, 0.2]})
    assert fit_detector(real, gen, DetectConfig(score="top1")).statistic == "top1"
    assert choose_statistic(real, gen, folds=3)[0] == "perplexity"
    with pytest.raises(DataError, match="too few"):
        fit_detector(real[:1], gen, DetectConfig())


def test_hand_set_detector_uses_the_conventional_direction():
    det = hand_set_detector(22.5, DetectConfig())
    assert (det.statistic, det.direction, det.threshold) == ("perplexity", "lower", 22.5)
    assert hand_set_detector(0.5, DetectConfig(score="fast_detect")).direction == "higher"


@pytest.mark.parametrize(("n_real", "fpr", "warned"), [(24, 0.01, True), (99, 0.01, True), (100, 0.01, False),
                                                      (10, 0.1, False), (9, 0.1, True), (400, 0.001, True)])
def test_fpr_resolution_warns_exactly_when_the_threshold_rests_on_the_top_real_document(n_real, fpr, warned):
    real = np.random.default_rng(n_real).normal(size=n_real)
    th = threshold_at_fpr([], real, fpr)["threshold"]
    assert (th == real.max()) == warned  # below one step, no real document may lie above it
    note = fpr_resolution(n_real, fpr)
    assert (note is not None) == warned
    if warned:
        assert f"at least {round(1 / fpr)} real documents" in note


def test_a_weak_separation_suggests_a_stronger_scorer():
    assert weak_separation(0.95) is None and weak_separation(0.9) is None and weak_separation(float("nan")) is None
    assert "0.786" in weak_separation(0.786) and "--model" in weak_separation(0.786)
