"""Task accuracy through lm-evaluation-harness, on a model that is already loaded.

The harness (``pip install 'odyssey[eval]'``) is called through its Python API with its
``HFLM`` wrapped around the model object, so nothing is loaded twice and an adapted
model in memory is measured as it is. Task names are the harness's own (``hellaswag``,
``lambada_openai``... where the hub is reachable) or the offline task set odyssey builds
from held-out text (:mod:`odyssey.evaluate.tasksets`): ``odyssey-general``, built from the
default world's general test split.

>>> acc = task_accuracy(model, tokenizer, ["odyssey-general"])
>>> acc["odyssey-general-continuation"]["acc"], acc["odyssey-general-continuation"]["acc_stderr"]
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from odyssey.errors import ConfigError, ModelError
from odyssey.evaluate.tasksets import (
    DEFAULT_TASK_SET,
    TaskSetConfig,
    default_task_corpus,
    write_task_set,
)

INSTALL_HARNESS = "pip install lm-eval (or pip install 'odyssey[eval]')"
# The figures reported per task, with their standard errors where the harness gives one.
METRICS = ("acc", "acc_norm", "perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte",
           "exact_match")


def parse_tasks(spec: str | Sequence[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (order kept, duplicates dropped)."""
    if spec is None:
        return []
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


def prepare_tasks(tasks: Sequence[str], work_dir: str | os.PathLike, *, corpus: str | os.PathLike | None = None,
                  config: TaskSetConfig | None = None) -> list[Path]:
    """Write the task files of the offline task sets among ``tasks`` into ``work_dir``;
    return the folders the harness must also search. ``corpus`` replaces the default
    world's general corpus as the source of ``odyssey-general``."""
    folders = []
    if DEFAULT_TASK_SET in tasks:
        source = Path(corpus) if corpus is not None else default_task_corpus()
        folders.append(write_task_set(source, work_dir, name=DEFAULT_TASK_SET, config=config).folder)
    return folders


def task_accuracy(model, tokenizer, tasks: str | Sequence[str], *, batch_size: int = 8, limit: int | None = None,
                  num_fewshot: int | None = None, seed: int = 0, work_dir: str | os.PathLike | None = None,
                  corpus: str | os.PathLike | None = None, task_set: TaskSetConfig | None = None,
                  include_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> dict[str, dict]:
    """Run lm-evaluation-harness ``tasks`` on a loaded causal LM; return per task
    ``{"acc": ..., "acc_stderr": ..., "acc_norm": ..., "n": samples, "higher_is_better": {...}}``
    (the metrics the task reports; a group also gets its own row when the harness
    aggregates it).

    ``work_dir`` receives the offline task files (default: a temporary folder);
    ``include_path`` adds folders of your own task YAML files; ``limit`` caps the
    documents per task; ``seed`` seeds the harness (few-shot sampling, torch, numpy).
    The model's train/eval mode is restored afterwards.
    """
    names = parse_tasks(tasks)
    if not names:
        raise ConfigError("no task given", f"name harness tasks, e.g. --tasks {DEFAULT_TASK_SET}")
    if importlib.util.find_spec("lm_eval") is None:
        raise ConfigError("task accuracy needs lm-evaluation-harness", INSTALL_HARNESS)
    with contextlib.ExitStack() as stack:
        folder = Path(work_dir) if work_dir is not None else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="odyssey-tasks-")))
        extra = [Path(p) for p in ([include_path] if isinstance(include_path, str | os.PathLike)
                                   else include_path or [])]
        folders = prepare_tasks(names, folder, corpus=corpus, config=task_set) + extra
        return _run(model, tokenizer, names, folders, batch_size=batch_size, limit=limit,
                    num_fewshot=num_fewshot, seed=seed)


def _task_manager(names: list[str], folders: list[Path]):
    """The harness's task index: only ``folders`` when they hold every task asked for
    (indexing the harness's thousands of built-in YAML files takes many seconds), else
    the built-in tasks too. Unknown names get "did you mean"."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(f) for f in folders], include_defaults=False) if folders else None
    if manager is None or any(n not in manager.all_tasks for n in names):
        manager = TaskManager(include_path=[str(f) for f in folders] or None)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        import difflib

        known = [DEFAULT_TASK_SET, *manager.all_tasks]
        near = [m for n in unknown for m in difflib.get_close_matches(n, known, n=1)]
        raise ConfigError(f"unknown task(s): {', '.join(unknown)}",
                          f"did you mean {', '.join(near)}?" if near else
                          f"use a lm-evaluation-harness task name or {DEFAULT_TASK_SET}")
    return manager


def _run(model, tokenizer, names: list[str], folders: list[Path], **kw) -> dict[str, dict]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from odyssey.evaluate.nll import model_device
    from odyssey.models import max_context

    manager = _task_manager(names, folders)
    was_training = model.training
    try:
        with _quiet_harness():
            lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=kw["batch_size"],
                      max_length=max_context(model), device=str(model_device(model)))
            out = simple_evaluate(model=lm, tasks=names, task_manager=manager, limit=kw["limit"],
                                  num_fewshot=kw["num_fewshot"], log_samples=False,
                                  # > 0, else the harness reports no standard error at all; a mean's
                                  # is closed-form, only metrics such as perplexity are bootstrapped
                                  bootstrap_iters=1000,
                                  random_seed=kw["seed"], numpy_random_seed=kw["seed"],
                                  torch_random_seed=kw["seed"], fewshot_random_seed=kw["seed"])
    except (ConnectionError, OSError) as e:  # a hub dataset with no network
        raise ModelError(f"lm-evaluation-harness could not load its data: {str(e).splitlines()[0]}",
                         f"offline, use the task set {DEFAULT_TASK_SET} or tasks whose data is cached") from e
    finally:
        model.train(was_training)
    return summarize(out)


@contextlib.contextmanager
def _quiet_harness():
    """The harness logs every task's setup at INFO and warns about the model object it was
    given; odyssey reports the results itself."""
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def summarize(out: dict) -> dict[str, dict]:
    """The harness's ``results`` as ``{task: {metric: value, metric_stderr: value, n}}``
    (its ``"acc,none"`` keys without the filter suffix; NaN and "N/A" become None). A
    group's aggregate row is marked ``"group": True``: its tasks have rows of their own."""
    rows = {}
    samples = out.get("n-samples") or {}
    higher = out.get("higher_is_better") or {}
    groups = set(out.get("group_subtasks") or {}) | set(out.get("groups") or {})
    for task, metrics in (out.get("results") or {}).items():
        row: dict = {}
        for key, value in metrics.items():
            metric, _, _filter = key.partition(",")
            base = metric.removesuffix("_stderr")
            if base in METRICS:
                row[metric] = _number(value)
        if not row:
            continue
        n = samples.get(task) or {}
        row["n"] = n.get("effective", n.get("original"))
        row["higher_is_better"] = {k: v for k, v in (higher.get(task) or {}).items() if k in row}
        if task in groups:
            row["group"] = True
        rows[task] = row
    return rows


def _number(v):
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None
