"""Where a study's runs execute: in this process, one after another; in a few worker
processes of this machine at once; or as Ray tasks.

A :class:`DomainTask` is a plain, picklable description of one run (the resolved study
config, the resolved targets, the planned run). An executor is given the tasks and the
function that does one of them (``odyssey.study.runner.run_task``, which opens the
study's SQLite store itself when it runs in a worker, returns the recorded result if
the run is done already, and otherwise evaluates and adapts, resuming an interrupted
run from its checkpoint). So a study can be killed and rerun under either executor,
or switch between them.

On a CPU, two runs side by side with one thread each get through about 1.25x the
tokens of one run on two threads (small matrices do not keep two threads busy, and
the serial parts of a run overlap): ``jobs=2`` uses :class:`ProcessExecutor`.

Every executor implements :class:`Executor`::

    executor.run(tasks, fn, on_start=..., on_done=...) -> list[record]

records in task order. ``on_start(task)`` is called when a task is handed out,
``on_done(task, record)`` as each finishes (in completion order under Ray and in
worker processes).

Ray (https://docs.ray.io) is an optional dependency (``pip install odyssey[ray]``).
``RayExecutor(address=None)`` starts a local Ray instance (or uses one this process
already started); ``address="auto"`` or ``"ray://head:10001"`` joins a cluster, whose
nodes must see the study directory, the model and the corpora at the same paths (a
shared filesystem) and must all write the SQLite store from one host (WAL mode) or a
filesystem with working POSIX locks. ``fn`` must then be picklable (a module-level
function).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from odyssey.errors import ConfigError, OdysseyError
from odyssey.study.plan import PlannedRun


@dataclass(frozen=True)
class DomainTask:
    """One run of a study, as a worker needs it (plain data: picklable)."""

    config: dict  # StudyConfig.model_dump(mode="json"), paths made absolute
    targets: dict  # {"model", "general", "domains": [DomainSpec dicts]}
    run: PlannedRun  # which domain, at which rate, with which variant, under which name


def absolute(path: str | None) -> str | None:
    """``path`` made absolute if it exists here (a hub id is left as it is), so that a
    worker with another working directory finds the same files."""
    if path is None:
        return None
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def portable(task: DomainTask) -> DomainTask:
    """``task`` with its local paths absolute (for workers in other directories or nodes)."""
    cfg = {**task.config, "out": str(Path(task.config["out"]).expanduser().resolve()),
           "model": absolute(task.config.get("model")), "general": absolute(task.config.get("general"))}
    t = task.targets
    targets = {"model": absolute(t["model"]), "general": absolute(t["general"]),
               "domains": [{**d, "path": absolute(d["path"])} for d in t["domains"]]}
    return DomainTask(cfg, targets, task.run)


TaskFn = Callable[[DomainTask], dict]
OnStart = Callable[[DomainTask], None]
OnDone = Callable[[DomainTask, dict], None]


class Executor(Protocol):
    """Where a study's runs execute."""

    name: str

    def run(self, tasks: list[DomainTask], fn: TaskFn, *, on_start: OnStart | None = None,
            on_done: OnDone | None = None) -> list[dict]:
        """Do ``fn(task)`` for every task; the records in task order."""


class LocalExecutor:
    """Runs the tasks one after another in this process (the default)."""

    name = "local"

    def run(self, tasks: list[DomainTask], fn: TaskFn, *, on_start: OnStart | None = None,
            on_done: OnDone | None = None) -> list[dict]:
        records = []
        for task in tasks:
            if on_start:
                on_start(task)
            record = fn(task)
            if on_done:
                on_done(task, record)
            records.append(record)
        return records


def _worker_init(threads: int) -> None:
    """Each worker process computes on ``threads`` cores (set before torch starts its pools)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()  # as the command line does: the study prints its own progress
    hf_logging.set_verbosity_error()


class ProcessExecutor:
    """Runs the tasks in ``jobs`` worker processes of this machine (spawned, so that each
    starts its own torch), each on ``threads`` cores; ``fn`` must be picklable."""

    name = "processes"

    def __init__(self, jobs: int, threads: int):
        self.jobs, self.threads = jobs, threads

    def run(self, tasks: list[DomainTask], fn: TaskFn, *, on_start: OnStart | None = None,
            on_done: OnDone | None = None) -> list[dict]:
        if not tasks:
            return []
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from multiprocessing import get_context

        records: dict[str, dict] = {}
        with ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(self.threads,)) as pool:
            queue, running = list(tasks), {}
            while queue or running:
                while queue and len(running) < self.jobs:  # hand out a task only when a worker is free
                    task = queue.pop(0)
                    if on_start:
                        on_start(task)
                    running[pool.submit(fn, portable(task))] = task
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    records[task.run.name] = future.result()  # an error in a worker is raised here
                    if on_done:
                        on_done(task, records[task.run.name])
        return [records[t.run.name] for t in tasks]


class RayExecutor:
    """Runs each task as a Ray task (a separate worker process), all at once as far as
    the cluster's CPUs/GPUs allow; each reserves ``num_cpus_per_task`` and
    ``num_gpus_per_task``."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus_per_task: float = 1.0,
                 num_gpus_per_task: float = 0.0):
        self.address = address
        self.num_cpus_per_task = num_cpus_per_task
        self.num_gpus_per_task = num_gpus_per_task

    def _ray(self):
        try:
            import ray
        except ImportError as e:
            raise ConfigError("executor=ray needs Ray, which is not installed",
                              "pip install 'odyssey[ray]' (or ray>=2.9), or use executor=local") from e
        return ray

    @contextlib.contextmanager
    def _session(self):
        """Ray as this process found it, or started (and afterwards stopped) here."""
        ray = self._ray()
        if ray.is_initialized():
            yield ray
            return
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=True)
        except Exception as e:  # ConnectionError, ValueError, ... : a bad or unreachable address
            raise ConfigError(f"cannot start or join Ray at {self.address or 'a new local instance'}: {e}",
                              "check --address (e.g. auto or ray://HEAD:10001), or leave it out") from e
        try:
            yield ray
        finally:
            ray.shutdown()

    def run(self, tasks: list[DomainTask], fn: TaskFn, *, on_start: OnStart | None = None,
            on_done: OnDone | None = None) -> list[dict]:
        if not tasks:
            return []
        with self._session() as ray:
            remote = ray.remote(fn).options(
                num_cpus=self.num_cpus_per_task, num_gpus=self.num_gpus_per_task, max_retries=0)
            pending = {}
            for task in tasks:
                if on_start:
                    on_start(task)
                pending[remote.remote(portable(task))] = task
            records: dict[str, dict] = {}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(ready[0])
                record = _get(ray, ready[0])
                records[task.run.name] = record
                if on_done:
                    on_done(task, record)
        return [records[t.run.name] for t in tasks]


def _get(ray, ref):
    """``ray.get``, with an odyssey error raised in the worker re-raised as itself (the CLI
    then prints its one line) instead of Ray's wrapper with the remote traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, OdysseyError):
            raise cause from None
        raise


def make_executor(cfg) -> Executor:
    """The executor a :class:`~odyssey.study.config.StudyConfig` asks for."""
    if cfg.executor == "ray":
        return RayExecutor(cfg.ray_address, cfg.ray_cpus_per_task, cfg.ray_gpus_per_task)
    if cfg.ray_address:
        raise ConfigError("ray_address is set but executor is local", "add --executor ray")
    jobs = resolve_jobs(cfg.jobs, cfg.recipe.train.device)
    if jobs > 1:
        from odyssey.machine import cpu_count

        return ProcessExecutor(jobs, max(1, cpu_count() // jobs))
    return LocalExecutor()


def resolve_jobs(jobs: int | str, device: str = "cpu") -> int:
    """How many runs go side by side: ``auto`` is ``$ODYSSEY_JOBS`` if set, else 2 on a
    CPU-only machine with at least two cores (see the module's note), else 1 (one GPU is
    best given to one run at a time).

    >>> resolve_jobs(3), resolve_jobs("auto", "cuda")
    (3, 1)
    """
    if jobs != "auto":
        return int(jobs)
    if os.environ.get("ODYSSEY_JOBS", "").strip():
        try:
            return max(1, int(os.environ["ODYSSEY_JOBS"]))
        except ValueError:
            raise ConfigError(f"ODYSSEY_JOBS={os.environ['ODYSSEY_JOBS']!r} is not a number of runs",
                              "set it to 1, 2, ... or unset it") from None
    from odyssey.machine import cpu_count

    if device != "cpu":
        import torch

        if device != "auto" or torch.cuda.is_available():
            return 1
    return 2 if cpu_count() >= 2 else 1
