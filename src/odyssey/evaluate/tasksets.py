"""Downstream tasks built from a corpus's held-out text, as lm-evaluation-harness task files.

Forgetting is usually measured with benchmark tasks, which need the hub. This module
builds two small tasks from any corpus split (by default the default world's general
test split, as the task set ``odyssey-general``), offline and deterministically, and
writes them as the harness's own task YAML + JSONL files, so that the same harness that
runs ``hellaswag`` or ``lambada_openai`` runs them:

- ``<name>-continuation`` (``multiple_choice``, like HellaSwag): a held-out sentence cut in
  half, with up to ``context_words`` words of the text before it; choose its true second
  half among ``choices - 1`` second halves of similar length taken from *other* documents.
  ``acc`` and ``acc_norm`` (log-likelihood per character of the choice, as the harness
  normalizes); chance is ``1 / choices``.
- ``<name>-cloze`` (``loglikelihood``, like LAMBADA): predict the last word of a held-out
  sentence from the text before it; ``acc`` is the share the model completes greedily.

>>> files = write_task_set("world/general", "tasks/", name="odyssey-general")
>>> files.tasks
['odyssey-general-continuation', 'odyssey-general-cloze']
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from odyssey.errors import ConfigError, DataError
from odyssey.io import atomic_write, write_json, write_jsonl

DEFAULT_TASK_SET = "odyssey-general"  # built from the default world's general test split
TASK_SET_FORMAT = "odyssey-task-set/1"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_CLOZE_WORD = re.compile(r"^[A-Za-z]{4,}$")


@dataclass
class TaskSetConfig:
    """How the items are drawn; every field is recorded in ``task_set.json``."""

    split: str = "test"
    items: int = 100  # per task (fewer if the split has fewer usable sentences)
    choices: int = 4
    context_words: int = 30  # words of the document before the sentence, as context
    min_words: int = 8  # sentences shorter than this are not used
    max_words: int = 40  # nor longer ones
    seed: int = 0


@dataclass
class TaskSetFiles:
    """Where a task set was written and what it holds."""

    folder: Path
    name: str
    tasks: list[str]
    items: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Sentence:
    doc: int
    doc_id: str
    before: str  # the document's text before the sentence
    words: tuple[str, ...]


def sentences(text: str) -> list[str]:
    """Prose split at sentence ends (``.``, ``!``, ``?`` followed by a capital or digit)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _sentences(documents: list[dict], cfg: TaskSetConfig) -> list[_Sentence]:
    out = []
    for i, doc in enumerate(documents):
        for paragraph in doc["text"].split("\n"):
            before: list[str] = []
            for s in sentences(paragraph):
                words = tuple(s.split())
                if cfg.min_words <= len(words) <= cfg.max_words:
                    context = " ".join(before[-cfg.context_words:]) if cfg.context_words else ""
                    out.append(_Sentence(i, str(doc.get("id", i)), context, words))
                before.extend(s.split())
    return out


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def continuation_items(documents: list[dict], cfg: TaskSetConfig) -> list[dict]:
    """Multiple-choice items: the true second half of a sentence among second halves of
    sentences from other documents, of similar length (within 2 words where possible)."""
    pool = _sentences(documents, cfg)
    if len({s.doc for s in pool}) < 2:
        return []
    rng = random.Random(cfg.seed)
    order = list(range(len(pool)))
    rng.shuffle(order)
    endings = [" ".join(s.words[len(s.words) // 2:]) for s in pool]
    items = []
    for k in order[:cfg.items]:
        s = pool[k]
        cut = len(s.words) // 2
        true_len = len(s.words) - cut
        others = [j for j in range(len(pool)) if pool[j].doc != s.doc and endings[j] != endings[k]]
        close = [j for j in others if abs((len(pool[j].words) - len(pool[j].words) // 2) - true_len) <= 2]
        source = close if len(close) >= cfg.choices - 1 else others
        if len(source) < cfg.choices - 1:
            continue
        picked = [endings[j] for j in rng.sample(source, cfg.choices - 1)]
        label = rng.randrange(cfg.choices)
        picked.insert(label, endings[k])
        items.append({"id": f"{s.doc_id}/{k}", "doc_id": s.doc_id,
                      "context": _join(s.before, " ".join(s.words[:cut])), "choices": picked, "label": label})
    return items


def cloze_items(documents: list[dict], cfg: TaskSetConfig) -> list[dict]:
    """Cloze items: a sentence's last word (letters only, 4 or more) after the text before it."""
    rng = random.Random(cfg.seed + 1)
    pool = []
    for s in _sentences(documents, cfg):
        last = s.words[-1].rstrip(".!?\"')]")
        if _CLOZE_WORD.match(last):
            pool.append((s, last))
    rng.shuffle(pool)
    return [{"id": f"{s.doc_id}/{i}", "doc_id": s.doc_id, "context": _join(s.before, " ".join(s.words[:-1])),
             "target": " " + last} for i, (s, last) in enumerate(pool[:cfg.items])]


def _task_yaml(task: str, data_file: Path, kind: str, source: dict) -> dict:
    common = {"task": task, "dataset_path": "json",
              "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
              "test_split": "test", "doc_to_text": "context", "metadata": {"version": 1.0, **source}}
    if kind == "continuation":
        return {**common, "output_type": "multiple_choice", "doc_to_choice": "choices", "doc_to_target": "label",
                "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                for m in ("acc", "acc_norm")]}
    return {**common, "output_type": "loglikelihood", "doc_to_target": "target",
            # acc only: the harness bootstraps a perplexity's standard error in a process pool
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}


def write_task_set(corpus: str | os.PathLike, out_dir: str | os.PathLike, *, name: str = DEFAULT_TASK_SET,
                   config: TaskSetConfig | None = None) -> TaskSetFiles:
    """Build the continuation and cloze tasks from ``corpus``'s ``config.split`` and write
    them into ``out_dir/name/`` (task YAML, JSONL items, a group YAML named ``name`` and
    ``task_set.json`` with the corpus, its split hash and the settings)."""
    from odyssey.corpora.store import is_corpus_dir, iter_split, read_manifest

    cfg = config or TaskSetConfig()
    if cfg.choices < 2:
        raise ConfigError("a multiple-choice task needs at least 2 choices")
    corpus = Path(corpus)
    if not is_corpus_dir(corpus):
        raise DataError(f"{corpus} is not a corpus directory", "build one with odyssey corpus build")
    documents = list(iter_split(corpus, cfg.split))
    items = {"continuation": continuation_items(documents, cfg), "cloze": cloze_items(documents, cfg)}
    if not all(items.values()):
        raise DataError(f"{corpus}:{cfg.split} has too few sentences of {cfg.min_words}-{cfg.max_words} words "
                        "in two or more documents to build tasks from", "give a corpus with more prose")
    split_sha = ((read_manifest(corpus).get("splits") or {}).get(cfg.split) or {}).get("sha256")
    source = {"corpus": str(corpus.resolve()), "split": cfg.split, "split_sha256": split_sha}
    folder = Path(out_dir) / name
    tasks = []
    for kind, rows in items.items():
        task = f"{name}-{kind}"
        data_file = folder / f"{task}.jsonl"
        write_jsonl(data_file, rows)
        with atomic_write(folder / f"{task}.yaml") as f:
            yaml.safe_dump(_task_yaml(task, data_file, kind, source), f, sort_keys=False)
        tasks.append(task)
    with atomic_write(folder / f"{name}.yaml") as f:
        yaml.safe_dump({"group": name, "task": tasks}, f, sort_keys=False)
    write_json(folder / "task_set.json", {"format": TASK_SET_FORMAT, "name": name, "tasks": tasks, **source,
                                          "items": {k: len(v) for k, v in items.items()},
                                          "config": cfg.__dict__})
    return TaskSetFiles(folder, name, tasks, {t: len(v) for t, v in zip(tasks, items.values(), strict=True)})


def default_task_corpus() -> Path:
    """The corpus ``odyssey-general`` is built from: the default world's general corpus."""
    from odyssey.corpora.world import load_world

    return Path(load_world()["general"]["dir"])
