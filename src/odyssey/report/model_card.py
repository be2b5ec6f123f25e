"""The model card of an adapted model: ``RUN/model/README.md`` in Hugging Face style.

YAML front matter built with ``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData`
(the Hub's own fields: ``base_model`` only as a Hub id, never a local path; a
``model-index`` with the perplexities; ``co2_eq_emissions`` from the measured energy) and
an ``odyssey`` block with every figure (the data sources with their licenses and hashes,
the recipe, energy and probes); the finished card is parsed back by
:class:`~huggingface_hub.ModelCard` before it is written. Then
sections: description, training data, recipe, results, downstream tasks (when a study
measured them), energy, probes, intended use and limitations. Everything comes from the
run directory (``config.yaml``, ``result.json``, ``energy.csv``, ``probes/*.json``,
``tasks.json``) and the corpora's ``manifest.json``; no corpus text is ever copied into
the card.

>>> write_model_card("runs/legal", base_model="gpt2")
PosixPath('runs/legal/model/README.md')
"""

from __future__ import annotations

import html
import math
import os
import re
from pathlib import Path

import yaml

from odyssey.errors import DataError
from odyssey.io import atomic_write, read_json, sha256_file

CARD = "README.md"
TASKS_FILE = "tasks.json"  # lm-evaluation-harness accuracies before and after (odyssey study forgetting.tasks)
TAGS = ["odyssey", "continued-pretraining", "domain-adaptation", "causal-lm"]


def write_model_card(run_dir: str | os.PathLike, *, base_model: str | None = None,
                     probes: dict | None = None) -> Path:
    """Write ``run_dir/model/README.md`` atomically and return its path.

    ``probes``: ``{"bias": ..., "memorization": ...}`` results of
    :mod:`odyssey.analysis.probes`; default: those saved in ``run_dir/probes/``.
    """
    from odyssey.analysis.probes import load_probes

    run_dir = Path(run_dir)
    for name in ("config.yaml", "result.json"):
        if not (run_dir / name).is_file():
            raise DataError(f"{run_dir} has no {name}", "give the directory of a finished odyssey adapt run")
    if not (run_dir / "model").is_dir():
        raise DataError(f"{run_dir} has no model/ directory", "the card is written next to the adapted model")
    config = _read_yaml(run_dir / "config.yaml")
    result = read_json(run_dir / "result.json")
    if probes is None:
        probes = load_probes(run_dir / "probes") if (run_dir / "probes").is_dir() else {}
    facts = gather(run_dir, config, result, base_model or str(config.get("model") or ""), probes)
    text = render_card(facts)
    _check_card(text)
    path = run_dir / "model" / CARD
    with atomic_write(path) as f:
        f.write(text)
    return path


def _check_card(text: str) -> None:
    """Parse the card back as the Hub's client does: metadata that it cannot read (a
    malformed model-index, YAML that is not a mapping) fails here, not after upload."""
    from huggingface_hub import ModelCard

    ModelCard(text)  # raises ValueError on metadata it cannot parse


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{path}: invalid YAML ({e})") from e
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping")
    return data


# -- facts -----------------------------------------------------------------------------------
def gather(run_dir: Path, config: dict, result: dict, base_model: str, probes: dict) -> dict:
    """Every figure the card shows, as plain data (this is also the ``odyssey`` metadata block)."""
    from odyssey.energy import read_energy, run_energy

    evals = result.get("evals") or {}
    results = {}
    for role, key, spec in (("in_domain", "valid", config.get("data")), ("general", "general", config.get("general"))):
        ev = evals.get(key) or {}
        before, after = ev.get("before") or {}, ev.get("after") or {}
        if before or after:
            results[role] = {
                "corpus": _corpus_name(spec), "split": "valid", "perplexity_before": _f(before.get("perplexity")),
                "perplexity_after": _f(after.get("perplexity")),
                "bits_per_byte_before": _f(before.get("bits_per_byte")),
                "bits_per_byte_after": _f(after.get("bits_per_byte")),
                "change_pct": _pct_change(after.get("perplexity"), before.get("perplexity")),
                "tokens": after.get("tokens") or before.get("tokens"),
                "context_length": after.get("context_length"), "stride": after.get("stride")}
    energy = run_energy(run_dir)
    method = energy.get("energy_method")
    return {
        "name": run_dir.resolve().name, "base_model": _model_name(base_model),
        "base_model_hub_id": hub_id(base_model), "run_dir": str(run_dir),
        "architecture": _architecture(run_dir / "model"),
        "model_source": result.get("model_source"),  # a GGUF base: its file and quantization type
        "data_sources": _sources(config.get("data"), "training (train split) and in-domain evaluation (valid split)")
        + (_sources(config.get("general"), "general-text evaluation (forgetting)") if config.get("general") else [])
        + _added_sources(config, result),
        "recipe": _recipe(config, result),
        "results": results,
        "forgetting_pct": (results.get("general") or {}).get("change_pct"),
        "energy": {"kwh": _f(energy.get("energy_kwh")), "method": method,
                   "estimated": bool(method and "estimated" in method),
                   "phases": _energy_phases(run_dir, read_energy)},
        "probes": {name: _probe_block(p) for name, p in probes.items()},
        "probe_results": probes,
        "tasks": _tasks(run_dir / TASKS_FILE),
    }


def _energy_phases(run_dir: Path, read_energy) -> list[dict]:
    """The rows of the run's energy.csv and of its evaluations' (``evals/NAME``), the
    same set :func:`odyssey.energy.run_energy` totals."""
    evals = sorted(p for p in (run_dir / "evals").glob("*") if p.is_dir()) if (run_dir / "evals").is_dir() else []
    out = []
    for d in [run_dir, *evals]:
        where = "" if d == run_dir else f"evals/{d.name}: "
        out += [{"phase": f"{where}{r.get('phase')}", "parent": r.get("parent_phase") or None,
                 "seconds": _f(_num(r.get("duration"))), "kwh": _f(_num(r.get("energy_consumed"))),
                 "emissions_kg": _f(_num(r.get("emissions"))), "method": r.get("method"),
                 "hardware": _hardware(r), "location": ", ".join(x for x in (r.get("region"), r.get("country_name"))
                                                                  if x) or None}
                for r in read_energy(d)]
    return out


def _f(v):
    """A finite number as a float, else None."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _pct_change(after, before):
    after, before = _f(after), _f(before)
    if after is None or before is None or before <= 0:
        return None
    return 100.0 * (after / before - 1.0)


def _architecture(model_dir: Path) -> dict:
    """Model type, parameter count (from the safetensors headers) and context length."""
    out = {"model_type": None, "parameters": None, "context_length": None}
    cfg = model_dir / "config.json"
    if cfg.is_file():
        c = read_json(cfg)
        out["model_type"] = c.get("model_type")
        out["context_length"] = c.get("max_position_embeddings") or c.get("n_positions")
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        total = 0
        for f in files:
            with safe_open(str(f), framework="np") as st:
                for key in st.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    total += math.prod(st.get_slice(key).get_shape())
        out["parameters"] = total
    return out


def _corpus_name(spec: str | None) -> str | None:
    from odyssey.corpora.store import is_corpus_dir, parse_data_spec, read_manifest

    if not spec:
        return None
    path, _ = parse_data_spec(str(spec))
    return (read_manifest(path).get("name") if is_corpus_dir(path) else None) or path.name


def _added_sources(config: dict, result: dict) -> list[dict]:
    """Training text a mitigation added: general documents (mix-similar) and a generator's
    rewrites of domain documents (rephrase: synthetic text, named by its generator)."""
    from odyssey.models.catalog import lookup

    mitigation = config.get("mitigation")
    if not isinstance(mitigation, dict):
        return []
    methods, rows = mitigation.get("methods") or [], []
    if "mix-similar" in methods:
        spec = (mitigation.get("mix_similar") or {}).get("data") or config.get("general")
        rows += _sources(spec, "training: general documents nearest the domain (mix-similar)")
    if "rephrase" in methods:
        done = (result.get("mitigation") or {}).get("rephrase") or {}
        generator = str((mitigation.get("rephrase") or {}).get("generator") or done.get("generator"))
        entry = lookup(generator)
        rows.append({"corpus": f"{done.get('rephrased_documents', '?')} rewrites of training documents",
                     "role": "training: synthetic text (rephrase; licensed as the rewritten documents)",
                     "source": _model_name(generator), "package": entry.package if entry else None,
                     "version": None, "license": f"generator: {entry.license if entry else 'unknown'}",
                     "sha256": done.get("generator_fingerprint"), "split_sha256": {},
                     "documents": done.get("rephrased_documents"), "bytes": done.get("rephrased_bytes")})
    return rows


def _sources(spec: str | None, role: str) -> list[dict]:
    """The sources of a corpus directory's manifest (name, package, license, sha256), or
    the hash of a plain text file."""
    from odyssey.corpora.store import is_corpus_dir, parse_data_spec, read_manifest

    if not spec:
        return []
    path, _ = parse_data_spec(str(spec))
    if is_corpus_dir(path):
        m = read_manifest(path)
        splits = {s: v.get("sha256") for s, v in (m.get("splits") or {}).items() if isinstance(v, dict)}
        sources = m.get("sources") or [{}]
        return [{"corpus": m.get("name") or path.name, "role": role, "source": s.get("name"),
                 "package": s.get("package"), "version": s.get("version"),
                 "license": s.get("license") or m.get("license") or "unknown",
                 "sha256": s.get("sha256"), "split_sha256": splits,
                 "documents": m.get("documents"), "bytes": m.get("bytes")} for s in sources]
    sha = sha256_file(path) if path.is_file() else None
    return [{"corpus": path.name, "role": role, "source": path.name, "package": None, "version": None,
             "license": "unknown", "sha256": sha, "split_sha256": {}, "documents": None, "bytes": None}]


def _recipe(config: dict, result: dict) -> dict:
    train, optim, sched = (config.get(k) or {} for k in ("train", "optim", "schedule"))
    mitigation = config.get("mitigation") or {}
    return {
        "objective": "causal language modeling (continued pretraining)",
        "steps": result.get("steps"), "tokens": result.get("tokens"), "seconds": result.get("seconds"),
        "block_size": result.get("block_size") or train.get("block_size"),
        "batch_size": train.get("batch_size"), "grad_accum": train.get("grad_accum"),
        "epochs": train.get("epochs"), "max_steps": train.get("max_steps"),
        "optimizer": "AdamW", "lr": optim.get("lr"), "weight_decay": optim.get("weight_decay"),
        "betas": [optim.get("beta1"), optim.get("beta2")], "max_grad_norm": optim.get("max_grad_norm"),
        "schedule": sched.get("kind"), "warmup_steps": sched.get("warmup_steps"),
        "warmup_ratio": sched.get("warmup_ratio"), "min_lr_ratio": sched.get("min_lr_ratio"),
        "precision": train.get("precision"), "seed": train.get("seed"),
        "mitigations": list(mitigation.get("methods") or []) if isinstance(mitigation, dict) else [],
    }


def _probe_block(p: dict) -> dict:
    """The headline figures of a probe result, for the metadata block."""
    if p.get("probe") == "bias":
        keys = ("n", "rate", "ci_low", "ci_high", "base_rate", "shift", "shift_ci_low", "shift_ci_high", "significant")
        return {"against": _model_name(p.get("against")) if p.get("against") else None, "pairs": p.get("pairs_total"),
                "categories": {c: {k: v.get(k) for k in keys} for c, v in (p.get("categories") or {}).items()}}
    if p.get("probe") == "memorization":
        e, m = p.get("extraction") or {}, p.get("membership") or {}
        pick = lambda d, keys: {k: (d or {}).get(k) for k in keys} if d else None  # noqa: E731
        ek = ("exact_matches", "exact_rate", "ci_low", "ci_high", "mean_match_prefix")
        mk = ("train_loss", "heldout_loss", "gap", "ci_low", "ci_high", "auroc")
        return {"against": _model_name(p.get("against")) if p.get("against") else None, "sequences": e.get("sequences"),
                "prefix_tokens": e.get("prefix_tokens"), "suffix_tokens": e.get("suffix_tokens"),
                "extraction": {"model": pick(e.get("model"), ek), "base": pick(e.get("base"), ek),
                               "shift": pick(e.get("shift"), ("exact_rate", "ci_low", "ci_high", "significant",
                                                              "mean_match_prefix", "match_prefix_significant")),
                               "train_minus_heldout": e.get("train_minus_heldout")},
                "membership": {"model": pick(m.get("model"), mk), "base": pick(m.get("base"), mk),
                               "shift": pick(m.get("shift"), ("gap", "ci_low", "ci_high", "significant"))}
                if m else None}
    return {}


# -- rendering -------------------------------------------------------------------------------
def _md(v) -> str:
    """A value for a markdown table cell: HTML-escaped, no pipes or newlines."""
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:.4g}"
    return html.escape(" ".join(str(v).split()), quote=False).replace("|", "\\|")


# -- metadata --------------------------------------------------------------------------------
# The ``odyssey`` block: these facts, each left out when there is nothing to say. A new
# figure for the card (e.g. the quantization of a base) is one more key here, filled by gather().
ODYSSEY_KEYS = ("architecture", "data_sources", "recipe", "results", "forgetting_pct", "energy", "probes")
ODYSSEY_OPTIONAL = ("model_source", "tasks")  # only when the run has them


def card_data(facts: dict):
    """The card's metadata as :class:`huggingface_hub.ModelCardData`: the Hub's fields, which
    the library checks (the eval results above all), and the ``odyssey`` block."""
    from huggingface_hub import ModelCardData

    from odyssey.io import json_safe

    block = {k: facts[k] for k in ODYSSEY_KEYS} | {k: facts[k] for k in ODYSSEY_OPTIONAL if facts.get(k)}
    results = _eval_results(facts) or None
    return ModelCardData(
        base_model=facts["base_model_hub_id"], library_name="transformers", pipeline_tag="text-generation",
        tags=list(TAGS), model_name=_slug(facts["name"]) if results else None, eval_results=results,
        co2_eq_emissions=_co2_eq_emissions(facts["energy"]), odyssey=json_safe(block))


def front_matter(facts: dict) -> dict:
    """The metadata as plain data (what the card's YAML holds)."""
    return card_data(facts).to_dict()


def _eval_results(facts: dict) -> list:
    """Perplexity and bits per byte before and after, per eval set, as the Hub's ``model-index``."""
    from huggingface_hub import EvalResult

    out = []
    for r in facts["results"].values():
        for metric, label in (("perplexity", "perplexity"), ("bits_per_byte", "bits per byte")):
            for when in ("before", "after"):
                value = r[f"{metric}_{when}"]
                if value is not None:
                    out.append(EvalResult(task_type="text-generation", task_name="causal language modeling",
                                          dataset_type=_slug(r["corpus"]), dataset_name=str(r["corpus"]),
                                          dataset_split=r["split"], metric_type=metric, metric_value=value,
                                          metric_name=f"{label} {when} adaptation"))
    for r in (facts.get("tasks") or {}).get("rows", []):
        for when in ("before", "after"):
            if r[f"acc_{when}"] is not None:
                out.append(EvalResult(task_type="text-generation", task_name=r["task"], dataset_type=_slug(r["task"]),
                                      dataset_name=r["task"], metric_type="accuracy", metric_value=r[f"acc_{when}"],
                                      metric_name=f"accuracy (%) {when} adaptation"))
    return out


def _co2_eq_emissions(energy: dict) -> dict | None:
    """The Hub's ``co2_eq_emissions`` (grams) from the run's top-level energy.csv rows:
    kWh times the grid intensity the energy config names."""
    top = [p for p in energy["phases"] if not p["parent"] and p.get("emissions_kg") is not None]
    if energy["kwh"] is None or not top:
        return None
    how = "estimated from counted FLOPs" if energy["estimated"] else f"measured ({energy['method']})"
    out = {"emissions": 1000.0 * sum(p["emissions_kg"] for p in top),
           "source": f"odyssey energy.csv (CodeCarbon columns): {energy['kwh']:.6g} kWh {how}, "
                     "times the configured grid carbon intensity",
           "training_type": "fine-tuning"}
    hardware = sorted({p["hardware"] for p in top if p.get("hardware")})
    location = sorted({p["location"] for p in top if p.get("location")})
    if hardware:
        out["hardware_used"] = "; ".join(hardware)
    if location:
        out["geographical_location"] = "; ".join(location)
    return out


def _hardware(row: dict) -> str | None:
    gpu, cpu = row.get("gpu_model"), row.get("cpu_model")
    if gpu:
        return f"{row.get('gpu_count') or 1} x {gpu}"
    return f"{row.get('cpu_count')} CPU cores ({cpu})" if cpu else None


def hub_id(name: str | None) -> str | None:
    """``name`` if it is a Hub model id (``gpt2``, ``org/model``), else None: a local path
    (absolute, relative or existing) is nobody else's ``base_model`` and would leak this
    machine's layout into a card meant to be shared.

    >>> hub_id("openai-community/gpt2"), hub_id("/home/me/models/base"), hub_id("runs/legal/model")
    ('openai-community/gpt2', None, None)
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or name.startswith(("/", ".", "~")) or os.path.exists(name) or name.count("/") > 1:
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _model_name(name: str | None) -> str:
    """How the card names the base model: its Hub id, or a local model's directory name."""
    if not name:
        return "unknown"
    if hub_id(name):
        return name
    path = Path(name)
    return path.parent.name if path.name == "model" and path.parent.name else path.name or "unknown"


def _slug(name) -> str:
    """A Hub-style identifier for a corpus or run name (letters, digits, ``.-_``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")
    return slug[:96] or "unnamed"


class _OneLineDumper(yaml.SafeDumper):
    """Every string on one line: a name with a line break (a corpus called ``a\n---``) is
    written double-quoted with ``\n`` escapes, so no line of the metadata can look like the
    ``---`` that ends it."""


_OneLineDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style='"' if any(c in value for c in "\n\r\x85\u2028\u2029") else None))


def render_card(facts: dict) -> str:
    from odyssey.analysis.probes import summarize_probe

    meta = yaml.dump(front_matter(facts), Dumper=_OneLineDumper, sort_keys=False, allow_unicode=True,
                     width=float("inf"))
    arch, rec = facts["architecture"], facts["recipe"]
    params = f"{arch['parameters']:,}" if arch["parameters"] else None
    out = ["---", meta.rstrip(), "---", "", f"# {_md(facts['name'])}", ""]
    out += [f"`{_md(facts['name'])}` is **{_md(facts['base_model'])}** adapted by continued pretraining "
            f"(`odyssey adapt`) on **{_md(', '.join(dict.fromkeys(s['corpus'] for s in facts['data_sources'][:1])))}**. "
            "This card was written by odyssey from the run directory; every figure below is also in the "
            "`odyssey` block of the metadata above.", ""]
    out += ["## Model description", "", "| | |", "| --- | --- |",
            f"| base model | {_md(facts['base_model'])} |", f"| architecture | {_md(arch['model_type'])} |",
            f"| parameters | {_md(params)} |",
            f"| context length | {_md(arch['context_length'])} |"]
    out += _source_rows(facts.get("model_source")) + [""]
    out += ["## Training data", "", "| corpus | use | source | package | license | sha256 |",
            "| --- | --- | --- | --- | --- | --- |"]
    for s in facts["data_sources"]:
        pkg = f"{s['package']} {s['version'] or ''}".strip() if s["package"] else None
        out.append(f"| {_md(s['corpus'])} | {_md(s['role'])} | {_md(s['source'])} | {_md(pkg)} | "
                   f"{_md(s['license'])} | `{_md(s['sha256'])}` |")
    out += ["", "Split hashes (sha256 of the JSONL shards) are in the metadata (`odyssey.data_sources`).", ""]
    out += ["## Training recipe", "", "| | |", "| --- | --- |"]
    for label, key in (("steps", "steps"), ("tokens", "tokens"), ("block size", "block_size"),
                       ("batch size (per process)", "batch_size"), ("gradient accumulation", "grad_accum"),
                       ("peak learning rate", "lr"), ("schedule", "schedule"), ("warmup ratio", "warmup_ratio"),
                       ("final lr ratio", "min_lr_ratio"), ("weight decay", "weight_decay"),
                       ("gradient clipping", "max_grad_norm"), ("precision", "precision"), ("seed", "seed"),
                       ("training time (s)", "seconds")):
        out.append(f"| {label} | {_md(rec.get(key))} |")
    out.append(f"| mitigations | {_md(', '.join(rec['mitigations']) or 'none')} |")
    out += ["", "Optimizer AdamW; the full resolved configuration is `config.yaml` in the run directory.", ""]
    out += _results_section(facts) + _task_section(facts.get("tasks"))
    out += _energy_section(facts) + _probe_section(facts, summarize_probe)
    out += _use_and_limits(facts)
    return "\n".join(out) + "\n"


def _source_rows(src: dict | None) -> list[str]:
    """Where a base loaded from a GGUF file came from: its weights were dequantized."""
    if not src:
        return []
    return [f"| dequantized from | {_md(src.get('file'))}, {_md(src.get('quantization'))} "
            f"({_md(src.get('format'))}, sha256 `{_md(src.get('sha256'))}`) |",
            "| note | the base weights were dequantized from this quantized file: they are not the "
            "original full-precision model, and adapting may first repair quantization error |"]


def _results_section(facts: dict) -> list[str]:
    out = ["## Results", ""]
    if not facts["results"]:
        return out + ["No evaluation was recorded in `result.json`.", ""]
    out += ["| eval set | perplexity before | perplexity after | change | bits/byte before | bits/byte after |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for role, r in facts["results"].items():
        label = f"{'in-domain' if role == 'in_domain' else 'general'}: {r['corpus']} ({r['split']})"
        change = None if r["change_pct"] is None else f"{r['change_pct']:+.2f}%"
        out.append(f"| {_md(label)} | {_md(r['perplexity_before'])} | {_md(r['perplexity_after'])} | {_md(change)} | "
                   f"{_md(r['bits_per_byte_before'])} | {_md(r['bits_per_byte_after'])} |")
    f = facts["forgetting_pct"]
    out += ["", "Perplexity is token-weighted over the held-out split, with the window and stride in the metadata. "
            + ("Forgetting (general-text perplexity change): "
               f"**{f:+.2f}%** ({'more' if f > 0 else 'less'} perplexity on general text after adaptation)."
               if f is not None else "No general corpus was evaluated, so forgetting was not measured."), ""]
    return out


def _tasks(path: Path) -> dict | None:
    """The accuracies of ``tasks.json`` (in %), per task and their mean; None without the file."""
    if not path.is_file():
        return None
    data = read_json(path)
    before, after = data.get("tasks_before") or {}, data.get("tasks_after") or {}

    def pct(v):
        return None if _f(v) is None else 100.0 * v

    rows = [{"task": t, "n": after[t].get("n"), "acc_before": pct((before.get(t) or {}).get("acc")),
             "acc_after": pct(after[t].get("acc")), "stderr_before": pct((before.get(t) or {}).get("acc_stderr")),
             "stderr_after": pct(after[t].get("acc_stderr"))}
            for t in after if not after[t].get("group")]
    for r in rows:
        r["change_points"] = (None if r["acc_before"] is None or r["acc_after"] is None
                              else r["acc_after"] - r["acc_before"])
    return {"tasks": data.get("tasks"), "limit": data.get("limit"), "rows": rows,
            "acc_before": _f(data.get("task_acc_before")), "acc_after": _f(data.get("task_acc_after")),
            "acc_change_points": _f(data.get("task_acc_change"))}


def _task_section(tasks: dict | None) -> list[str]:
    if not tasks:
        return []
    out = ["## Downstream tasks", "",
           f"Accuracy on lm-evaluation-harness tasks ({_md(', '.join(tasks['tasks'] or []))}; at most "
           f"{_md(tasks['limit'] or 'all')} documents each) of the base model and of this model, in %.", "",
           "| task | documents | accuracy before | accuracy after | change (points) |",
           "| --- | ---: | ---: | ---: | ---: |"]

    def acc(v, se):
        return None if v is None else f"{v:.1f} ± {se:.1f}" if se is not None else f"{v:.1f}"

    for r in tasks["rows"]:
        change = None if r["change_points"] is None else f"{r['change_points']:+.1f}"
        out.append(f"| {_md(r['task'])} | {_md(r['n'])} | {_md(acc(r['acc_before'], r['stderr_before']))} | "
                   f"{_md(acc(r['acc_after'], r['stderr_after']))} | {_md(change)} |")
    c = tasks["acc_change_points"]
    out += ["", "± is the standard error of each accuracy. " + (
        f"Mean change over the tasks: **{c:+.1f} points** ({tasks['acc_before']:.1f}% → {tasks['acc_after']:.1f}%)."
        if c is not None else "No task was measured both before and after."), ""]
    return out


def _energy_section(facts: dict) -> list[str]:
    e = facts["energy"]
    out = ["## Energy", ""]
    if e["kwh"] is None:
        return out + ["No energy was recorded for this run.", ""]
    how = ("**estimated** from counted FLOPs (no hardware energy counter was readable), not measured"
           if e["estimated"] else f"measured ({_md(e['method'])})")
    out += [f"{e['kwh']:.6g} kWh for the run and its evaluations, {how}.", "",
            "| phase | inside | seconds | kWh | method |", "| --- | --- | ---: | ---: | --- |"]
    for p in e["phases"]:
        out.append(f"| {_md(p['phase'])} | {_md(p['parent'])} | {_md(p['seconds'])} | {_md(p['kwh'])} | "
                   f"{_md(p['method'])} |")
    return out + [""]


def _probe_section(facts: dict, summarize) -> list[str]:
    probes = facts["probe_results"]
    out = ["## Bias and memorization probes", ""]
    if not probes:
        return out + ["No probes were run for this model. Run `odyssey probe bias --model RUN --against BASE "
                      "--out RUN/probes` and `odyssey probe memorization --model RUN --data CORPUS --against BASE "
                      "--out RUN/probes`, then `odyssey model-card RUN`.", ""]
    bias = probes.get("bias")
    if bias:
        conf = f"{100 * bias['config']['confidence']:.0f}%"
        out += [f"**Bias** ({bias.get('pairs_total')} templated minimal pairs; rate = share of pairs where the "
                f"stereotypical sentence is likelier; 50% = no preference; {conf} bootstrap intervals).", "",
                "| category | pairs | rate after | interval | rate before | shift | shift interval | beyond interval |",
                "| --- | ---: | ---: | --- | ---: | ---: | --- | --- |"]
        pct = lambda v: None if v is None else f"{100 * v:.1f}%"  # noqa: E731
        pts = lambda v: None if v is None else f"{100 * v:+.1f}"  # noqa: E731
        for name, c in bias["categories"].items():
            sig = None if c.get("significant") is None else ("yes" if c["significant"] else "no")
            out.append(f"| {_md(name)} | {c['n']} | {_md(pct(c['rate']))} | {_md(pct(c['ci_low']))} to "
                       f"{_md(pct(c['ci_high']))} | {_md(pct(c.get('base_rate')))} | {_md(pts(c.get('shift')))} | "
                       f"{_md(pts(c.get('shift_ci_low')))} to {_md(pts(c.get('shift_ci_high')))} | {_md(sig)} |")
        out += [""] + [_md(line) for line in summarize(bias)] + [""]
    mem = probes.get("memorization")
    if mem:
        out += ["**Memorization**", ""] + [f"- {_md(line)}" for line in summarize(mem)] + [""]
    return out


def _use_and_limits(facts: dict) -> list[str]:
    licenses = sorted({str(s["license"]) for s in facts["data_sources"] if s["role"].startswith("training")})
    return [
        "## Intended use", "",
        "A research artifact for measuring what continued pretraining on one domain does to a causal language "
        "model: in-domain and general perplexity, forgetting, energy, bias and memorization. It is not "
        "instruction-tuned, " + ("evaluated only on the downstream tasks listed above" if facts.get("tasks")
                                 else "not evaluated for any downstream task")
        + ", and not meant for deployment or for generating text that people rely on.", "",
        "## Limitations", "",
        "- Perplexity and bits per byte are measured on small held-out splits; differences of a few percent may "
        "not generalize beyond them.",
        "- The bias probe is a coarse signal: a small model's likelihood preference on short templated English "
        "sentences, written by the odyssey authors, over five categories. It does not measure harm in generated "
        "text, other languages or other groups, and a preference within its interval is not evidence of no bias.",
        "- The memorization probe samples a limited number of training windows and documents; zero exact "
        "extractions do not prove that no training text can be extracted.",
        "- Energy is " + ("an estimate from counted FLOPs, not a measurement."
                          if facts["energy"]["estimated"] else "measured for this run only (training and its "
                          "evaluations), not for building the base model."),
        f"- The training text is under its own terms ({_md('; '.join(licenses))}); check them before reusing "
        "the weights or their outputs.",
        "",
    ]
