"""`odyssey study`: for each domain and learning rate, evaluate the base, adapt one
epoch, evaluate again.

Layout of a study directory::

    OUT/config.yaml           the resolved StudyConfig
    OUT/results.sqlite        evaluations, runs and curves (ResultsStore)
    OUT/evals/base-general/   per-token arrays of the base on the general test split
    OUT/runs/<run>/           an adapt run (config, checkpoint, model, metrics.jsonl);
                              <run> is <domain>, <domain>@lr=<rate> or <domain>@<variant>
    OUT/runs/<domain>/evals/  per-token arrays: base-test, adapted-test, adapted-general
    OUT/results.json          machine-readable results
    OUT/report.html           the report

Every evaluation and every finished run is recorded in the store as soon as it is
done, under the fingerprint of everything that decides it (the resolved adapt
config, the evaluation settings, the data's and the base model's sha256). A study
run again skips what is stored under the same fingerprint, resumes an interrupted
run from its latest checkpoint (``recipe.save_every``), and refuses to reuse a run
made under another config, naming what differs, unless told to redo such runs
(``rerun_changed``), a domain (``redo``) or everything (``overwrite``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from odyssey import __version__
from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.tracking import read_metrics
from odyssey.config import config_differences, save_config
from odyssey.corpora.store import data_fingerprint, iter_split, split_files
from odyssey.energy import run_energy
from odyssey.errors import ConfigError
from odyssey.evaluate.config import EvalConfig
from odyssey.io import write_json
from odyssey.machine import describe, elapsed
from odyssey.models.fingerprint import model_fingerprint
from odyssey.results_store import ResultsStore
from odyssey.study.config import DEFAULT_WORLD_SWEEP, DomainSpec, StudyConfig
from odyssey.study.design import base_final_lr, study_design
from odyssey.study.executor import DomainTask, make_executor
from odyssey.study.plan import PlannedRun, plan_runs
from odyssey.study.tasks import TASKS_FILE, check_harness, measure_tasks, task_fields, task_settings
from odyssey.study.variants import parse_variant

# What a study writes into its directory (and --overwrite removes): nothing else is touched.
STUDY_OUTPUTS = ("runs", "evals", "results.sqlite", "results.sqlite-wal", "results.sqlite-shm", "results.json",
                 "report.html", "config.yaml", "features.json")


@dataclass
class Targets:
    model: str
    general: str
    domains: list[DomainSpec]

    def domain(self, name: str) -> DomainSpec:
        return next(d for d in self.domains if d.name == name)

    def to_dict(self) -> dict:
        return {"model": self.model, "general": self.general, "domains": [d.model_dump() for d in self.domains]}

    @classmethod
    def from_dict(cls, t: dict) -> Targets:
        return cls(t["model"], t["general"], [DomainSpec.model_validate(d) for d in t["domains"]])


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


def _sha(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class Study:
    """Runs a study's steps, each recorded in the store and skipped when already done
    under the same fingerprint.

    ``overwrite``: remove what an earlier study wrote into ``cfg.out`` first;
    ``rerun_changed``: redo stored runs whose fingerprint differs (else: refuse);
    ``redo``: domains whose runs are redone from scratch.
    """

    def __init__(self, cfg: StudyConfig, console: Console | None = None, progress: bool = True,
                 targets: Targets | None = None, *, overwrite: bool = False, rerun_changed: bool = False,
                 redo: tuple[str, ...] | list[str] = ()):
        self.cfg = cfg
        self.overwrite, self.rerun_changed, self.redo = overwrite, rerun_changed, tuple(redo)
        self.out = Path(cfg.out)
        self.console = console or Console(stderr=True)
        self.progress = progress
        self.targets = targets
        self._store: ResultsStore | None = None
        self._fingerprints: dict[str, str | None] = {}

    @property
    def store(self) -> ResultsStore:
        if self._store is None:  # opened only once the config has been checked
            self._store = ResultsStore(self.out / "results.sqlite")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- fingerprints ---------------------------------------------------------------------
    def _data_sha(self, spec: str, split: str) -> str | None:
        key = f"{spec}:{split}"
        if key not in self._fingerprints:
            self._fingerprints[key] = data_fingerprint(spec, split)
        return self._fingerprints[key]

    def _model_sha(self, model: str) -> str | None:
        if f"model:{model}" not in self._fingerprints:
            self._fingerprints[f"model:{model}"] = model_fingerprint(model)
        return self._fingerprints[f"model:{model}"]

    def _eval_config(self, max_tokens: int | None = None) -> EvalConfig:
        return EvalConfig(**{**self.cfg.test_eval.model_dump(), "max_tokens": max_tokens or self.cfg.test_eval.max_tokens})

    def run_fingerprint(self, adapt_cfg: AdaptConfig, planned: PlannedRun, domain: DomainSpec) -> dict:
        """Everything that decides a run's record, as plain data (its sha256 keys the run)."""
        volatile = {"out", "resume", "overwrite", "report_to", "energy"}  # how it is run, not what it computes
        return {
            "adapt": adapt_cfg.model_dump(mode="json", exclude=volatile),
            "model_sha256": self._model_sha(adapt_cfg.model),
            "data_sha256": {s: self._data_sha(domain.path, s) for s in ("train", "valid", "test")},
            "general_sha256": {s: self._data_sha(adapt_cfg.general, s) for s in ("valid", "test")},
            "test_eval": self._eval_config().model_dump(mode="json", exclude={"progress", "device"}),
            "general_test_max_tokens": self.cfg.general_test_max_tokens,
            "probes": self.cfg.probes.model_dump(mode="json") if planned.reference else None,
            # only when asked for, so that the runs of studies without tasks keep their fingerprints
            **({"forgetting": task_settings(self.cfg)} if self.cfg.forgetting.tasks else {}),
        }

    def eval_key(self, label: str, model: str, data: str, max_tokens: int | None, run_sha: str | None = None) -> str:
        """The store key of an evaluation: readable label + a hash of the model (weights or
        the run that made them), the data's sha256 and the evaluation settings."""
        path, _, split = data.rpartition(":")
        ecfg = self._eval_config(max_tokens).model_dump(mode="json", exclude={"progress", "device"})
        who = run_sha or self._model_sha(model) or model
        return f"{label}|{_sha([who, self._data_sha(path, split), ecfg])[:16]}"

    # -- steps ----------------------------------------------------------------------------
    def evaluation(self, key: str, model: str, data: str, out_dir: Path, max_tokens: int | None = None) -> dict:
        """The summary of evaluating ``model`` on ``data``; computed once, then read from the store."""
        from odyssey.evaluate.run import evaluate

        return self.stored(key, lambda: evaluate(
            model, data, self._eval_config(max_tokens), out_dir=out_dir, energy=self.cfg.energy,
            allow_pickle=self.cfg.allow_pickle, trust_remote_code=self.cfg.trust_remote_code).summary())

    def stored(self, key: str, compute) -> dict:
        """The store's entry under ``key``, computed and stored the first time."""
        cached = self.store.get_eval(key)
        if cached is None:
            cached = compute()
            self.store.put_eval(key, cached)
        return cached

    def base_general(self, targets: Targets) -> dict:
        data = f"{targets.general}:test"
        key = self.eval_key("base|general:test", targets.model, data, self.cfg.general_test_max_tokens)
        return self.evaluation(key, targets.model, data, self.out / "evals" / "base-general",
                               self.cfg.general_test_max_tokens)

    def task_scores(self, targets: Targets, label: str, model: str, work_dir: Path,
                    run_sha: str | None = None) -> dict | None:
        """The ``forgetting.tasks`` accuracies of ``model`` (None when no task is asked for);
        computed once, then read from the store (keyed by the model or the run that made it,
        the general test split the offline tasks are built from, the tasks and the limit)."""
        if not self.cfg.forgetting.tasks:
            return None
        who = run_sha or self._model_sha(model) or model
        key = f"{label}|tasks|{_sha([who, self._data_sha(targets.general, 'test'), task_settings(self.cfg)])[:16]}"
        return self.stored(key, lambda: measure_tasks(self.cfg, model, targets.general, work_dir))

    def base_tasks(self, targets: Targets) -> dict | None:
        return self.task_scores(targets, "base", targets.model, self.out / "evals" / "base-tasks")

    def adapt_config(self, targets: Targets, domain: DomainSpec, planned: PlannedRun) -> AdaptConfig:
        r, cfg = self.cfg.recipe, self.cfg
        variant = parse_variant(planned.variant) if planned.variant else None
        mitigation = cfg.mitigation.model_copy(update={"methods": list(variant.methods) if variant else []})
        return AdaptConfig(model=targets.model, data=domain.path, general=targets.general,
                           out=str(self.out / "runs" / planned.name), train=r.train, optim=r.optim.at(planned.lr),
                           schedule=r.schedule, eval=r.eval, eval_every=r.eval_every, save_every=r.save_every,
                           keep_checkpoints=1, resume=True, mitigation=mitigation, energy=cfg.energy,
                           allow_pickle=cfg.allow_pickle,
                           trust_remote_code=cfg.trust_remote_code)

    def run_domain(self, targets: Targets, planned: PlannedRun) -> dict:
        """Adapt one domain at one rate (plainly, or with a mitigation variant), evaluate
        before and after, probe the reference run, write its model card; record it."""
        from odyssey.adapt.loop import adapt
        from odyssey.report.model_card import write_model_card

        domain = targets.domain(planned.domain)
        adapt_cfg = self.adapt_config(targets, domain, planned)
        fingerprint = self.run_fingerprint(adapt_cfg, planned, domain)
        sha = _sha(fingerprint)
        run_dir = self.out / "runs" / planned.name
        test = f"{domain.path}:test"
        before = self.evaluation(self.eval_key(f"base|{domain.name}:test", targets.model, test, None),
                                 targets.model, test, self.out / "runs" / domain.name / "evals" / "base-test")
        started = time.perf_counter()
        result = adapt(adapt_cfg, progress=self.progress)
        adapted = str(run_dir / "model")
        after = self.evaluation(self.eval_key(f"{planned.name}|{domain.name}:test", adapted, test, None, sha),
                                adapted, test, run_dir / "evals" / "adapted-test")
        gtest, gcap = f"{targets.general}:test", self.cfg.general_test_max_tokens
        general_after = self.evaluation(self.eval_key(f"{planned.name}|general:test", adapted, gtest, gcap, sha),
                                        adapted, gtest, run_dir / "evals" / "adapted-general", gcap)
        general_before = self.base_general(targets)
        tasks_after = self.task_scores(targets, planned.name, adapted, run_dir / "evals" / "adapted-tasks", sha)
        probes = self.probe(targets, domain, run_dir) if planned.reference else None
        record = domain_record(domain, before, after, general_before, general_after, result,
                               seconds=time.perf_counter() - started)
        if tasks_after is not None:  # forgetting on tasks, beside forgetting in perplexity
            fields = task_fields(self.base_tasks(targets), tasks_after)
            record.update(fields)
            write_json(run_dir / TASKS_FILE, {**task_settings(self.cfg), **fields})  # for the model card
        final_lr = base_final_lr(self.cfg, targets.model)
        record.update(run=planned.name, domain=domain.name, variant=planned.variant, reference=planned.reference,
                      methods=list(parse_variant(planned.variant).methods) if planned.variant else [],
                      lr=planned.lr, lr_ratio=planned.lr / final_lr if final_lr else None,
                      config_sha256=sha, run_config=fingerprint)
        if probes:
            record["probes"] = probes
        write_model_card(run_dir, base_model=targets.model)  # with the probes, when they ran
        self.store.put_metrics(planned.name, read_metrics(run_dir))
        self.store.put_run(planned.name, "done", record, planned.position)
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

    # -- what is stored ----------------------------------------------------------------------
    def stored_status(self, targets: Targets, planned: PlannedRun) -> tuple[str, list[str]]:
        """``("new" | "done" | "changed", what differs)`` of a planned run against the store."""
        done = self.store.finished_run(planned.name)
        if not done:
            return "new", []
        domain = targets.domain(planned.domain)
        now = self.run_fingerprint(self.adapt_config(targets, domain, planned), planned, domain)
        if done.get("config_sha256") == _sha(now):
            return "done", []
        return "changed", config_differences(done.get("run_config") or {}, now) or ["(stored before fingerprints)"]

    def forget(self, name: str) -> None:
        """Remove a run's directory and record (to redo it from scratch)."""
        shutil.rmtree(self.out / "runs" / name, ignore_errors=True)
        self.store.delete_run(name)

    def pending(self, targets: Targets, planned: list[PlannedRun]) -> list[PlannedRun]:
        """The planned runs still to do, after applying redo / rerun_changed; refuses a
        changed run otherwise."""
        todo, changed = [], []
        for p in planned:
            if p.domain in self.redo:
                self.forget(p.name)
                todo.append(p)
                continue
            status, diff = self.stored_status(targets, p)
            if status == "done":
                rec = self.store.get_run(p.name)
                self.console.print(f"  [{p.position + 1}/{len(planned)}] {escape(p.name)}: done earlier "
                                   f"({rec['delta_ppl_pct']:+.2f}%)")
            elif status == "changed" and self.rerun_changed:
                self.console.print(f"  {escape(p.name)}: config changed ({', '.join(diff[:4])}): redoing it")
                self.forget(p.name)
                todo.append(p)
            elif status == "changed":
                changed.append((p.name, diff))
            else:
                todo.append(p)
        if changed:
            name, diff = changed[0]
            more = f" (and {len(changed) - 1} more runs)" if len(changed) > 1 else ""
            raise ConfigError(f"{self.out / 'runs' / name} was made with another config: {', '.join(diff[:5])} "
                              f"differ{more}",
                              "pass --rerun-changed to redo the runs whose config changed, --redo DOMAIN, "
                              "--overwrite to start the study over, or choose another --out")
        return todo

    # -- the study ----------------------------------------------------------------------------
    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        check_harness(cfg)
        executor = make_executor(cfg)
        targets = self.targets or resolve_targets(cfg, self.progress)
        planned = plan_runs([d.name for d in targets.domains], cfg.recipe.lrs, cfg.mitigations, sweep_domains(cfg, targets))
        unknown = sorted(set(self.redo) - {d.name for d in targets.domains})
        if unknown:
            raise ConfigError(f"unknown domain(s) to redo: {', '.join(unknown)}",
                              f"choose from {', '.join(d.name for d in targets.domains)}")
        if self.overwrite:
            self.close()
            remove_study_outputs(self.out)
            self._store = None
        save_config(cfg, self.out / "config.yaml")
        self.store.set_meta("config", cfg.model_dump(mode="json"))
        self.store.set_meta("targets", targets.to_dict())
        self.store.set_meta("design", study_design(cfg, targets, planned))
        self.console.print(f"[bold]study[/] {escape(cfg.name)}: {len(targets.domains)} domains × "
                           f"{len(cfg.recipe.lrs)} learning rates, {len(planned)} runs, model {escape(targets.model)}")
        base = self.base_general(targets)
        self.console.print(f"  base model on general test: perplexity {base['perplexity']:.2f}, "
                           f"{base['bits_per_byte']:.3f} bits/byte")
        base_tasks = self.base_tasks(targets)  # before the runs, which read it from the store
        if base_tasks:
            self.console.print("  base model on tasks: " + ", ".join(
                f"{escape(t)} {100 * r['acc']:.1f}%" for t, r in base_tasks.items() if r.get("acc") is not None))
        todo = self.pending(targets, planned)
        tasks = [DomainTask(cfg.model_dump(mode="json"), targets.to_dict(), p) for p in todo]
        if executor.name != "local":  # side by side: longest first (probed runs, then bigger domains),
            # so that no worker is left alone with a long run at the end
            tasks.sort(key=lambda t: (t.run.reference, train_bytes(targets.domain(t.run.domain).path)), reverse=True)

        def tag(task: DomainTask) -> str:
            return f"[{task.run.position + 1}/{len(planned)}] {escape(task.run.name)}"

        def on_start(task: DomainTask) -> None:
            self.console.print(f"  {tag(task)}: adapting at lr {task.run.lr:g} ({elapsed(started)} elapsed)")

        def on_done(task: DomainTask, rec: dict) -> None:
            tasks = f", tasks {rec['task_acc_change']:+.1f} points" if rec.get("task_acc_change") is not None else ""
            self.console.print(f"  {tag(task)}: perplexity {rec['ppl_before']:.2f} → {rec['ppl_after']:.2f} "
                               f"({rec['delta_ppl_pct']:+.2f}%), general {rec['forgetting_pct']:+.2f}%{tasks}, "
                               f"{rec['seconds']:.0f} s")

        # local: in this process, in order; ray: each run a Ray task (odyssey.study.executor)
        local = executor.name == "local"
        executor.run(tasks, (lambda t: run_task(t, study=self)) if local else run_task,
                     on_start=on_start, on_done=on_done)
        self.store.set_meta("seconds", self.store.get_meta("seconds", 0.0) + time.perf_counter() - started)
        return write_outputs(self.out, self.store)


def train_bytes(corpus: str) -> int:
    """Size of a corpus's train split on disk: a run's cost, for ordering runs side by side."""
    return sum(f.stat().st_size for f in split_files(corpus, "train"))


def sweep_domains(cfg: StudyConfig, targets: Targets) -> list[str] | None:
    """The domains that get every learning rate (None: all); see ``lr_sweep_domains``."""
    if cfg.lr_sweep_domains == "all":
        return None
    if cfg.lr_sweep_domains is not None or cfg.domains is not None:
        return cfg.lr_sweep_domains
    names = {d.name for d in targets.domains}
    return [n for n in DEFAULT_WORLD_SWEEP if n in names]


def run_task(task: DomainTask, study: Study | None = None) -> dict:
    """Run (or skip, if done) one planned run of a study; return its record.

    ``study``: the :class:`Study` of this process; without it (a Ray worker) a fresh one
    is opened on the study directory and closed after.
    """
    own = study is None
    if own:
        study = Study(StudyConfig.model_validate(task.config), progress=False)
    try:
        targets = Targets.from_dict(task.targets)
        if study.stored_status(targets, task.run)[0] == "done":
            return study.store.get_run(task.run.name)
        return study.run_domain(targets, task.run)
    finally:
        if own:
            study.close()


def remove_study_outputs(out: Path) -> None:
    """What a study wrote into ``out`` (runs, evaluations, store, results, report);
    anything else in the directory is left alone."""
    for name in STUDY_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


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


def collect_results(store: ResultsStore) -> dict:
    """The content of ``results.json``, from the store alone."""
    cfg = store.get_meta("config", {})
    targets = store.get_meta("targets", {})
    design = store.get_meta("design", {})
    base_key = next((k for k in store.eval_keys() if k.startswith("base|general:test")), None)
    base = (store.get_eval(base_key) if base_key else None) or {}
    runs = store.runs("done")
    plain = [r for r in runs if not r.get("variant")]
    return {
        "study": {"name": cfg.get("name"), "model": targets.get("model"), "general": targets.get("general"),
                  "recipe": cfg.get("recipe"), "test_eval": cfg.get("test_eval"),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "odyssey_version": __version__,
                  "seconds": store.get_meta("seconds"),
                  "machine": describe()},
        "design": design,
        "base": {"general_ppl": base.get("perplexity"), "general_bpb": base.get("bits_per_byte"),
                 **(design.get("base") or {}), **_base_tasks(runs)},
        # the main table: plain adaptation at the reference rate
        "domains": [r for r in plain if r.get("reference", True)],
        # the factorial: plain adaptation at every rate (the phase diagram's cells)
        "cells": plain,
        "mitigations": [r for r in runs if r.get("variant")],
    }


def _base_tasks(runs: list[dict]) -> dict:
    """``{"tasks": the base's task accuracies}`` from the runs that measured them (else nothing)."""
    before = next((r["tasks_before"] for r in runs if r.get("tasks_before")), None)
    return {"tasks": before} if before else {}


def write_outputs(out: Path, store: ResultsStore) -> dict:
    """``results.json`` and ``report.html`` from the store (also `odyssey report`)."""
    from odyssey.report import render_report
    from odyssey.study.analyses import study_sections

    results = collect_results(store)
    write_json(out / "results.json", results)
    curves = {d["name"]: store.metrics(d["name"]) for d in results["domains"]}  # reference runs only
    render_report(results, curves, out / "report.html", sections=study_sections(out, results))
    return results


def run_study(cfg: StudyConfig, *, progress: bool = True, console: Console | None = None,
              overwrite: bool = False, rerun_changed: bool = False, redo: tuple[str, ...] | list[str] = ()) -> dict:
    """Run (or resume) a study; return the results.json content (see :class:`Study` for
    ``overwrite``, ``rerun_changed`` and ``redo``).

    >>> results = run_study(StudyConfig(out="studies/default"))
    """
    from odyssey.runlock import run_lock

    study = Study(cfg, console=console, progress=progress, overwrite=overwrite, rerun_changed=rerun_changed,
                  redo=redo)
    try:
        with run_lock(cfg.out, what="study"):  # one writer per study directory
            return study.run()
    finally:
        study.close()
