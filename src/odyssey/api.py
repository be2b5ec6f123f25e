"""odyssey from Python: ``odyssey.evaluate``, ``odyssey.adapt``, ``odyssey.study``,
``odyssey.diagnose`` and ``odyssey.attribute``.

Each takes what a notebook has at hand: a path, hub id, ``.gguf`` file or short name
(``smollm2-135m``), or an already-loaded model and tokenizer where that makes sense;
texts as a corpus spec or as a list of strings. Each returns a typed result object.
Nothing heavy is imported until a function runs (``import odyssey`` does not import
torch).

>>> import odyssey
>>> r = odyssey.evaluate("smollm2-135m", ["Some held-out text."])
>>> r.perplexity, r.bits_per_byte
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odyssey.errors import ConfigError, DataError

if TYPE_CHECKING:
    from odyssey.adapt.loop import AdaptResult
    from odyssey.analysis.tokens import Attribution
    from odyssey.evaluate.run import EvalResult

PathLike = str | os.PathLike


# -- inputs ----------------------------------------------------------------------------------
def _is_path(x) -> bool:
    return isinstance(x, str | os.PathLike)


def _model_and_tokenizer(model, tokenizer, *, dtype: str = "float32", device: str = "cpu"):
    """``(model, tokenizer, name)``: loaded from a path/name, or the objects given."""
    from odyssey.models import load_model, load_tokenizer

    if isinstance(model, tuple) and len(model) == 2 and tokenizer is None:
        model, tokenizer = model
    if _is_path(model):
        tok = tokenizer if tokenizer is not None else load_tokenizer(model)
        if _is_path(tok):
            tok = load_tokenizer(tok)
        return load_model(model, dtype=dtype, device=device), tok, str(model)
    if tokenizer is None:
        raise ConfigError("a loaded model needs its tokenizer", "pass tokenizer=... (or a (model, tokenizer) pair)")
    if _is_path(tokenizer):
        tokenizer = load_tokenizer(tokenizer)
    return model, tokenizer, str(getattr(model, "name_or_path", "") or type(model).__name__)


def _documents(data) -> tuple[list[dict], str]:
    """``(documents, name)`` from a corpus spec/path or a list of texts or documents."""
    from odyssey.corpora.store import load_documents

    if _is_path(data):
        return load_documents(str(data), default_split="test"), str(data)
    if isinstance(data, Mapping) or not isinstance(data, Sequence):
        raise DataError("data must be a corpus spec, a text/JSONL path, or a list of texts",
                        'e.g. odyssey.evaluate(model, ["some text", "more text"])')
    docs = [{"text": d, "id": str(i)} if isinstance(d, str) else d for i, d in enumerate(data)]
    return docs, f"{len(docs)} texts"


# -- evaluate --------------------------------------------------------------------------------
def evaluate(model, data, config=None, *, tokenizer=None, out: PathLike | None = None,
             tasks: str | Sequence[str] | None = None, task_limit: int | None = None,
             **settings) -> EvalResult:
    """Perplexity, bits per byte, word/byte perplexity and per-token NLLs of ``data``.

    ``model``: a path, hub id, ``.gguf`` file or short name, or a loaded model (with
    ``tokenizer``, or a ``(model, tokenizer)`` pair). ``data``: ``CORPUS[:split]``, a
    text/JSONL path, or a list of texts. ``settings`` are :class:`EvalConfig` fields
    (``stride=256``, ``context_length=...``). ``out`` saves ``eval.json`` +
    ``tokens.safetensors`` there (what :func:`attribute` compares). ``tasks`` also runs
    lm-evaluation-harness tasks (``"odyssey-general"`` offline) into ``result.tasks``.

    >>> r = odyssey.evaluate("runs/legal", "corpora/legal:test", stride=256)
    """
    from odyssey.config import resolve
    from odyssey.evaluate.config import EvalConfig
    from odyssey.evaluate.run import evaluate as evaluate_paths
    from odyssey.evaluate.run import evaluate_documents, save_eval

    # settings are validated like a config file's (an unknown one is a ConfigError)
    cfg = resolve(EvalConfig, base=config.model_dump() if config is not None else {"progress": False},
                  values=settings)
    if _is_path(model) and tokenizer is None and _is_path(data):
        return evaluate_paths(str(model), str(data), cfg, out_dir=out, tasks=tasks, task_limit=task_limit)
    lm, tok, name = _model_and_tokenizer(model, tokenizer, dtype=cfg.dtype, device=cfg.device)
    docs, data_name = _documents(data)
    result = evaluate_documents(lm, tok, docs, cfg)
    result.model, result.data = name, data_name
    if tasks:
        from odyssey.evaluate.harness import task_accuracy

        result.tasks = task_accuracy(lm, tok, tasks, batch_size=cfg.batch_size, limit=task_limit,
                                     work_dir=None if out is None else Path(out) / "tasks")
    if out is not None:
        save_eval(result, out)
    return result


# -- adapt -----------------------------------------------------------------------------------
# Keyword shortcuts for the AdaptConfig fields a notebook sets most (as the CLI's flags).
_ADAPT_KEYS = {"lr": "optim.lr", "epochs": "train.epochs", "max_steps": "train.max_steps",
               "batch_size": "train.batch_size", "grad_accum": "train.grad_accum",
               "block_size": "train.block_size", "seed": "train.seed", "eval_every": "eval_every",
               "save_every": "save_every", "resume": "resume", "overwrite": "overwrite"}


def adapt(model, data: PathLike, out: PathLike, *, tokenizer=None, general: PathLike | None = None,
          config: PathLike | None = None, mitigation: str | Sequence[str] | None = None,
          overrides: Mapping[str, Any] | None = None, progress: bool = False, **settings) -> AdaptResult:
    """Adapt ``model`` to ``data`` (a corpus directory or text path) into the run
    directory ``out``; return the before/after figures (:class:`AdaptResult`).

    ``model``: a path, hub id, ``.gguf`` file, adapter directory or short name, or a
    loaded model (with ``tokenizer``), which is saved to ``out/base-model`` first so that
    the run can be resumed and reproduced. ``settings``: ``lr``, ``epochs``,
    ``max_steps``, ``batch_size``, ``grad_accum``, ``block_size``, ``seed``,
    ``eval_every``, ``save_every``, ``resume``, ``overwrite``; any other field as
    ``overrides={"optim.weight_decay": 0.1}``; ``config`` a YAML file.

    >>> r = odyssey.adapt("smollm2-135m", "corpora/legal", "runs/legal", max_steps=20)
    """
    from odyssey.adapt.config import AdaptConfig
    from odyssey.adapt.loop import adapt as run_adapt
    from odyssey.config import resolve

    unknown = sorted(set(settings) - set(_ADAPT_KEYS))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}",
                          f"use {', '.join(_ADAPT_KEYS)}, or overrides={{'section.key': value}}")
    if not _is_path(model):
        model = _save_loaded(model, tokenizer, Path(out) / "base-model")
    methods = [mitigation] if isinstance(mitigation, str) else mitigation
    values = {"model": str(model), "data": str(data), "out": str(out), "general": general and str(general),
              "tokenizer": str(tokenizer) if _is_path(tokenizer) else None,
              "mitigation.methods": list(methods) if methods else None,
              **{_ADAPT_KEYS[k]: v for k, v in settings.items()}, **(overrides or {})}
    cfg = resolve(AdaptConfig, config, values=values)
    reused = bool(cfg.resume) and (Path(cfg.out) / "result.json").is_file()  # a finished run keeps its card
    result = run_adapt(cfg, progress=progress)
    if not reused:
        from odyssey.report.model_card import write_model_card

        write_model_card(cfg.out)  # OUT/model/README.md, as `odyssey adapt` writes it
    return result


def _save_loaded(model, tokenizer, dest: Path) -> Path:
    """A loaded model and tokenizer saved in HF layout (a model transformers loaded from
    GGUF is copied into a plain one first: it cannot be saved as it is)."""
    from odyssey.models.gguf import plain_copy

    if tokenizer is None or _is_path(tokenizer):
        raise ConfigError("a loaded model needs its loaded tokenizer", "pass tokenizer=...")
    plain_copy(model).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


# -- study -----------------------------------------------------------------------------------
@dataclass
class StudyResult:
    """A finished study: its directory and the content of its ``results.json``."""

    out_dir: Path
    results: dict

    @property
    def domains(self) -> list[dict]:
        """One record per adapted domain (perplexity before/after, forgetting, ...)."""
        return list(self.results.get("domains") or [])

    def domain(self, name: str) -> dict:
        for d in self.domains:
            if d.get("name") == name:
                return d
        raise KeyError(f"no domain {name!r} in {self.out_dir} (it has {', '.join(d['name'] for d in self.domains)})")

    @property
    def report(self) -> Path:
        return self.out_dir / "report.html"


def study(config: PathLike | Any | None = None, *, overrides: Mapping[str, Any] | None = None,
          progress: bool = False, **fields) -> StudyResult:
    """Run (or resume) an ``odyssey study``: a thin wrapper over
    :func:`odyssey.study.runner.run_study`. ``config`` is a :class:`StudyConfig`, a YAML
    file or None (the default world and base); ``fields`` set top-level fields
    (``out=...``, ``model=...``, ``only=[...]``, ``domains=[...]``); ``overrides``
    dotted ones (``{"recipe.train.max_steps": 10}``).

    >>> s = odyssey.study(out="studies/small", only=["licenses"], overrides={"recipe.train.max_steps": 5})
    >>> s.domain("licenses")["ppl_after"]
    """
    from odyssey.config import resolve
    from odyssey.study.config import StudyConfig
    from odyssey.study.runner import run_study

    given = isinstance(config, StudyConfig)
    cfg = resolve(StudyConfig, None if given else config, base=config.model_dump() if given else None,
                  values={**fields, **(overrides or {})})
    results = run_study(cfg, progress=progress)
    return StudyResult(Path(cfg.out), results)


# -- diagnose --------------------------------------------------------------------------------
@dataclass
class Diagnosis:
    """Whether to adapt: ``recommendation`` (``adapt``, ``rely`` or ``mitigate``), the
    predicted change of in-domain perplexity (%) and its interval; ``details`` holds
    everything :func:`odyssey.analysis.diagnose.diagnose` returned (features, notes, fit)."""

    recommendation: str
    predicted_delta_ppl_pct: float
    interval: list[float]
    predicted_forgetting_pct: float | None
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def diagnose(data: PathLike, model: PathLike | None = None, *, reference: PathLike | None = None,
             fit: PathLike | dict | None = None, probe: bool = False, config=None, lr: float | None = None,
             base_final_lr: float | None = None) -> Diagnosis:
    """Will adapting ``model`` (a path, ``.gguf`` file or short name; default the shipped
    base) to ``data`` help? A prediction from similarity measures before any training; with
    a fit made on several learning rates, at peak rate ``lr`` (the details then name the
    largest rate predicted not to make in-domain perplexity worse, ``safe_lr``).

    >>> d = odyssey.diagnose("corpora/legal", model="smollm2-135m")
    >>> d.recommendation, d.predicted_delta_ppl_pct
    """
    from odyssey.analysis.diagnose import diagnose as run_diagnose

    if model is not None and not _is_path(model):
        raise ConfigError("diagnose takes the model as a path or name",
                          "save the model (model.save_pretrained) and pass its directory")
    from odyssey.study.config import Recipe
    from odyssey.study.probe import run_probe

    r = run_diagnose(data, model=model, reference=reference, fit=fit, config=config,
                     probe=run_probe if probe else None, lr=lr, base_final_lr=base_final_lr,
                     probe_recipe=Recipe().model_dump(mode="json"))
    return Diagnosis(recommendation=r["recommendation"], predicted_delta_ppl_pct=r["predicted_delta_ppl_pct"],
                     interval=list(r["interval"]), predicted_forgetting_pct=r.get("predicted_forgetting_pct"),
                     notes=list(r.get("notes") or []), details=r)


# -- attribute -------------------------------------------------------------------------------
def attribute(before, after, *, tokenizer=None, reference: PathLike | None = None, config=None) -> Attribution:
    """Which tokens carry the change in loss between two evaluations of the same text.

    ``before``/``after``: directories written by ``odyssey evaluate --out`` (or
    ``odyssey.evaluate(..., out=...)``), or :class:`EvalResult` objects. ``tokenizer``:
    loaded or a path (default: the model recorded with ``before``).

    >>> att = odyssey.attribute(base_eval, adapted_eval)
    >>> att.by_category()["whitespace"]["share"]
    """
    from odyssey.analysis.tokens import attribute as attribute_dirs
    from odyssey.analysis.tokens import attribute_results

    if _is_path(before) and _is_path(after):
        return attribute_dirs(before, after, tokenizer=tokenizer, reference=reference, config=config)
    from odyssey.evaluate.run import load_eval

    b = load_eval(before) if _is_path(before) else before
    a = load_eval(after) if _is_path(after) else after
    return attribute_results(b, a, tokenizer=tokenizer, reference=reference, config=config,
                             names=(_name(before), _name(after)))


def _name(x) -> str:
    return str(x) if _is_path(x) else str(getattr(x, "model", None) or "evaluation")
