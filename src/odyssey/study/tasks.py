"""Forgetting on downstream tasks in a study (``forgetting.tasks``): lm-evaluation-harness
accuracy of the base model (once per study) and of every adapted model, beside the
perplexity forgetting on general text.

Each measurement loads the model, runs :func:`odyssey.evaluate.harness.task_accuracy`
on it (the offline task set ``odyssey-general`` is built from the study's own general
corpus, its test split) and records its energy as the phase ``tasks`` of the folder it
writes its task files into. A run's record then holds::

    tasks_before / tasks_after   {task: {"acc", "acc_stderr", "acc_norm", ..., "n"}}
    task_acc_before / _after     mean accuracy over the tasks both measured, in %
    task_acc_change              after - before, in accuracy points (negative: forgotten)

>>> task_fields({"cloze": {"acc": 0.5}}, {"cloze": {"acc": 0.48}})["task_acc_change"]
-2.0
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from odyssey.errors import ConfigError
from odyssey.evaluate.harness import INSTALL_HARNESS
from odyssey.study.config import StudyConfig

TASKS_FILE = "tasks.json"  # in a run directory: the model card reads it


def check_harness(cfg: StudyConfig) -> None:
    """Refuse, before any run starts, a study that asks for tasks without the harness."""
    if cfg.forgetting.tasks and importlib.util.find_spec("lm_eval") is None:
        raise ConfigError(f"forgetting.tasks ({', '.join(cfg.forgetting.tasks)}) needs lm-evaluation-harness, "
                          "which is not installed", f"{INSTALL_HARNESS}, or leave forgetting.tasks empty")


def task_settings(cfg: StudyConfig) -> dict:
    """What decides the task figures (the batch size only decides how fast they come)."""
    return cfg.forgetting.model_dump(mode="json", exclude={"batch_size"})


def measure_tasks(cfg: StudyConfig, model: str, general: str, work_dir: Path) -> dict[str, dict]:
    """Task accuracies of ``model`` (a path or hub id), its task files and ``energy.csv``
    written into ``work_dir``."""
    from odyssey.energy.meter import measure_phase
    from odyssey.evaluate.harness import task_accuracy
    from odyssey.models import load_model, load_tokenizer

    ev, f = cfg.test_eval, cfg.forgetting
    with measure_phase(work_dir, "tasks", device=ev.device, config=cfg.energy):
        tokenizer = load_tokenizer(model, trust_remote_code=cfg.trust_remote_code)
        lm = load_model(model, dtype=ev.dtype, device=ev.device, allow_pickle=cfg.allow_pickle,
                        trust_remote_code=cfg.trust_remote_code)
        return task_accuracy(lm, tokenizer, f.tasks, batch_size=f.batch_size, limit=f.limit, work_dir=work_dir,
                             corpus=general)


def _leaf_acc(rows: Mapping[str, Mapping]) -> dict[str, float]:
    """``{task: acc}`` of the tasks with an accuracy, a group's aggregate row aside (its
    tasks are counted themselves)."""
    return {t: r["acc"] for t, r in rows.items() if r.get("acc") is not None and not r.get("group")}


def task_fields(before: Mapping[str, Mapping], after: Mapping[str, Mapping]) -> dict:
    """The task figures of a run's record, from the base's and the adapted model's rows.

    The means are over the tasks both models have an accuracy for, so the change is
    the mean of the per-task changes."""
    b, a = _leaf_acc(before), _leaf_acc(after)
    both = [t for t in b if t in a]
    mean_b = 100.0 * sum(b[t] for t in both) / len(both) if both else None
    mean_a = 100.0 * sum(a[t] for t in both) / len(both) if both else None
    return {"tasks_before": dict(before), "tasks_after": dict(after), "task_acc_before": mean_b,
            "task_acc_after": mean_a, "task_acc_change": None if not both else mean_a - mean_b}
