"""`odyssey diagnose`: will adapting this model to this data help? Measure the data's
similarity to the model's pretraining data (optionally with a short probe run, given as a
function: :func:`odyssey.study.probe.run_probe`), feed the
measures to a fitted predictor (:mod:`odyssey.analysis.predictor`) and recommend
``adapt``, ``rely`` on the base model, or ``mitigate`` (naming which mitigation).

:func:`fit_studies` makes a predictor from finished studies: for each done domain it
measures the domain's train split against the study's general corpus (with the
study's model, for ``base_bits_per_byte``), caches the measures in
``STUDY_DIR/features.json`` (keyed by the data, model and settings, so a refit reads
them back) and fits.

>>> fit = fit_studies(["studies/default"], out="my-fit.json")
>>> diagnose("corpora/legal", model="runs/base", fit="my-fit.json")["recommendation"]
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from odyssey.analysis.config import DiagnoseConfig, ProbeConfig
from odyssey.analysis.predictor import (
    LR_FEATURE,
    PROBE_FEATURE,
    decide,
    fit_predictor,
    largest_safe_rate,
    load_fit,
    predict,
    studied_ratios,
)
from odyssey.analysis.reference_cache import cached_reference
from odyssey.analysis.similarity import MEASURES, ReferenceProfile, similarity
from odyssey.corpora.store import data_fingerprint
from odyssey.errors import ConfigError, DataError
from odyssey.io import read_json, write_json
from odyssey.models.fingerprint import model_fingerprint

FEATURES_FILE = "features.json"
FEATURES_FORMAT = 1


# -- measuring ------------------------------------------------------------------------------
def measurement_settings(config: DiagnoseConfig) -> dict:
    """The settings that change the measured features (not how they are shown or where
    they run): the same settings must be used to fit and to predict."""
    sim = config.similarity.model_dump(mode="json", exclude={"progress", "device", "embed_batch_size"})
    return {"similarity": sim, "data_max_bytes": config.data_max_bytes,
            "reference_max_bytes": config.reference_max_bytes}


def settings_hash(config: DiagnoseConfig) -> str:
    text = json.dumps(measurement_settings(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _configs(config: DiagnoseConfig):
    sim = config.similarity
    return (sim.model_copy(update={"max_bytes": config.reference_max_bytes}),
            sim.model_copy(update={"max_bytes": config.data_max_bytes}))


def measure(data: str, reference: ReferenceProfile, loaded_model, config: DiagnoseConfig) -> dict:
    """The similarity measures of ``data`` (capped at ``config.data_max_bytes``) against
    a built reference, with the base model's bits per byte when a model is given."""
    _, data_cfg = _configs(config)
    sim = similarity(data, reference, model=loaded_model, config=data_cfg)
    return sim


def _load(model: str, config: DiagnoseConfig):
    from odyssey.models import load_model, load_tokenizer

    return load_model(model, device=config.similarity.device), load_tokenizer(model)


# -- the probe ------------------------------------------------------------------------------
# A probe is a short adapt run, which an orchestrator composes (odyssey.study.probe.run_probe):
# this module only takes its result, as a function of (model, data, probe config, recipe,
# progress) -> {"probe_delta_ppl_pct": ..., ...}.
Prober = Callable[[str, str, ProbeConfig, "dict | None", bool], dict]


# -- fitting on studies ---------------------------------------------------------------------
def _read_results(study_dir: Path) -> dict:
    if not (study_dir / "results.json").is_file():
        raise DataError(f"{study_dir} has no results.json", "give a directory `odyssey study` finished")
    results = read_json(study_dir / "results.json")
    if not isinstance(results, dict) or "domains" not in results or "study" not in results:
        raise DataError(f"{study_dir}/results.json is not a study's results")
    return results


class _StudyMeasurer:
    """Builds the study's reference and loads its model only when a domain's features
    are not cached."""

    def __init__(self, results: dict, config: DiagnoseConfig):
        self.study, self.config = results["study"], config
        self._ref = self._model = None

    def features(self, path: str) -> dict:
        if self._ref is None:
            ref_cfg, _ = _configs(self.config)
            if not self.study.get("general"):
                raise DataError("the study records no general corpus", "rerun it with a general corpus")
            self._ref = cached_reference(self.study["general"], config=ref_cfg)
            if self.study.get("model"):
                self._model = _load(self.study["model"], self.config)
        return measure(path, self._ref, self._model, self.config)


def study_features(study_dir: str | os.PathLike, config: DiagnoseConfig | None = None, *,
                   probe: Prober | None = None, progress: bool = True, log=None) -> list[dict]:
    """One row per done domain of a study (see :func:`~odyssey.analysis.predictor.fit_predictor`),
    measuring only what ``STUDY_DIR/features.json`` does not hold for the same data,
    model and settings (the file is updated after each domain)."""
    config = config or DiagnoseConfig()
    study_dir = Path(study_dir)
    results = _read_results(study_dir)
    study = results["study"]
    cache_path = study_dir / FEATURES_FILE
    cache = read_json(cache_path) if cache_path.is_file() else {}
    if cache.get("format") != FEATURES_FORMAT:
        cache = {"format": FEATURES_FORMAT, "domains": {}}
    shared = {"general": study.get("general"), "general_sha256": data_fingerprint(study.get("general")),
              "model": study.get("model"), "model_sha256": model_fingerprint(study.get("model")),
              "settings": settings_hash(config)}
    measurer, rows = _StudyMeasurer(results, config), []
    # a study with a learning-rate axis has one cell per domain and rate; older ones, domains
    for d in results.get("cells") or results["domains"]:
        if d.get("status", "done") != "done":
            continue
        key = {**shared, "path": d["path"], "data_sha256": data_fingerprint(d["path"])}
        entry = cache["domains"].get(d["name"])
        if entry is None or entry.get("key") != key:
            if log:
                log(f"measuring {d['name']} against {study.get('general')}")
            sim = measurer.features(d["path"])
            entry = {"key": key, "features": {m: sim[m] for m in MEASURES},
                     "measured": {k: sim.get(k) for k in ("data_words", "data_bytes", "reference", "reference_kind",
                                                          "ngram_overlap_by_n", "notes")}}
            cache["domains"][d["name"]] = entry
            write_json(cache_path, cache)
        feats = dict(entry["features"])
        if probe:
            pkey = {"key": key, "probe": config.probe.model_dump(mode="json"), "recipe": study.get("recipe")}
            if (entry.get("probe") or {}).get("key") != pkey:
                if log:
                    log(f"probing {d['name']} ({config.probe.steps} steps)")
                entry["probe"] = {"key": pkey, **probe(study["model"], d["path"], config.probe,
                                                       study.get("recipe"), progress)}
                write_json(cache_path, cache)
            feats[PROBE_FEATURE] = entry["probe"][PROBE_FEATURE]
        rows.append({"name": d["name"], "study": str(study_dir), "kind": d.get("kind"), "path": d["path"],
                     "delta_ppl_pct": d.get("delta_ppl_pct"), "forgetting_pct": d.get("forgetting_pct"),
                     "lr": d.get("lr"), "lr_ratio": d.get("lr_ratio"), "run": d.get("run"), "features": feats})
    return rows


def load_study_features(study_dir: str | os.PathLike) -> dict[str, dict]:
    """Domain name -> measures, as ``STUDY_DIR/features.json`` caches them (empty when
    the study has not been measured); for :func:`~odyssey.analysis.predictor.predictor_section`."""
    path = Path(study_dir) / FEATURES_FILE
    if not path.is_file():
        return {}
    cache = read_json(path)
    return {name: dict(e.get("features") or {}) for name, e in (cache.get("domains") or {}).items()}


def fit_studies(study_dirs: Sequence[str | os.PathLike], config: DiagnoseConfig | None = None, *,
                out: str | os.PathLike | None = None, probe: Prober | None = None, progress: bool = True,
                log=None) -> dict:
    """Fit the predictor on the done domains of one or more studies; write the fit to
    ``out`` when given (atomically) and return it.

    >>> fit = fit_studies(["studies/default"], out="fit.json")
    >>> fit["targets"]["delta_ppl_pct"]["loo"]
    """
    config = config or DiagnoseConfig()
    if not study_dirs:
        raise ConfigError("no study directory given", "odyssey diagnose fit STUDY_DIR [STUDY_DIR...]")
    fit_cfg = config.fit
    if probe and PROBE_FEATURE not in fit_cfg.features:
        fit_cfg = fit_cfg.model_copy(update={"features": [*fit_cfg.features, PROBE_FEATURE]})
    rows, studies = [], []
    for sd in study_dirs:
        study_rows = study_features(sd, config, probe=probe, progress=progress, log=log)
        s = _read_results(Path(sd))["study"]
        studies.append({"dir": str(sd), "name": s.get("name"), "model": s.get("model"), "general": s.get("general"),
                        "created": s.get("created"), "domains": len(study_rows)})
        rows += study_rows
    fit = fit_predictor(rows, fit_cfg, studies)
    fit["measurement"] = {**measurement_settings(config), "settings_hash": settings_hash(config),
                          "probe": config.probe.model_dump(mode="json") if probe else None}
    if out is not None:
        write_json(out, fit)
    return fit


# -- diagnosing ------------------------------------------------------------------------------
def diagnose(data: str | os.PathLike, *, model: str | os.PathLike | None = None,
             reference: str | os.PathLike | None = None, fit: str | os.PathLike | dict | None = None,
             config: DiagnoseConfig | None = None, probe: Prober | None = None, progress: bool = False,
             lr: float | None = None, base_final_lr: float | None = None, probe_recipe: dict | None = None) -> dict:
    """Recommend ``adapt``, ``rely`` or ``mitigate`` for adapting ``model`` (default: the
    shipped base) to ``data``, with the predicted change of in-domain perplexity (%),
    its interval and the evidence (see :func:`odyssey.analysis.predictor.decide` for
    the rule).

    With a fit made on several learning rates, the prediction is for peak rate ``lr``
    (default: the base's final pretraining rate, ``base_final_lr``, read from the model's
    provenance.json when not given), and the diagnosis also names the largest studied
    rate predicted not to make in-domain perplexity worse (``safe_lr``), or says to rely
    on the base when there is none.

    ``reference`` defaults to the model's pretraining corpus (its provenance.json), as
    :func:`~odyssey.analysis.similarity.build_reference` resolves it; ``fit`` to the
    shipped default fit.

    >>> d = diagnose("corpora/legal")
    >>> d["recommendation"], d["predicted_delta_ppl_pct"], d["interval"]
    """
    config = config or DiagnoseConfig()
    if model is None:
        from odyssey.models.presets import default_base_path

        model = default_base_path()
    model = str(model)
    fit = fit if isinstance(fit, dict) else load_fit(fit)
    uses_probe = PROBE_FEATURE in fit["features"]
    if uses_probe and not probe:
        raise ConfigError(f"the fit {fit.get('_path', '')} uses the probe; pass --probe",
                          "or use a fit made without --probe")
    ref_cfg, _ = _configs(config)
    ref = cached_reference(reference, model=model, config=ref_cfg)
    sim = measure(str(data), ref, _load(model, config), config)
    features = {m: sim[m] for m in MEASURES}
    notes = list(sim.get("notes") or [])
    rate = _rate_features(fit, model, lr, base_final_lr)
    features.update(rate["features"])
    probe_result = None
    if probe:
        probe_result = probe(model, str(data), config.probe, probe_recipe, progress)
        features[PROBE_FEATURE] = probe_result[PROBE_FEATURE]
        if not uses_probe:
            notes.append("the probe is shown as evidence but the fit does not use it "
                         "(refit with: odyssey diagnose fit STUDY_DIR --probe)")
    pred = predict(fit, features)
    fitted = fit["targets"]["delta_ppl_pct"]
    decision = decide(pred["predicted_delta_ppl_pct"], pred["interval"], pred.get("predicted_forgetting_pct"),
                      config.decision)
    safe = None
    if rate["features"]:
        safe = largest_safe_rate(fit, features)
        known = rate["base_final_lr"] is not None
        safe["lr"] = safe["ratio"] * rate["base_final_lr"] if safe["ratio"] is not None and known else None
        if known:
            decision = _with_rate(decision, rate, safe)
        else:
            notes.append("the base's final pretraining learning rate is unknown: predicted for adapting at that "
                         "rate (ratio 1); give base_final_lr (--base-final-lr) to predict at a chosen --lr")
        lo, hi = safe["studied"]
        if known and not lo * (1 - 1e-9) <= rate["ratio"] <= hi * (1 + 1e-9):
            notes.append(f"lr {rate['lr']:g} is {rate['ratio']:g}× the base's final rate, outside the studied "
                         f"{lo:g}× to {hi:g}×: the prediction extrapolates")
    notes += _comparability_notes(fit, ref, config, pred)
    return {
        "model": model, "data": str(data), "reference": ref.name, "reference_kind": ref.kind,
        **decision,
        "predicted_delta_ppl_pct": pred["predicted_delta_ppl_pct"], "interval": pred["interval"],
        "interval_level": pred["interval_level"],
        "predicted_forgetting_pct": pred.get("predicted_forgetting_pct"),
        "forgetting_interval": pred.get("forgetting_pct_interval"),
        "features": pred["features"], "intercept_pct": pred["intercept_pct"],
        "predicted_log_ratio": pred["predicted_log_ratio"], "intercept_log": pred["intercept_log"],
        "lr": rate.get("lr"), "lr_ratio": rate.get("ratio"), "base_final_lr": rate.get("base_final_lr"),
        "safe_lr": safe,
        "similarity": {k: v for k, v in sim.items() if k != "notes"},
        "probe": probe_result,
        "fit": {"path": fit.get("_path"), "studies": [s.get("dir") for s in fit.get("studies", [])],
                "domains": len(fit.get("domains", [])), "features": fit["features"],
                "loo_domains": fitted["loo"].get("domains"),  # the rows are cells (domain x rate) in a fit on rates
                "loo_sign_accuracy": fitted["loo"]["sign_accuracy"], "loo_mae": fitted["loo"]["mae"],
                "loo_sign_accuracy_worse": fitted["loo"].get("sign_accuracy_worse"),
                "loo_spearman": fitted["loo"].get("spearman")},
        "notes": notes,
    }


def _rate_features(fit: dict, model: str, lr: float | None, base_final_lr: float | None) -> dict:
    """The learning-rate feature of a fit made on several rates (nothing for a fit at one
    rate, where ``lr`` is refused)."""
    if not studied_ratios(fit):
        if lr is not None:
            raise ConfigError(f"the fit {fit.get('_path', '')} was made at one learning rate: it cannot predict "
                              "at another", "refit it on a study with several rates (odyssey study --lr ...)")
        return {"features": {}}
    final = base_final_lr or _provenance_final_lr(model)
    if final is None and lr is not None:
        raise ConfigError(f"the base's final pretraining learning rate of {model} is unknown, so --lr {lr:g} "
                          "cannot be read as a multiple of it", "give --base-final-lr (the rate its pretraining "
                          "ended at), or leave --lr out to predict at that rate")
    if final is None:  # no rate known: predict for continuing at the base's final rate, whatever it was
        return {"features": {LR_FEATURE: 0.0}, "lr": None, "ratio": 1.0, "base_final_lr": None}
    lr = lr if lr is not None else final
    if not lr > 0:
        raise ConfigError(f"--lr must be > 0, got {lr}")
    return {"features": {LR_FEATURE: math.log(lr / final)}, "lr": lr, "ratio": lr / final, "base_final_lr": final}


def _provenance_final_lr(model: str) -> float | None:
    """The final learning rate recorded in an odyssey-pretrained model's provenance.json."""
    path = Path(model) / "provenance.json"
    if not path.is_file():
        return None
    cfg = (read_json(path).get("config") or {})
    peak, sched = (cfg.get("optim") or {}).get("lr"), cfg.get("schedule") or {}
    if not isinstance(peak, int | float):
        return None
    return float(peak) if sched.get("kind") == "constant" else float(peak) * float(sched.get("min_lr_ratio", 0.1))


def _with_rate(decision: dict, rate: dict, safe: dict) -> dict:
    """The recommendation, qualified by the learning rate: the largest safe rate, or rely."""
    lr = rate["lr"]
    if safe["ratio"] is None:
        return {**decision, "recommendation": "rely", "mitigation": None, "mitigations": [],
                "reason": f"in-domain perplexity is predicted to get worse at every studied learning rate "
                          f"(here: {decision['reason']}): rely on the base"}
    extra = (f"; the largest rate predicted not to worsen in-domain perplexity is {safe['lr']:.3g} "
             f"({safe['ratio']:.3g}× the base's final rate, predicted {safe['predicted_delta_ppl_pct']:+.1f}%)")
    if decision["recommendation"] == "rely" or lr > safe["lr"] * (1 + 1e-9):
        return {**decision, "recommendation": "adapt" if decision["recommendation"] != "mitigate" else "mitigate",
                "reason": f"at lr {lr:.3g}: {decision['reason']}{extra}: adapt at {safe['lr']:.3g} or below"}
    return {**decision, "reason": f"at lr {lr:.3g}: {decision['reason']}{extra}"}


def _comparability_notes(fit: dict, ref: ReferenceProfile, config: DiagnoseConfig, pred: dict) -> list[str]:
    notes = []
    if ref.kind == "wordfreq":
        notes.append("the reference is wordfreq's English frequencies, not a pretraining corpus: the "
                     "features are not comparable with the fit's; give --reference GENERAL_CORPUS")
    generals = {str(Path(s["general"]).resolve()) for s in fit.get("studies", []) if s.get("general")}
    if ref.kind != "wordfreq" and generals and str(Path(ref.name).resolve()) not in generals:
        notes.append(f"the reference {ref.name} is not the corpus the fit was made against "
                     f"({', '.join(sorted(generals))})")
    recorded = (fit.get("measurement") or {}).get("settings_hash")
    if recorded and recorded != settings_hash(config):
        notes.append("the features were measured with other settings than the fit's "
                     "(similarity, data_max_bytes): predictions may be off")
    out = [f["name"] for f in pred["features"] if f["outside_training_range"]]
    if out:
        notes.append(f"outside the training domains' range (extrapolating): {', '.join(out)}")
    return notes
