"""`odyssey diagnose`: will adapting this model to this data help? Measure the data's
similarity to the model's pretraining data (optionally run a short probe), feed the
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
import tempfile
from collections.abc import Sequence
from pathlib import Path

from odyssey.analysis.config import DiagnoseConfig, ProbeConfig
from odyssey.analysis.predictor import PROBE_FEATURE, decide, fit_predictor, load_fit, predict
from odyssey.analysis.reference_cache import cached_reference
from odyssey.analysis.similarity import MEASURES, ReferenceProfile, similarity
from odyssey.errors import ConfigError, DataError
from odyssey.io import read_json, sha256_file, write_json

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


def data_fingerprint(spec: str | os.PathLike | None, split: str = "train") -> str | None:
    """sha256 of a corpus split (the manifest's record, else of its shard files) or of a
    file; ``None`` when the data is not on this machine."""
    from odyssey.corpora.store import is_corpus_dir, parse_data_spec, read_manifest, split_files

    if spec is None:
        return None
    path, sp = parse_data_spec(str(spec), split)
    if is_corpus_dir(path):
        recorded = ((read_manifest(path).get("splits") or {}).get(sp or split) or {}).get("sha256")
        if recorded:
            return recorded
        h = hashlib.sha256()
        for f in split_files(path, sp or split):
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    return sha256_file(path) if path.is_file() else None


def model_fingerprint(model: str | os.PathLike | None) -> str | None:
    """sha256 of a local model's ``model.safetensors``; ``None`` for anything else."""
    from odyssey.models.load import resolve_model_path

    if model is None:
        return None
    weights = Path(resolve_model_path(model)) / "model.safetensors"
    return sha256_file(weights) if weights.is_file() else None


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
def _probe_documents(data: str, max_bytes: int) -> tuple[list[dict], list[dict], int]:
    """(train slice, valid documents, bytes of the whole train split)."""
    from odyssey.corpora.store import is_corpus_dir, iter_split, load_documents, parse_data_spec

    path, _ = parse_data_spec(str(data))
    if is_corpus_dir(path):
        train_iter, valid = iter_split(path, "train"), list(iter_split(path, "valid"))
    else:
        docs = load_documents(path)
        valid = docs[::10]
        train_iter = iter(d for i, d in enumerate(docs) if i % 10)
    sliced, sliced_bytes, total = [], 0, 0
    for doc in train_iter:
        size = len(doc["text"].encode("utf-8"))
        total += size
        if sliced_bytes < max_bytes:
            sliced.append(doc)
            sliced_bytes += size
    if not sliced or not valid:
        raise DataError(f"{data}: the probe needs train and valid documents", "give a corpus with both splits")
    return sliced, valid, total


def run_probe(model: str, data: str, config: ProbeConfig | None = None, recipe=None,
              progress: bool = True) -> dict:
    """A short adapt run (``config.steps`` steps of the study ``recipe``, default
    :class:`odyssey.study.config.Recipe`) on a slice of the train split, in a temporary
    directory; the change of valid perplexity, extrapolated to one epoch of the whole
    train split.

    Extrapolation: the log-perplexity change is taken to grow like ``log(1 + steps)``
    (loss curves are roughly straight against log steps), so
    ``d_epoch = d_probe * log(1 + epoch_steps) / log(1 + probe_steps)``, with
    ``epoch_steps`` estimated from the slice's tokens per byte and the train split's bytes.

    >>> run_probe("runs/base", "corpora/legal")["probe_delta_ppl_pct"]
    """
    from odyssey.adapt.config import AdaptConfig
    from odyssey.adapt.loop import adapt
    from odyssey.io import write_jsonl
    from odyssey.models import load_tokenizer
    from odyssey.study.config import Recipe

    config = config or ProbeConfig()
    recipe = recipe or Recipe()
    sliced, valid, train_bytes = _probe_documents(data, config.max_bytes)
    with tempfile.TemporaryDirectory(prefix="odyssey-probe-") as tmp:
        corpus = Path(tmp) / "slice"
        write_jsonl(corpus / "train" / "shard-00000.jsonl", sliced)
        write_jsonl(corpus / "valid" / "shard-00000.jsonl", valid)
        write_json(corpus / "manifest.json", {"name": "probe-slice", "splits": {}})
        cfg = AdaptConfig(model=str(model), data=str(corpus), out=str(Path(tmp) / "run"),
                          train=recipe.train.model_copy(update={"max_steps": config.steps}),
                          optim=recipe.optim, schedule=recipe.schedule,
                          eval=recipe.eval.model_copy(update={"max_tokens": config.valid_max_tokens}),
                          eval_every=0)
        result = adapt(cfg, progress=progress)
    before, after = result.evals["valid"]["before"]["perplexity"], result.evals["valid"]["after"]["perplexity"]
    tok = load_tokenizer(model)
    slice_bytes = sum(len(d["text"].encode("utf-8")) for d in sliced)
    slice_tokens = sum(len(ids) + 1 for ids in tok([d["text"] for d in sliced])["input_ids"])
    tokens_per_step = result.tokens / max(1, result.steps)
    epoch_steps = max(1, math.ceil(slice_tokens / slice_bytes * train_bytes / tokens_per_step))
    d = math.log(after / before)
    factor = math.log1p(epoch_steps) / math.log1p(result.steps)
    return {"steps": result.steps, "tokens": result.tokens, "slice_bytes": slice_bytes, "train_bytes": train_bytes,
            "valid_ppl_before": before, "valid_ppl_after": after,
            "delta_ppl_pct": 100.0 * (after / before - 1.0), "epoch_steps": epoch_steps,
            "extrapolation_factor": factor, PROBE_FEATURE: 100.0 * math.expm1(d * factor),
            "seconds": result.seconds}


# -- fitting on studies ---------------------------------------------------------------------
def _read_results(study_dir: Path) -> dict:
    if not (study_dir / "results.json").is_file():
        raise DataError(f"{study_dir} has no results.json", "give a directory `odyssey study` finished")
    results = read_json(study_dir / "results.json")
    if not isinstance(results, dict) or "domains" not in results or "study" not in results:
        raise DataError(f"{study_dir}/results.json is not a study's results")
    return results


def _recipe_of(results: dict):
    from odyssey.study.config import Recipe

    raw = results["study"].get("recipe")
    return Recipe.model_validate(raw) if raw else Recipe()


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
                   probe: bool = False, progress: bool = True, log=None) -> list[dict]:
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
    for d in results["domains"]:
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
                entry["probe"] = {"key": pkey, **run_probe(study["model"], d["path"], config.probe,
                                                           _recipe_of(results), progress=progress)}
                write_json(cache_path, cache)
            feats[PROBE_FEATURE] = entry["probe"][PROBE_FEATURE]
        rows.append({"name": d["name"], "study": str(study_dir), "kind": d.get("kind"), "path": d["path"],
                     "delta_ppl_pct": d.get("delta_ppl_pct"), "forgetting_pct": d.get("forgetting_pct"),
                     "features": feats})
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
                out: str | os.PathLike | None = None, probe: bool = False, progress: bool = True,
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
             config: DiagnoseConfig | None = None, probe: bool = False, progress: bool = False) -> dict:
    """Recommend ``adapt``, ``rely`` or ``mitigate`` for adapting ``model`` (default: the
    shipped base) to ``data``, with the predicted change of in-domain perplexity (%),
    its interval and the evidence (see :func:`odyssey.analysis.predictor.decide` for
    the rule).

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
    probe_result = None
    if probe:
        probe_result = run_probe(model, str(data), config.probe, progress=progress)
        features[PROBE_FEATURE] = probe_result[PROBE_FEATURE]
        if not uses_probe:
            notes.append("the probe is shown as evidence but the fit does not use it "
                         "(refit with: odyssey diagnose fit STUDY_DIR --probe)")
    pred = predict(fit, features)
    fitted = fit["targets"]["delta_ppl_pct"]
    decision = decide(pred["predicted_delta_ppl_pct"], pred["interval"], pred.get("predicted_forgetting_pct"),
                      config.decision)
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
        "similarity": {k: v for k, v in sim.items() if k != "notes"},
        "probe": probe_result,
        "fit": {"path": fit.get("_path"), "studies": [s.get("dir") for s in fit.get("studies", [])],
                "domains": len(fit.get("domains", [])), "features": fit["features"],
                "loo_sign_accuracy": fitted["loo"]["sign_accuracy"], "loo_mae": fitted["loo"]["mae"]},
        "notes": notes,
    }


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
