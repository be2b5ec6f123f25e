"""`odyssey study`: for each domain, evaluate the base, adapt one epoch, evaluate again.

Layout of a study directory::

    OUT/config.yaml           the resolved StudyConfig
    OUT/results.sqlite        evaluations, runs and curves (StudyStore)
    OUT/evals/base-general/   per-token arrays of the base on the general test split
    OUT/runs/<domain>/        an adapt run (config, checkpoint, model, metrics.jsonl)
    OUT/runs/<domain>/evals/  per-token arrays: base-test, adapted-test, adapted-general
    OUT/results.json          machine-readable results
    OUT/report.html           the report

Every evaluation and every finished run is recorded in the store as soon as it is
done; a killed study, run again, skips them and resumes an interrupted adapt run
from its checkpoint.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from odyssey import __version__
from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.tracking import read_metrics
from odyssey.config import save_config
from odyssey.corpora.store import iter_split
from odyssey.energy import run_energy
from odyssey.errors import ConfigError
from odyssey.evaluate.config import EvalConfig
from odyssey.io import write_json
from odyssey.study.config import DomainSpec, StudyConfig
from odyssey.study.store import StudyStore


@dataclass
class Targets:
    model: str
    general: str
    domains: list[DomainSpec]


def resolve_targets(cfg: StudyConfig, progress: bool = True) -> Targets:
    """Fill what the config leaves open from the default world and base model."""
    world = None
    if cfg.general is None or cfg.domains is None:
        from odyssey.corpora.world import build_world

        world = build_world(progress=progress)
    if cfg.model is None:
        from odyssey.models.presets import default_base_path

        model = str(default_base_path())
    else:
        model = cfg.model
    general = cfg.general or world["general"]["dir"]
    domains = cfg.domains or [DomainSpec(name=d["name"], path=d["dir"], kind=d["kind"], description=d["description"])
                              for d in world["domains"]]
    if cfg.only:
        unknown = sorted(set(cfg.only) - {d.name for d in domains})
        if unknown:
            raise ConfigError(f"unknown domain(s) in only: {', '.join(unknown)}",
                              f"choose from {', '.join(d.name for d in domains)}")
        domains = [d for d in domains if d.name in cfg.only]
    names = [d.name for d in domains]
    if len(set(names)) != len(names):
        raise ConfigError("two domains share a name", "give each domain a unique name")
    return Targets(model, general, domains)


class Study:
    """Runs a study's steps, each recorded in the store and skipped when already done."""

    def __init__(self, cfg: StudyConfig, console: Console | None = None, progress: bool = True):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.console = console or Console(stderr=True)
        self.progress = progress
        self.store = StudyStore(self.out / "results.sqlite")

    def evaluation(self, key: str, model: str, data: str, out_dir: Path, max_tokens: int | None = None) -> dict:
        """The summary of evaluating ``model`` on ``data``; computed once, then read from the store."""
        from odyssey.evaluate.run import evaluate

        cached = self.store.get_eval(key)
        if cached is not None:
            return cached
        ecfg = EvalConfig(**{**self.cfg.test_eval.model_dump(), "max_tokens": max_tokens or self.cfg.test_eval.max_tokens})
        summary = evaluate(model, data, ecfg, out_dir=out_dir, allow_pickle=self.cfg.allow_pickle,
                           trust_remote_code=self.cfg.trust_remote_code).summary()
        self.store.put_eval(key, summary)
        return summary

    def adapt_config(self, targets: Targets, domain: DomainSpec) -> AdaptConfig:
        r = self.cfg.recipe
        return AdaptConfig(model=targets.model, data=domain.path, general=targets.general,
                           out=str(self.out / "runs" / domain.name), train=r.train, optim=r.optim,
                           schedule=r.schedule, eval=r.eval, eval_every=r.eval_every, resume=True,
                           allow_pickle=self.cfg.allow_pickle, trust_remote_code=self.cfg.trust_remote_code)

    def run_domain(self, targets: Targets, domain: DomainSpec, position: int) -> dict:
        from odyssey.adapt.loop import adapt

        run_dir = self.out / "runs" / domain.name
        gtest, gcap = f"{targets.general}:test", self.cfg.general_test_max_tokens
        before = self.evaluation(f"base|{domain.name}:test", targets.model, f"{domain.path}:test",
                                 run_dir / "evals" / "base-test")
        started = time.perf_counter()
        result = adapt(self.adapt_config(targets, domain), progress=self.progress)
        adapted = str(run_dir / "model")
        after = self.evaluation(f"{domain.name}|{domain.name}:test", adapted, f"{domain.path}:test",
                                run_dir / "evals" / "adapted-test")
        general_after = self.evaluation(f"{domain.name}|general:test", adapted, gtest,
                                        run_dir / "evals" / "adapted-general", gcap)
        general_before = self.store.get_eval("base|general:test")
        record = domain_record(domain, before, after, general_before, general_after, result,
                               seconds=time.perf_counter() - started)
        self.store.put_metrics(domain.name, read_metrics(run_dir))
        self.store.put_run(domain.name, "done", record, position)
        return record

    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        targets = resolve_targets(cfg, self.progress)
        save_config(cfg, self.out / "config.yaml")
        self.store.set_meta("config", cfg.model_dump(mode="json"))
        self.store.set_meta("targets", {"model": targets.model, "general": targets.general,
                                        "domains": [d.model_dump() for d in targets.domains]})
        self.console.print(f"[bold]study[/] {cfg.name}: {len(targets.domains)} domains, model {targets.model}")
        base = self.evaluation("base|general:test", targets.model, f"{targets.general}:test",
                               self.out / "evals" / "base-general", cfg.general_test_max_tokens)
        self.console.print(f"  base model on general test: perplexity {base['perplexity']:.2f}, "
                           f"{base['bits_per_byte']:.3f} bits/byte")
        n = len(targets.domains)
        for i, domain in enumerate(targets.domains):
            done = self.store.get_run(domain.name)
            tag = f"[{i + 1}/{n}] {domain.name}"
            if done and done["status"] == "done":
                self.console.print(f"  {tag}: done earlier ({done['delta_ppl_pct']:+.2f}%)")
                continue
            self.console.print(f"  {tag}: adapting ({_elapsed(started)} elapsed)")
            rec = self.run_domain(targets, domain, i)
            self.console.print(f"  {tag}: perplexity {rec['ppl_before']:.2f} → {rec['ppl_after']:.2f} "
                               f"({rec['delta_ppl_pct']:+.2f}%), general {rec['forgetting_pct']:+.2f}%, "
                               f"{rec['seconds']:.0f} s")
        self.store.set_meta("seconds", self.store.get_meta("seconds", 0.0) + time.perf_counter() - started)
        return write_outputs(self.out, self.store)


def domain_record(domain: DomainSpec, before: dict, after: dict, general_before: dict, general_after: dict,
                  result, seconds: float) -> dict:
    def pct(a, b):
        return 100.0 * (a / b - 1.0)

    sample = next(iter_split(domain.path, "test"))["text"][:600]
    return {
        "name": domain.name, "kind": domain.kind, "description": domain.description, "path": domain.path,
        "ppl_before": before["perplexity"], "ppl_after": after["perplexity"],
        "bpb_before": before["bits_per_byte"], "bpb_after": after["bits_per_byte"],
        "general_ppl_before": general_before["perplexity"], "general_ppl_after": general_after["perplexity"],
        "general_bpb_before": general_before["bits_per_byte"], "general_bpb_after": general_after["bits_per_byte"],
        "delta_ppl_pct": pct(after["perplexity"], before["perplexity"]),
        "forgetting_pct": pct(general_after["perplexity"], general_before["perplexity"]),
        "train_tokens": result.tokens, "train_steps": result.steps, "train_seconds": result.seconds,
        "test_tokens": before["tokens"], "test_bytes": before["bytes"], "seconds": seconds, "sample": sample,
        # energy_kwh, energy_method: the run's energy.csv rows and its evals' (odyssey.energy)
        **run_energy(result.out_dir),
    }


def collect_results(store: StudyStore) -> dict:
    """The content of ``results.json``, from the store alone."""
    cfg = store.get_meta("config", {})
    targets = store.get_meta("targets", {})
    base = store.get_eval("base|general:test") or {}
    return {
        "study": {"name": cfg.get("name"), "model": targets.get("model"), "general": targets.get("general"),
                  "recipe": cfg.get("recipe"), "test_eval": cfg.get("test_eval"),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "odyssey_version": __version__,
                  "seconds": store.get_meta("seconds"),
                  "machine": f"{platform.machine()}, {_cpus()} CPUs, {_device()}"},
        "base": {"general_ppl": base.get("perplexity"), "general_bpb": base.get("bits_per_byte")},
        "domains": store.runs("done"),
    }


def write_outputs(out: Path, store: StudyStore) -> dict:
    """``results.json`` and ``report.html`` from the store (also `odyssey report`)."""
    from odyssey.report import render_report
    from odyssey.report.sections import study_sections

    results = collect_results(store)
    write_json(out / "results.json", results)
    curves = {d["name"]: store.metrics(d["name"]) for d in results["domains"]}
    render_report(results, curves, out / "report.html", sections=study_sections(out, results))
    return results


def run_study(cfg: StudyConfig, *, progress: bool = True, console: Console | None = None) -> dict:
    """Run (or resume) a study; return the results.json content.

    >>> results = run_study(StudyConfig(out="studies/default"))
    """
    study = Study(cfg, console=console, progress=progress)
    try:
        return study.run()
    finally:
        study.store.close()


def _elapsed(t0: float) -> str:
    s = int(time.perf_counter() - t0)
    return f"{s // 60}:{s % 60:02d}"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _device() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
