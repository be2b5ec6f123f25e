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
from odyssey.machine import describe, elapsed
from odyssey.study.config import DomainSpec, StudyConfig
from odyssey.study.store import StudyStore
from odyssey.study.variants import Variant, run_name, study_variants


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

    def adapt_config(self, targets: Targets, domain: DomainSpec, variant: Variant | None = None) -> AdaptConfig:
        r, cfg = self.cfg.recipe, self.cfg
        optim = r.optim if variant is None or variant.lr is None else r.optim.model_copy(update={"lr": variant.lr})
        methods = list(variant.methods) if variant else []
        mitigation = cfg.mitigation.model_copy(update={"methods": methods})
        return AdaptConfig(model=targets.model, data=domain.path, general=targets.general,
                           out=str(self.out / "runs" / run_name(domain.name, variant)), train=r.train, optim=optim,
                           schedule=r.schedule, eval=r.eval, eval_every=r.eval_every, resume=True,
                           mitigation=mitigation, allow_pickle=cfg.allow_pickle,
                           trust_remote_code=cfg.trust_remote_code)

    def run_domain(self, targets: Targets, domain: DomainSpec, position: int, variant: Variant | None = None) -> dict:
        """Adapt one domain (plainly, or with a mitigation variant), evaluate before and
        after, probe the plain run, write its model card; record it in the store."""
        from odyssey.adapt.loop import adapt
        from odyssey.report.model_card import write_model_card

        name = run_name(domain.name, variant)
        run_dir = self.out / "runs" / name
        gtest, gcap = f"{targets.general}:test", self.cfg.general_test_max_tokens
        before = self.evaluation(f"base|{domain.name}:test", targets.model, f"{domain.path}:test",
                                 self.out / "runs" / domain.name / "evals" / "base-test")
        started = time.perf_counter()
        result = adapt(self.adapt_config(targets, domain, variant), progress=self.progress)
        adapted = str(run_dir / "model")
        after = self.evaluation(f"{name}|{domain.name}:test", adapted, f"{domain.path}:test",
                                run_dir / "evals" / "adapted-test")
        general_after = self.evaluation(f"{name}|general:test", adapted, gtest,
                                        run_dir / "evals" / "adapted-general", gcap)
        general_before = self.store.get_eval("base|general:test")
        probes = self.probe(targets, domain, run_dir) if variant is None else None
        record = domain_record(domain, before, after, general_before, general_after, result,
                               seconds=time.perf_counter() - started)
        record.update(domain=domain.name, variant=variant.name if variant else None,
                      methods=list(variant.methods) if variant else [],
                      lr=(variant.lr if variant and variant.lr else self.cfg.recipe.optim.lr))
        if probes:
            record["probes"] = probes
            write_model_card(run_dir, base_model=targets.model)  # adapt wrote it before the probes ran
        self.store.put_metrics(name, read_metrics(run_dir))
        self.store.put_run(name, "done", record, position)
        return record

    def probe(self, targets: Targets, domain: DomainSpec, run_dir: Path) -> dict | None:
        """Bias and memorization of the adapted model against the base (``run_dir/probes``);
        their headline figures for the study's record."""
        from odyssey.analysis.probes import (
            bias_probe,
            memorization_probe,
            probe_headline,
            save_probe,
        )

        wanted, results = self.cfg.probes.run, {}
        if not wanted:
            return None
        adapted = str(run_dir / "model")
        if "bias" in wanted:
            results["bias"] = bias_probe(adapted, against=targets.model, config=self.cfg.probes.bias)
        if "memorization" in wanted:
            results["memorization"] = memorization_probe(adapted, domain.path, against=targets.model,
                                                         config=self.cfg.probes.memorization)
        for r in results.values():
            save_probe(r, run_dir / "probes")
        return probe_headline(results.get("bias"), results.get("memorization"))

    def run(self) -> dict:
        from odyssey.study.executor import DomainTask, make_executor

        cfg, started = self.cfg, time.perf_counter()
        executor = make_executor(cfg)
        targets = resolve_targets(cfg, self.progress)
        save_config(cfg, self.out / "config.yaml")
        self.store.set_meta("config", cfg.model_dump(mode="json"))
        targets_dict = {"model": targets.model, "general": targets.general,
                        "domains": [d.model_dump() for d in targets.domains]}
        self.store.set_meta("targets", targets_dict)
        self.console.print(f"[bold]study[/] {cfg.name}: {len(targets.domains)} domains, model {targets.model}")
        base = self.evaluation("base|general:test", targets.model, f"{targets.general}:test",
                               self.out / "evals" / "base-general", cfg.general_test_max_tokens)
        self.console.print(f"  base model on general test: perplexity {base['perplexity']:.2f}, "
                           f"{base['bits_per_byte']:.3f} bits/byte")
        variants = [None, *study_variants(cfg.mitigations)]
        n = len(targets.domains) * len(variants)
        tasks = []
        for i, domain in enumerate(targets.domains):
            for j, variant in enumerate(variants):
                position = i * len(variants) + j
                name = run_name(domain.name, variant)
                done = self.store.get_run(name)
                if done and done["status"] == "done":
                    self.console.print(f"  [{position + 1}/{n}] {name}: done earlier ({done['delta_ppl_pct']:+.2f}%)")
                    continue
                tasks.append(DomainTask(cfg.model_dump(mode="json"), targets_dict, domain.name, position,
                                        variant.name if variant else None))

        def tag(task: DomainTask) -> str:
            return f"[{task.position + 1}/{n}] {task.run}"

        def on_start(task: DomainTask) -> None:
            self.console.print(f"  {tag(task)}: adapting ({elapsed(started)} elapsed)")

        def on_done(task: DomainTask, rec: dict) -> None:
            self.console.print(f"  {tag(task)}: perplexity {rec['ppl_before']:.2f} → {rec['ppl_after']:.2f} "
                               f"({rec['delta_ppl_pct']:+.2f}%), general {rec['forgetting_pct']:+.2f}%, "
                               f"{rec['seconds']:.0f} s")

        # local: in this process, in order; ray: each domain a Ray task (odyssey.study.executor)
        executor.run(tasks, study=self, on_start=on_start, on_done=on_done)
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
    runs = store.runs("done")
    return {
        "study": {"name": cfg.get("name"), "model": targets.get("model"), "general": targets.get("general"),
                  "recipe": cfg.get("recipe"), "test_eval": cfg.get("test_eval"),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "odyssey_version": __version__,
                  "seconds": store.get_meta("seconds"),
                  "machine": describe()},
        "base": {"general_ppl": base.get("perplexity"), "general_bpb": base.get("bits_per_byte")},
        "domains": [r for r in runs if not r.get("variant")],
        "mitigations": [r for r in runs if r.get("variant")],
    }


def write_outputs(out: Path, store: StudyStore) -> dict:
    """``results.json`` and ``report.html`` from the store (also `odyssey report`)."""
    from odyssey.report import render_report
    from odyssey.study.analyses import study_sections

    results = collect_results(store)
    write_json(out / "results.json", results)
    curves = {d["name"]: store.metrics(d["name"]) for d in results["domains"]}  # plain runs only
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

