"""The analyses a study's report shows beside its results table, gathered from the study
directory: token attribution of each run's test text (base against adapted, cached in
``runs/<run>/attribution.json``), the phase diagram of domains × learning rates and the
attribution of every cell that got worse (:mod:`odyssey.report.experiment`), the
predictor section with the similarity measures of ``features.json``, and the pure
sections of :mod:`odyssey.report.sections`.

A section that cannot be built (a run without per-token arrays, a study never measured
for similarity) is left out with a note, never an error: the report must always be
writable from the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from odyssey.errors import OdysseyError
from odyssey.io import read_json, write_json
from odyssey.report.experiment import degradation_section, findings_section, phase_section
from odyssey.report.sections import (
    compact_attribution,
    energy_section,
    mitigation_section,
    probe_section,
    task_section,
)

log = logging.getLogger(__name__)

ATTRIBUTION_FILE = "attribution.json"  # cached per run: runs/<domain>/attribution.json
ATTRIBUTION_FORMAT = 1


def study_sections(study_dir: str | Path, results: Mapping) -> dict:
    """``{"attribution", "predictor", "energy", "mitigations", "probes", "tasks", ...}``: the ``sections`` of
    ``render_report``."""
    study_dir = Path(study_dir)
    cell_attributions = cells_attribution(study_dir, results)
    degradation = degradation_section(results, cell_attributions)
    return {
        "attribution": attribution_section(study_dir, results),
        "phase": phase_section(results),
        "degradation": degradation,
        "findings": findings_section(results, degradation),
        "design": results.get("design") or {},
        "predictor": predictor_report(study_dir, results),
        "energy": energy_section(results),
        "mitigations": mitigation_section(results),
        "probes": probe_section(results),
        "tasks": task_section(results),
    }


# -- attribution -------------------------------------------------------------------------------
def attribution_summary(run_dir: Path, reference: str | None, base_dir: Path | None = None) -> dict | None:
    """The token attribution of a run's test text (the base's evaluation in
    ``base_dir/evals/base-test``, default the run's own, against the adapted model's),
    cached in ``run_dir/attribution.json``; None when the per-token arrays are missing."""
    before, after = (base_dir or run_dir) / "evals" / "base-test", run_dir / "evals" / "adapted-test"
    if not ((before / "tokens.safetensors").is_file() and (after / "tokens.safetensors").is_file()):
        return None
    cache = run_dir / ATTRIBUTION_FILE
    stamp = {"format": ATTRIBUTION_FORMAT, "reference": reference,
             "before_mtime": (before / "tokens.safetensors").stat().st_mtime,
             "after_mtime": (after / "tokens.safetensors").stat().st_mtime}
    if cache.is_file():
        saved = read_json(cache)
        if saved.get("stamp") == stamp:
            return saved["summary"]
    from odyssey.analysis.tokens import attribute

    summary = attribute(before, after, reference=reference).summary()
    write_json(cache, {"stamp": stamp, "summary": summary})
    return summary


def attribution_section(study_dir: Path, results: Mapping) -> dict:
    general = (results.get("study") or {}).get("general")
    domains, notes = {}, []
    for d in results.get("domains", []):
        try:
            summary = attribution_summary(study_dir / "runs" / d["name"], general)
        except (OdysseyError, OSError, KeyError, ValueError) as e:
            notes.append(f"{d['name']}: attribution failed ({e})")
            continue
        if summary is None:
            notes.append(f"{d['name']}: no per-token evaluations to attribute")
            continue
        domains[d["name"]] = compact_attribution(summary)
    return {"domains": domains, "notes": notes}


def cells_attribution(study_dir: Path, results: Mapping) -> dict[str, dict]:
    """Run name -> compact attribution, for every plain run of the study (all rates)."""
    general = (results.get("study") or {}).get("general")
    out = {}
    for c in results.get("cells", []):
        try:
            run = c.get("run", c["name"])
            summary = attribution_summary(study_dir / "runs" / run, general, base_dir=study_dir / "runs" / c["domain"])
        except (OdysseyError, OSError, KeyError, ValueError) as e:
            log.info("%s: attribution failed (%s)", c.get("run"), e)
            continue
        if summary is not None:
            out[run] = compact_attribution(summary)
    return out


# -- similarity and prediction -------------------------------------------------------------------
def predictor_report(study_dir: Path, results: Mapping) -> dict:
    """:func:`~odyssey.analysis.predictor.predictor_section` with the shipped default fit and
    the similarity measures cached in ``STUDY_DIR/features.json`` (written by
    ``odyssey diagnose fit STUDY_DIR``)."""
    from odyssey.analysis.diagnose import load_study_features
    from odyssey.analysis.predictor import load_fit, predictor_section

    try:
        fit = load_fit()
    except OdysseyError as e:
        log.info("no predictor fit: %s", e)
        fit = None
    features = load_study_features(study_dir) or None
    section = predictor_section(results, fit, features)
    section["measured_here"] = features is not None
    return section
