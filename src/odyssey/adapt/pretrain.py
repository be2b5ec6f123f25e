"""`odyssey pretrain`: train a small base model from scratch with the adapt loop.

1. Train a byte-level BPE on the training split (or reuse a given tokenizer).
2. Build a randomly initialized Llama-style model from a preset; save it to
   ``OUT/init`` (HF layout), so the run is an ordinary adapt run starting there.
3. Run :func:`odyssey.adapt.loop.adapt` into ``OUT``.
4. Write ``OUT/provenance.json``: the command, data hashes, tokens seen, final valid
   loss, perplexity and bits per byte, the pretraining curve (validation loss and bits
   per byte against tokens seen, from ``metrics.jsonl``), software versions.

Two recipes: ``default`` (the shipped base, ~3 passes over the general corpus) and
``saturated`` (the same shape and schedule, 4x the tokens), to tell whether the
base's behaviour under adaptation comes from its being far from saturation.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
from pathlib import Path

from pydantic import Field

from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.loop import AdaptResult, adapt
from odyssey.corpora.store import is_corpus_dir, load_documents, parse_data_spec, read_manifest
from odyssey.io import odyssey_home, read_json, write_json
from odyssey.models.presets import build_model, llama_config
from odyssey.models.tokenizer_train import train_bpe_tokenizer
from odyssey.runlock import run_lock


class PretrainConfig(AdaptConfig):
    """An adapt run that starts from a fresh model of a preset shape."""

    model: str = Field("", description="unused: the model is built from `preset`")
    preset: str = Field("default", description="model shape (odyssey.models.presets.PRESETS)")
    vocab_size: int = Field(8192, ge=256, description="BPE vocabulary size when training a tokenizer")
    init_seed: int = Field(0, description="seed of the random initialization")


# The recipe of the shipped default base model (`odyssey pretrain --preset default`).
_DEFAULT = dict(
    preset="default", vocab_size=8192,
    # 2400 steps of 16 x 256 tokens (9.8M tokens, ~3 epochs of the general corpus):
    # about 50 minutes on two otherwise idle CPU cores. The whole valid split is evaluated
    # every 100 steps: that is the pretraining curve kept in the provenance.
    train=dict(block_size=256, batch_size=16, max_steps=2400, seed=0),
    optim=dict(lr=2e-3, weight_decay=0.1, beta2=0.95),
    schedule=dict(kind="cosine", warmup_ratio=0.02, min_lr_ratio=0.1),
    eval=dict(max_tokens=100_000, batch_size=16),
    eval_every=100, save_every=250, log_every=25,
)
RECIPES: dict[str, dict] = {
    "default": _DEFAULT,
    # The same shape, schedule and peak/final rates for 4x the steps (39M tokens, ~12
    # epochs): about 3.5 hours on two idle CPU cores, minutes on a GPU.
    "saturated": {**_DEFAULT, "train": {**_DEFAULT["train"], "max_steps": 9600}, "eval_every": 400},
}
# Learning rates of the default recipes: the study's learning-rate axis is read against them.
FINAL_LR = _DEFAULT["optim"]["lr"] * _DEFAULT["schedule"]["min_lr_ratio"]  # 2e-4
PEAK_LR = _DEFAULT["optim"]["lr"]  # 2e-3


def _train_texts(data: str) -> list[str]:
    return [d["text"] for d in load_documents(data, default_split="train")]


def make_initial_model(cfg: PretrainConfig, init_dir: Path) -> None:
    """Tokenizer + random model in ``init_dir`` (written to ``.tmp``, then renamed)."""
    if (init_dir / "config.json").is_file():
        return  # resuming: the initial model is part of the run
    if cfg.tokenizer:
        from odyssey.models import load_tokenizer

        tok = load_tokenizer(cfg.tokenizer)
    else:
        tok = train_bpe_tokenizer(_train_texts(cfg.data), vocab_size=cfg.vocab_size)
    config = llama_config(cfg.preset, len(tok), eos_token_id=tok.eos_token_id)
    tok.model_max_length = config.max_position_embeddings
    model = build_model(config, seed=cfg.init_seed)
    tmp = init_dir.with_name(init_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(init_dir)


def pretrain(cfg: PretrainConfig, *, progress: bool = True, command: str | None = None) -> AdaptResult:
    """Pretrain a base model; ``OUT/model`` is the result, ``OUT/provenance.json`` its record
    (``command``: how it was started, as the user typed it).

    >>> pretrain(resolve(PretrainConfig, overrides=["data=world/general", "out=runs/base"]))
    """
    out = Path(cfg.out)
    # adapt() takes the lock again (reentrant); holding it here covers the initial model too.
    # Under a launcher only rank 0 locks (RANK as torchrun and accelerate set it: reading it
    # does not start the distributed state before adapt() chooses its device).
    main = os.environ.get("RANK", "0") == "0"
    lock = run_lock(out, what="pretrain run") if main else contextlib.nullcontext()
    with lock:
        if cfg.overwrite:
            shutil.rmtree(out / "init", ignore_errors=True)
        make_initial_model(cfg, out / "init")
        run_cfg = AdaptConfig(**{**cfg.model_dump(exclude={"preset", "vocab_size", "init_seed"}),
                                 "model": str(out / "init"), "tokenizer": None})
        result = adapt(run_cfg, progress=progress)
        write_provenance(cfg, result, command)
    return result


def pretraining_curve(run_dir: str | Path) -> list[dict]:
    """Validation figures against tokens seen, from the run's ``metrics.jsonl``."""
    from odyssey.adapt.tracking import read_metrics

    return [{k: r.get(k) for k in ("step", "tokens_seen", "loss", "perplexity", "bits_per_byte")}
            for r in read_metrics(run_dir) if r.get("kind") == "eval" and r.get("split") == "valid"]


def write_provenance(cfg: PretrainConfig, result: AdaptResult, command: str | None = None) -> None:
    import torch
    import transformers

    from odyssey import __version__

    path, _ = parse_data_spec(cfg.data)
    data = {"path": str(path)}
    if is_corpus_dir(path):
        manifest = read_manifest(path)
        data.update(name=manifest.get("name"), splits={k: {"sha256": v.get("sha256"), "documents": v.get("documents"),
                                                          "bytes": v.get("bytes")} for k, v in manifest["splits"].items()})
    valid = (result.evals.get("valid") or {}).get("after") or {}
    write_json(Path(cfg.out) / "provenance.json", {
        "command": command,
        "config": cfg.model_dump(mode="json"),
        "data": data,
        "steps": result.steps, "tokens_seen": result.tokens, "train_seconds": result.seconds,
        "final_valid": {k: valid.get(k) for k in ("perplexity", "bits_per_byte", "tokens", "bytes")}
        | {"loss": (valid["nll_sum"] / valid["tokens"]) if valid else None},
        "curve": pretraining_curve(cfg.out),
        "software": {"odyssey": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})",
    })


def export_model(run_dir: str | Path, dest: str | Path, dtype: str = "float16") -> Path:
    """Copy ``RUN/model`` to ``dest`` with weights cast to ``dtype`` (to ship it small),
    plus the run's provenance."""
    from odyssey.models import load_model, load_tokenizer

    run_dir, dest = Path(run_dir), Path(dest)
    model = load_model(run_dir / "model", dtype=dtype)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    load_tokenizer(run_dir / "model").save_pretrained(tmp)
    if (run_dir / "provenance.json").is_file():
        prov = read_json(run_dir / "provenance.json")
        prov["exported_dtype"] = dtype
        write_json(tmp / "provenance.json", prov)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def default_pretrain_paths(recipe: str = "default") -> tuple[str, str]:
    """The default world's general corpus (built if missing) and ``$ODYSSEY_HOME/base``
    (``base-RECIPE`` for another recipe)."""
    from odyssey.corpora.world import build_world

    world = build_world()
    return world["general"]["dir"], str(odyssey_home() / ("base" if recipe == "default" else f"base-{recipe}"))
