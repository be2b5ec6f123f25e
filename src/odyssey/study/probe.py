"""The probe of `odyssey diagnose --probe`: a short adapt run on a slice of a domain's
train split, whose change of valid perplexity is extrapolated to one epoch. It runs an
adaptation, so it lives with the orchestrators; :mod:`odyssey.analysis.diagnose` takes it
as a function (``probe=run_probe``).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from odyssey.analysis.config import ProbeConfig
from odyssey.analysis.predictor import PROBE_FEATURE
from odyssey.errors import DataError
from odyssey.io import write_json


def _probe_documents(data: str, max_bytes: int) -> tuple[list[dict], list[dict], int]:
    """(train slice, valid documents, bytes of the whole train split)."""
    from odyssey.corpora.store import is_corpus_dir, iter_split, load_documents, parse_data_spec

    path, _ = parse_data_spec(str(data))
    if is_corpus_dir(path):
        train_iter, valid = iter_split(path, "train"), list(iter_split(path, "valid"))
    else:
        docs = load_documents(path)
        valid = docs[::10]
        train_iter = iter(d for i, d in enumerate(docs) if i % 10)
    sliced, sliced_bytes, total = [], 0, 0
    for doc in train_iter:
        size = len(doc["text"].encode("utf-8"))
        total += size
        if sliced_bytes < max_bytes:
            sliced.append(doc)
            sliced_bytes += size
    if not sliced or not valid:
        raise DataError(f"{data}: the probe needs train and valid documents", "give a corpus with both splits")
    return sliced, valid, total


def run_probe(model: str, data: str, config: ProbeConfig | None = None, recipe: dict | None = None,
              progress: bool = True) -> dict:
    """A short adapt run (``config.steps`` steps of ``recipe``: the ``train``, ``optim``,
    ``schedule`` and ``eval`` sections of a study's recipe as plain data, at its first
    learning rate; default: those of :class:`~odyssey.adapt.config.AdaptConfig`) on a
    slice of the train split, in a temporary directory; the change of valid perplexity,
    extrapolated to one epoch of the whole train split.

    Extrapolation: the log-perplexity change is taken to grow like ``log(1 + steps)``
    (loss curves are roughly straight against log steps), so
    ``d_epoch = d_probe * log(1 + epoch_steps) / log(1 + probe_steps)``, with
    ``epoch_steps`` estimated from the slice's tokens per byte and the train split's bytes.

    >>> run_probe("runs/base", "corpora/legal")["probe_delta_ppl_pct"]
    """
    from odyssey.adapt.config import AdaptConfig
    from odyssey.adapt.loop import adapt
    from odyssey.io import write_jsonl
    from odyssey.models import load_tokenizer

    config = config or ProbeConfig()
    sections = probe_recipe(recipe)
    sliced, valid, train_bytes = _probe_documents(data, config.max_bytes)
    with tempfile.TemporaryDirectory(prefix="odyssey-probe-") as tmp:
        corpus = Path(tmp) / "slice"
        write_jsonl(corpus / "train" / "shard-00000.jsonl", sliced)
        write_jsonl(corpus / "valid" / "shard-00000.jsonl", valid)
        write_json(corpus / "manifest.json", {"name": "probe-slice", "splits": {}})
        cfg = AdaptConfig.model_validate({
            "model": str(model), "data": str(corpus), "out": str(Path(tmp) / "run"), "eval_every": 0,
            **sections, "train": {**sections.get("train", {}), "max_steps": config.steps},
            "eval": {**sections.get("eval", {}), "max_tokens": config.valid_max_tokens}})
        result = adapt(cfg, progress=progress)
    before, after = result.evals["valid"]["before"]["perplexity"], result.evals["valid"]["after"]["perplexity"]
    tok = load_tokenizer(model)
    slice_bytes = sum(len(d["text"].encode("utf-8")) for d in sliced)
    slice_tokens = sum(len(ids) + 1 for ids in tok([d["text"] for d in sliced])["input_ids"])
    tokens_per_step = result.tokens / max(1, result.steps)
    epoch_steps = max(1, math.ceil(slice_tokens / slice_bytes * train_bytes / tokens_per_step))
    d = math.log(after / before)
    factor = math.log1p(epoch_steps) / math.log1p(result.steps)
    return {"steps": result.steps, "tokens": result.tokens, "slice_bytes": slice_bytes, "train_bytes": train_bytes,
            "valid_ppl_before": before, "valid_ppl_after": after,
            "delta_ppl_pct": 100.0 * (after / before - 1.0), "epoch_steps": epoch_steps,
            "extrapolation_factor": factor, PROBE_FEATURE: 100.0 * math.expm1(d * factor),
            "seconds": result.seconds}



def probe_recipe(recipe: dict | None) -> dict:
    """The sections of a study recipe (plain data) that an adapt run takes, at the recipe's
    first (reference) learning rate."""
    recipe = dict(recipe or {})
    sections = {k: dict(recipe[k]) for k in ("train", "optim", "schedule", "eval") if isinstance(recipe.get(k), dict)}
    lr = sections.get("optim", {}).get("lr")
    if isinstance(lr, list):
        sections["optim"]["lr"] = lr[0]
    return sections


