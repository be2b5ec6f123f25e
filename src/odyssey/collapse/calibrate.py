"""Telling real from generated text without assuming which way a statistic points.

Whether generated text scores higher or lower than real text depends on the model and
the decoding: beam-search text from a small model has low perplexity, text it samples at
temperature 1 has *higher* perplexity than real text (issue 18). So every statistic is
read both ways, and a detector is *fitted* on labelled text:

- :func:`evaluate_detection`: per statistic, AUROC with generated text scoring higher and
  with it scoring lower, the better direction and the threshold at a false-positive rate;
- :func:`cross_validated_auroc`: a statistic's AUROC on held-out folds, its direction
  learned on the other folds each time (so choosing a direction is part of what is
  validated, and a statistic with no signal scores about 0.5, not above);
- :func:`fit_detector`: the statistic with the best cross-validated AUROC, its direction
  and its threshold at ``fpr`` on all the labelled text: a :class:`Detector`;
- :func:`detector_on`: how a fitted detector does on other labelled text;
- :class:`SyntheticFilter`: a fitted detector as a document filter for the corpus builder.

"Generated" is the positive class throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from odyssey.collapse.config import STATISTICS, DetectConfig, Detector, conventional_direction
from odyssey.errors import DataError
from odyssey.evaluate.metrics import auroc

MIN_PER_CLASS = 2  # documents of each kind that cross-validation needs


def oriented(values: Sequence[float], direction: str) -> np.ndarray:
    """Values turned so that higher means "more likely generated"."""
    v = np.asarray(values, dtype=np.float64)
    return v if direction == "higher" else -v


def flagged(value: float, direction: str, threshold: float) -> bool:
    """Whether ``value`` passes ``threshold`` in ``direction`` (NaN: never)."""
    if not math.isfinite(value):
        return False
    return value > threshold if direction == "higher" else value < threshold


def is_synthetic(row: dict, statistic: str, threshold: float, direction: str | None = None) -> bool:
    """Whether a scored document counts as generated at ``threshold`` (in the statistic's
    conventional direction unless ``direction`` is given; NaN: never)."""
    return flagged(row.get(statistic, float("nan")), direction or conventional_direction(statistic), threshold)


def threshold_at_fpr(positive: Sequence[float], negative: Sequence[float], fpr: float) -> dict:
    """The lowest threshold ``t`` for the rule "positive when score > t" whose false-positive
    rate is at most ``fpr``, with the rates it achieves (higher score = positive)."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if neg.size == 0:
        raise DataError("no real documents to set a threshold on")
    desc = np.sort(neg)[::-1]
    # At most floor(fpr * n) negatives may lie strictly above t: t is the next one down.
    t = float(desc[min(int(math.floor(fpr * neg.size + 1e-9)), neg.size - 1)])
    return {"threshold": t, "fpr": float(np.mean(neg > t)),
            "tpr": float(np.mean(pos > t)) if pos.size else float("nan")}


def fpr_resolution(real: int, fpr: float) -> str | None:
    """A warning when ``real`` labelled real documents cannot resolve ``fpr``: the measured
    false-positive rate moves in steps of ``1 / real``, so a threshold set at a rate below
    one step rests on the single highest-scoring real document (``None`` when it can)."""
    if real * fpr >= 1:
        return None
    return (f"with {real} real documents the false-positive rate moves in steps of {1 / real:.1%}: a threshold "
            f"at {fpr:.1%} rests on the most extreme one; label at least {math.ceil(1 / fpr - 1e-9)} real documents")


WEAK_AUROC = 0.9  # below this cross-validated AUROC the commands suggest a stronger scoring model


def weak_separation(cv_auroc: float) -> str | None:
    """A hint when even the best statistic separates real from generated text poorly (``None``
    when it does well): a scorer no better than the generator cannot tell its samples from
    real text, a stronger one can (README: temperature-1 text of the default base, 0.79 under
    the base and 1.00 under SmolLM2-135M)."""
    if not math.isfinite(cv_auroc) or cv_auroc >= WEAK_AUROC:
        return None
    return (f"the best statistic reaches cross-validated AUROC {cv_auroc:.3f} only: score with a model stronger "
            "than the one that wrote the text (--model, e.g. smollm2-135m; see odyssey models)")


def _values(rows: Sequence[dict], statistic: str) -> np.ndarray:
    v = np.asarray([r.get(statistic, float("nan")) for r in rows], dtype=np.float64)
    return v[np.isfinite(v)]


def available(real: Sequence[dict], generated: Sequence[dict]) -> list[str]:
    """The statistics with a finite value for at least one document of each set."""
    return [s for s in STATISTICS if _values(real, s).size and _values(generated, s).size]


def summarize(real: np.ndarray, generated: np.ndarray, statistic: str, fpr: float) -> dict:
    """AUROC both ways, the better direction (ties: the conventional one) and the threshold
    at ``fpr`` in that direction, in the statistic's own units."""
    higher = auroc(generated, real)
    conventional = conventional_direction(statistic)
    direction = conventional if higher == 0.5 else ("higher" if higher > 0.5 else "lower")
    th = threshold_at_fpr(oriented(generated, direction), oriented(real, direction), fpr)
    return {"auroc_higher": higher, "auroc_lower": 1.0 - higher,
            "auroc": higher if conventional == "higher" else 1.0 - higher,  # as the literature assumes
            "conventional": conventional, "direction": direction,
            "best_auroc": max(higher, 1.0 - higher),
            "rule": ">" if direction == "higher" else "<",
            "threshold": th["threshold"] if direction == "higher" else -th["threshold"],
            "fpr": th["fpr"], "tpr": th["tpr"], "real": int(real.size), "generated": int(generated.size)}


def evaluate_detection(real: Sequence[dict], generated: Sequence[dict], fpr: float = 0.01) -> dict:
    """For each statistic present in the rows: :func:`summarize` of its values.
    ``auroc`` is the direction the literature assumes; ``best_auroc`` is in-sample (the
    direction chosen on the same text); :func:`cross_validated_auroc` is the honest figure."""
    return {s: summarize(_values(real, s), _values(generated, s), s, fpr) for s in available(real, generated)}


def _folds(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number of each of ``n`` items: a seeded permutation dealt round-robin."""
    out = np.empty(n, dtype=np.int64)
    out[rng.permutation(n)] = np.arange(n) % k
    return out


def cross_validated_auroc(real: Sequence[float], generated: Sequence[float], folds: int = 5,
                          seed: int = 0, conventional: str = "higher") -> float:
    """Mean over ``folds`` stratified folds of the held-out AUROC, each in the direction
    that the other folds favour (ties: ``conventional``)."""
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    k = min(folds, real.size, generated.size)
    if k < MIN_PER_CLASS:
        raise DataError(f"{real.size} real and {generated.size} generated documents: too few to validate on",
                        f"give at least {MIN_PER_CLASS} of each (a few dozen make a steady choice)")
    rng = np.random.default_rng([seed, real.size, generated.size])
    fr, fg = _folds(real.size, k, rng), _folds(generated.size, k, rng)
    scores = []
    for i in range(k):
        train = auroc(generated[fg != i], real[fr != i])
        direction = conventional if train == 0.5 else ("higher" if train > 0.5 else "lower")
        held = auroc(generated[fg == i], real[fr == i])
        scores.append(held if direction == "higher" else 1.0 - held)
    return float(np.mean(scores))


def choose_statistic(real: Sequence[dict], generated: Sequence[dict], *, folds: int = 5, seed: int = 0,
                     statistics: Sequence[str] | None = None) -> tuple[str, dict[str, float]]:
    """The statistic with the best cross-validated AUROC (ties: ``STATISTICS`` order), and
    every candidate's figure."""
    candidates = [s for s in (statistics or available(real, generated)) if s in available(real, generated)]
    if not candidates:
        raise DataError("no statistic has a finite value on both sets", "check that the documents have text")
    cv = {s: cross_validated_auroc(_values(real, s), _values(generated, s), folds, seed,
                                   conventional_direction(s)) for s in candidates}
    best = max(candidates, key=lambda s: (cv[s], -list(STATISTICS).index(s)))
    return best, cv


def fit_detector(real: Sequence[dict], generated: Sequence[dict], cfg: DetectConfig,
                 *, max_tokens: int | None = None, data: dict | None = None) -> Detector:
    """A :class:`Detector` from scored real and generated documents: ``cfg.score`` (auto:
    the best statistic by cross-validated AUROC), its direction on all the text and the
    threshold at ``cfg.fpr``. ``data`` describes the labelled text (recorded in ``fit``).

    >>> det = fit_detector(score_documents(real, cfg), score_documents(generated, cfg), cfg)
    """
    only = None if cfg.score == "auto" else [cfg.score]
    statistic, cv = choose_statistic(real, generated, folds=cfg.folds, seed=cfg.seed, statistics=only)
    r, g = _values(real, statistic), _values(generated, statistic)
    summary = summarize(r, g, statistic, cfg.fpr)
    fit = {"fpr": summary["fpr"], "tpr": summary["tpr"], "auroc": summary["best_auroc"],
           "cv_auroc": cv[statistic], "candidates": cv, "folds": min(cfg.folds, r.size, g.size),
           "real": int(r.size), "generated": int(g.size), "chosen_by": "cross-validated AUROC"
           if cfg.score == "auto" else "named", **({"data": data} if data else {})}
    return Detector(model=cfg.model, reference=cfg.reference, max_tokens=max_tokens or cfg.max_tokens,
                    statistic=statistic, direction=summary["direction"], threshold=summary["threshold"],
                    target_fpr=cfg.fpr, fit=fit)


def hand_set_detector(threshold: float, cfg: DetectConfig) -> Detector:
    """A detector with a threshold set by hand: ``cfg``'s statistic in its conventional
    direction (what `--drop-synthetic NUMBER` means; a fitted detector learns the direction)."""
    statistic = cfg.statistic()
    return Detector(model=cfg.model, reference=cfg.reference, max_tokens=cfg.max_tokens, statistic=statistic,
                    direction=conventional_direction(statistic), threshold=threshold,
                    fit={"chosen_by": "hand: the statistic's conventional direction"})


def detector_on(detector: Detector, real: Sequence[dict], generated: Sequence[dict]) -> dict:
    """A fitted detector on other labelled text: AUROC in its direction, and the rates its
    threshold gives there."""
    r, g = _values(real, detector.statistic), _values(generated, detector.statistic)
    hits = lambda v: float(np.mean([flagged(x, detector.direction, detector.threshold) for x in v])) \
        if v.size else float("nan")  # noqa: E731
    return {"statistic": detector.statistic, "direction": detector.direction, "threshold": detector.threshold,
            "auroc": auroc(oriented(g, detector.direction), oriented(r, detector.direction)),
            "fpr": hits(r), "tpr": hits(g), "real": int(r.size), "generated": int(g.size)}


class SyntheticFilter:
    """A document filter for :func:`odyssey.corpora.build.build_corpus` (its ``keep``):
    scores the documents and drops those the detector flags, with reason ``synthetic``.

    ``detector`` is a fitted :class:`Detector`, or ``None`` with ``statistic`` and
    ``threshold`` for a hand-set rule in the statistic's conventional direction.

    >>> build_corpus("web", ["crawl/"], "corpora/web", keep=SyntheticFilter(Detector(**read_json("det.json"))))
    """

    reason = "synthetic"

    def __init__(self, detector: Detector, *, progress: bool = True, scorers=None):
        self.detector = detector
        self.progress = progress
        self.scorers = scorers

    def __call__(self, documents: list[dict]):
        from odyssey.collapse.detect import score_documents
        from odyssey.corpora.build import Kept
        from odyssey.io import sha256_text

        det = self.detector
        rows = score_documents(documents, det.scoring_config(), scorers=self.scorers, progress=self.progress)
        kept, dropped = [], []
        for doc, row in zip(documents, rows, strict=True):
            if flagged(row[det.statistic], det.direction, det.threshold):
                dropped.append({"id": doc["id"], "sha256": sha256_text(doc["text"]), "reason": self.reason,
                                det.statistic: row[det.statistic]})
            else:
                kept.append(doc)
        record = {**det.model_dump(mode="json"), "model": det.model or "default base",
                  "rule": f"dropped when {det.statistic} {det.rule} {det.threshold:g}"}
        return Kept(kept, dropped, name="synthetic_filter", record=record)
