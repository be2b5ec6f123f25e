"""The design of a study, written down before any run: its factors and their levels,
the base model it adapts (with the learning rates and the pretraining curve of its
provenance) and the exact data (each corpus's sha256, the world's content hash).

``results.json`` carries it as ``design``, and the report prints it first: the levels
were fixed by the config, not chosen after looking at results.
"""

from __future__ import annotations

from pathlib import Path

from odyssey.corpora.store import is_corpus_dir, read_manifest
from odyssey.io import read_json


def provenance(model: str) -> dict | None:
    """The ``provenance.json`` an odyssey-pretrained model carries (None for others)."""
    path = Path(model)
    for candidate in (path / "provenance.json", path.parent / "provenance.json"):
        if candidate.is_file():
            try:
                return read_json(candidate)
            except (OSError, ValueError):
                return None
    return None


def _schedule_lrs(prov: dict) -> tuple[float | None, float | None]:
    """(peak, final) learning rate of a pretraining run's recorded config."""
    cfg = prov.get("config") or {}
    peak = (cfg.get("optim") or {}).get("lr")
    sched = cfg.get("schedule") or {}
    if not isinstance(peak, int | float):
        return None, None
    final = peak if sched.get("kind") == "constant" else peak * float(sched.get("min_lr_ratio", 0.1))
    return float(peak), float(final)


def base_final_lr(cfg, model: str) -> float | None:
    """The base's final pretraining rate: the study's ``base_final_lr``, else the one its
    provenance records, else None (then no rate is read as a ratio)."""
    if cfg.base_final_lr:
        return cfg.base_final_lr
    prov = provenance(model)
    return _schedule_lrs(prov)[1] if prov else None


def base_info(cfg, model: str) -> dict:
    """What the report says about the base: its rates and how saturated it was."""
    prov = provenance(model) or {}
    peak, final = _schedule_lrs(prov) if prov else (None, None)
    return {
        "model": model,
        "peak_lr": peak,
        "final_lr": cfg.base_final_lr or final,
        "pretraining_tokens": prov.get("tokens_seen"),
        "pretraining_steps": prov.get("steps"),
        "pretraining_curve": prov.get("curve") or [],
        "pretraining_command": prov.get("command"),
        "pretraining_data_sha256": ((prov.get("data") or {}).get("splits") or {}).get("train", {}).get("sha256"),
    }


def corpus_hashes(path: str) -> dict | None:
    """The sha256 of each split of a corpus directory, from its manifest."""
    if not is_corpus_dir(path):
        return None
    return {s: info.get("sha256") for s, info in (read_manifest(path).get("splits") or {}).items()}


def world_info(general: str) -> dict | None:
    """The default world's content hash when the general corpus is a world's."""
    world_file = Path(general).parent / "world.json"
    if not world_file.is_file():
        return None
    world = read_json(world_file)
    return {"root": str(world_file.parent), "content_sha256": world.get("content_sha256"),
            "inputs": world.get("inputs"), "format": world.get("format")}


def _swept(planned, targets) -> list[str] | None:
    """The domains run at every rate, when they are not all of them."""
    swept = sorted({p.domain for p in planned if p.plain and not p.reference})
    return swept if swept and len(swept) < len(targets.domains) else None


def study_design(cfg, targets, planned) -> dict:
    """The factors, levels and data of a study, as plain data."""
    final = base_final_lr(cfg, targets.model)
    lrs = cfg.recipe.lrs
    return {
        "note": "factors and levels are fixed by the study's config before any run",
        "factors": {
            "domain": [{"name": d.name, "kind": d.kind} for d in targets.domains],
            "lr": lrs,
            "lr_ratio": [lr / final for lr in lrs] if final else None,
        },
        "reference_lr": lrs[0],
        "lr_sweep_domains": _swept(planned, targets),
        "mitigations": list(cfg.mitigations),
        "runs": len(planned),
        "base": base_info(cfg, targets.model),
        "data": {"general": corpus_hashes(targets.general),
                 "domains": {d.name: corpus_hashes(d.path) for d in targets.domains},
                 "world": world_info(targets.general)},
    }
