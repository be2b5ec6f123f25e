"""Continued pretraining with the causal-LM objective, on accelerate.

One loop for every run (adapt, pretrain, the mitigations): ``setup`` builds
the pieces, ``fit`` trains, ``validate`` measures. The learning rate and the data
order are pure functions of the step (:mod:`odyssey.adapt.schedule`), so resuming
from a checkpoint restores only weights, optimizer state, RNG and counters, and
ends with the same weights as an uninterrupted run. Mitigations
(:mod:`odyssey.adapt.mitigations`) are asked at fixed points through ``run.mit``.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from odyssey.adapt.checkpoint import (
    TrainState,
    find_resume_point,
    load_training_state,
    remove_run,
    save_checkpoint,
    sharding_engine,
)
from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.mitigations.base import BatchInfo
from odyssey.adapt.mitigations.compose import Mitigations
from odyssey.adapt.mitigations.config import MitigationConfig
from odyssey.adapt.schedule import block_indices, lr_at, steps_for
from odyssey.adapt.tracking import MetricsLog, read_metrics
from odyssey.blocks import pack_documents
from odyssey.config import config_differences, load_yaml, save_config
from odyssey.corpora.store import is_corpus_dir, iter_split, load_documents, parse_data_spec
from odyssey.energy import measure_phase
from odyssey.errors import ConfigError, TrainingError
from odyssey.io import read_json, write_json
from odyssey.models import check_tokenizer_fits, load_tokenizer, max_context, model_source
from odyssey.runlock import run_lock


@dataclass
class AdaptResult:
    """What a finished run reports (also saved as ``result.json``)."""

    out_dir: str
    steps: int
    tokens: int
    seconds: float
    block_size: int
    evals: dict = field(default_factory=dict)  # split -> {"before": summary, "after": summary}
    mitigation: dict = field(default_factory=dict)  # method -> what it did (counts, best step, ...)
    best_step: int | None = None  # early-stop: the step whose weights OUT/model holds
    stopped_at: int | None = None  # early-stop: the step training stopped at, if before the end
    model_source: dict | None = None  # the GGUF file (quantization type) the base was dequantized from

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Run:
    """Everything ``fit`` needs, built by ``setup``."""

    cfg: AdaptConfig
    out: Path
    accelerator: object
    model: torch.nn.Module
    tokenizer: object
    optimizer: torch.optim.Optimizer
    blocks: np.ndarray
    eval_sets: dict[str, list[dict]]
    total_steps: int
    warmup_steps: int
    state: TrainState
    log: MetricsLog
    mit: Mitigations
    meters: list = field(default_factory=list)  # running EnergyMeters: work is counted into each
    last_eval: tuple[int, dict] | None = None  # (step, results) of the latest evaluation


def adapt(config: AdaptConfig, *, accelerator=None, progress: bool = True) -> AdaptResult:
    """Adapt ``config.model`` to ``config.data`` and return before/after figures.

    >>> cfg = resolve(AdaptConfig, overrides=["model=gpt2", "data=corpora/legal", "out=runs/legal"])
    >>> adapt(cfg).evals["valid"]["after"]["perplexity"]
    """
    out = Path(config.out)
    accelerator = accelerator or _make_accelerator(config)
    # One writer per run: a second process on the same OUT stops here with one line naming
    # the first. Under accelerate only the main process locks; the others wait for it.
    lock = run_lock(out, what="adapt run") if accelerator.is_main_process else contextlib.nullcontext()
    with lock:
        accelerator.wait_for_everyone()
        if config.resume and (out / "result.json").is_file():
            _check_existing(config, out, finished=True)  # a finished run is reused only under the same settings
            return AdaptResult(**read_json(out / "result.json"))
        return _run(config, accelerator, progress)


def _run(config: AdaptConfig, accelerator, progress: bool) -> AdaptResult:
    run = setup(config, accelerator)
    try:
        with measure_phase(run.out, "adapt", accelerator=run.accelerator, active=run.meters,
                           config=config.energy):  # OUT/energy.csv
            fit(run, progress=progress)
            return finish(run)
    except torch.OutOfMemoryError as e:
        raise TrainingError("out of memory", "lower train.batch_size or train.block_size, "
                            "or raise train.grad_accum") from e
    finally:
        run.log.close()


def _make_accelerator(cfg: AdaptConfig):
    from accelerate import Accelerator

    cuda = torch.cuda.is_available() and cfg.train.device != "cpu"
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available")
    precision = cfg.train.precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    if precision != "no" and not cuda and precision == "fp16":
        raise ConfigError("fp16 autocast needs a GPU", "use train.precision=bf16 or no on CPU")
    return Accelerator(cpu=not cuda, mixed_precision=precision, log_with=cfg.report_to or None,
                       project_dir=cfg.out)


def _check_existing(cfg: AdaptConfig, out: Path, finished: bool = False) -> None:
    exists = (out / "config.yaml").is_file() or (out / "checkpoint").is_dir()
    if exists and cfg.overwrite:
        remove_run(out)
    elif exists and not cfg.resume:
        raise ConfigError(f"{out} already holds a run", "pass --resume to continue it or --overwrite to start over")
    elif exists and (out / "config.yaml").is_file():
        before = load_yaml(out / "config.yaml")
        now = cfg.model_dump(mode="json")
        # Runs saved before mitigations existed have no such section: they had none.
        before.setdefault("mitigation", MitigationConfig().model_dump(mode="json"))
        before = {k: v for k, v in before.items() if k in now}  # fields since removed do not count
        changed = "; ".join(config_differences(before, now, ignore=cfg.RESUMABLE_CHANGES))
        if changed and finished:
            raise ConfigError(f"{out} is a finished run whose settings differ from these ({changed})",
                              "pass --overwrite to redo it with these settings, or choose another --out")
        if changed:
            raise ConfigError(f"cannot resume {out}: these settings differ from its config.yaml ({changed})",
                              "resume with the saved settings, or start over with --overwrite")


def _load_eval_sets(cfg: AdaptConfig) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}
    path, _ = parse_data_spec(cfg.data)
    if is_corpus_dir(path) and any((path / "valid").glob("shard-*.jsonl")):
        sets["valid"] = list(iter_split(path, "valid"))
    if cfg.general:
        sets["general"] = load_documents(cfg.general, default_split="valid")
    return sets


def setup(cfg: AdaptConfig, accelerator=None) -> Run:
    """Load the model, tokenizer and data; restore a checkpoint when resuming."""
    from accelerate.utils import set_seed

    out = Path(cfg.out)
    _check_existing(cfg, out)
    accelerator = accelerator or _make_accelerator(cfg)
    set_seed(cfg.train.seed)
    resume_from = find_resume_point(out) if cfg.resume else None
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model, revision=cfg.revision,
                               trust_remote_code=cfg.trust_remote_code)
    mit = Mitigations(cfg, resume_from)
    model = mit.load_model()  # from cfg.model or the checkpoint; frozen / LoRA-wrapped as configured
    check_tokenizer_fits(model, tokenizer)
    block_size = cfg.train.block_size or min(max_context(model), 512)
    if block_size > max_context(model):
        raise ConfigError(f"train.block_size={block_size} exceeds the model's context of {max_context(model)}")
    train_docs = mit.documents(load_documents(cfg.data, default_split="train"), accelerator)
    with accelerator.main_process_first():
        blocks = pack_documents(train_docs, tokenizer, block_size)
    mit.build(model, tokenizer, blocks, accelerator)
    global_batch = cfg.train.batch_size * accelerator.num_processes * cfg.train.grad_accum
    # `epochs` counts passes over the domain blocks, also when replay mixes general ones in.
    total = cfg.train.max_steps or steps_for(cfg.train.epochs, len(blocks), global_batch * mit.domain_share())
    if cfg.train.max_tokens and not cfg.train.max_steps:  # the cap counts domain blocks, as epochs do
        total = min(total, steps_for(1.0, math.ceil(cfg.train.max_tokens / block_size), global_batch * mit.domain_share()))
    warmup = cfg.schedule.warmup_steps
    warmup = round(cfg.schedule.warmup_ratio * total) if warmup is None else warmup
    optimizer = torch.optim.AdamW(mit.trainable(model), lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                                  eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay,
                                  fused=accelerator.device.type == "cuda")
    model, optimizer = accelerator.prepare(model, optimizer)
    state = load_training_state(resume_from, accelerator, optimizer) if resume_from else TrainState()
    log = MetricsLog(out, accelerator, cfg.report_to, cfg.model_dump(mode="json"))
    log.truncate_after(state.step if resume_from else -1)  # a fresh start keeps no old lines
    if accelerator.is_main_process:
        save_config(cfg, out / "config.yaml")
    return Run(cfg, out, accelerator, model, tokenizer, optimizer, blocks, _load_eval_sets(cfg),
               total, warmup, state, log, mit)


def validate(run: Run) -> dict[str, dict]:
    """Evaluate on every eval set; log and return the summaries (main process)."""
    from odyssey.evaluate.config import EvalConfig
    from odyssey.evaluate.run import evaluate_documents
    from odyssey.evaluate.windows import forward_tokens

    acc, results = run.accelerator, {}
    # Sharded weights (FSDP, ZeRO-3) are gathered inside the forward pass, which every process
    # must then run in step: all evaluate the same documents, only the main one records.
    sharded = sharding_engine(acc, run.model) is not None
    if acc.is_main_process or sharded:
        base = run.cfg.eval.model_dump()
        base["context_length"] = base["context_length"] or run.blocks.shape[1]
        base["device"] = str(acc.device)
        base["progress"] = base["progress"] and acc.is_main_process
        ecfg = EvalConfig(**base)
        model = run.model if sharded else acc.unwrap_model(run.model)
        for split, docs in run.eval_sets.items():
            evaluated = evaluate_documents(model, run.tokenizer, docs, ecfg)
            if not acc.is_main_process:
                continue
            for meter in run.meters:
                meter.add_tokens(model, forward_tokens(evaluated), training=False)
            summary = evaluated.summary()
            results[split] = summary
            row = {"kind": "eval", "split": split, "step": run.state.step, "tokens_seen": run.state.tokens,
                   "loss": summary["nll_sum"] / max(1, summary["tokens"]), **summary}
            run.log.log(row)
    acc.wait_for_everyone()
    run.last_eval = (run.state.step, results)
    run.mit.after_eval(run, results)
    return results


def _micro_batch(run: Run, step: int, micro: int) -> np.ndarray:
    """The token blocks of micro-batch ``micro`` of ``step`` on this process."""
    acc, t = run.accelerator, run.cfg.train
    b = BatchInfo(step=step, micro=micro, seed=t.seed, rank=acc.process_index, world_size=acc.num_processes,
                  micro_batch=t.batch_size, grad_accum=t.grad_accum, n_blocks=len(run.blocks))
    rows = run.mit.rows(b)  # replay: domain and general blocks mixed
    if rows is None:
        rows = run.blocks[np.sort(block_indices(step, micro, rank=b.rank, world_size=b.world_size,
                                                micro_batch=b.micro_batch, grad_accum=b.grad_accum,
                                                n_blocks=b.n_blocks, seed=b.seed))]
    return run.mit.transform_batch(rows, b)


def _train_step(run: Run, step: int) -> tuple[float, float | None]:
    """One optimizer step over ``grad_accum`` micro-batches; return (loss, grad norm)."""
    cfg, acc, model = run.cfg, run.accelerator, run.model
    lr = lr_at(step, base_lr=cfg.optim.lr, total_steps=run.total_steps, warmup_steps=run.warmup_steps,
               kind=cfg.schedule.kind, min_lr_ratio=cfg.schedule.min_lr_ratio)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    total = torch.zeros((), device=acc.device)
    accum = cfg.train.grad_accum
    batches = [torch.from_numpy(np.asarray(_micro_batch(run, step, m), dtype=np.int64)).to(acc.device)
               for m in range(accum)]
    run.mit.start_step(batches, acc)  # selective: token weights normalized over the whole step
    for micro, batch in enumerate(batches):
        # Gradients are all-reduced only on the last micro-batch (no_sync before it).
        sync = contextlib.nullcontext() if micro == accum - 1 else acc.no_sync(model)
        with sync, acc.autocast():
            loss = run.mit.lm_loss(model, batch, micro) / accum
            penalty = run.mit.penalty(acc.unwrap_model(model))  # l2sp/ewc: on the whole step, 1/accum each time
            acc.backward(loss if penalty is None else loss + penalty / accum)
        total += loss.detach()
    # The mean over processes decides for all of them, so no process stops alone.
    loss_value = acc.reduce(total, reduction="mean").item()
    if not math.isfinite(loss_value):
        raise TrainingError(f"the loss became {loss_value} at step {step + 1}", _diverged_hint(run.out))
    grad_norm = None
    if cfg.optim.max_grad_norm:
        grad_norm = float(acc.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm))
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss_value, grad_norm


def _diverged_hint(out: Path) -> str:
    """What to do after a NaN loss: the checkpoint to resume from is named only if there is one."""
    hint = "lower optim.lr (or use train.precision=no) and start over with --overwrite"
    kept = find_resume_point(out)
    if kept is None:
        return f"{hint}; no checkpoint was saved before it (--save-every N saves one every N steps)"
    return f"{hint}; {kept.name} is kept, and --resume continues from it with the same settings"


def fit(run: Run, progress: bool = True) -> None:
    """Train from ``run.state.step`` to ``run.total_steps``, evaluating and saving on schedule."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    cfg, acc, state = run.cfg, run.accelerator, run.state
    if state.step == 0:
        validate(run)  # the step-0 baseline (early-stop: the base is the first best)
    tokens_per_step = cfg.train.batch_size * acc.num_processes * cfg.train.grad_accum * run.blocks.shape[1]
    bar = Progress(TextColumn("adapt"), BarColumn(), TextColumn("{task.completed}/{task.total} steps {task.fields[loss]}"),
                   TimeRemainingColumn(), disable=not (progress and acc.is_main_process), transient=True)
    with bar, measure_phase(run.out, "train", accelerator=acc, active=run.meters, config=cfg.energy):
        task = bar.add_task("adapt", total=run.total_steps, completed=state.step, loss="")
        while state.step < run.total_steps and not run.mit.should_stop(state):
            t0 = time.perf_counter()
            loss, grad_norm = _train_step(run, state.step)
            state.step += 1
            state.tokens += tokens_per_step
            for meter in run.meters:
                meter.add_tokens(run.model, tokens_per_step, training=True)
            state.seconds += time.perf_counter() - t0
            bar.update(task, advance=1, loss=f"loss {loss:.3f}")
            if state.step % cfg.log_every == 0 or state.step == run.total_steps:
                run.log.log({"kind": "train", "step": state.step, "tokens_seen": state.tokens, "loss": loss,
                             "grad_norm": grad_norm, "lr": run.optimizer.param_groups[0]["lr"],
                             "seconds": round(state.seconds, 3), **run.mit.train_log()})
            if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < run.total_steps:
                validate(run)
                if run.mit.should_stop(state):
                    break
            if cfg.save_every and state.step % cfg.save_every == 0 and state.step < run.total_steps:
                save_checkpoint(run.out, acc, run.model, run.optimizer, run.tokenizer, state, cfg.keep_checkpoints)


def finish(run: Run) -> AdaptResult:
    """Final evaluation and checkpoint, the plain HF model in ``OUT/model``, ``result.json``."""
    acc, state = run.accelerator, run.state
    # An early stop has just evaluated this step; a finished run evaluates once more.
    after = run.last_eval[1] if run.last_eval and run.last_eval[0] == state.step else validate(run)
    save_checkpoint(run.out, acc, run.model, run.optimizer, run.tokenizer, state, run.cfg.keep_checkpoints)
    rows = [r for r in read_metrics(run.out) if r["kind"] == "eval"]
    before = {r["split"]: r for r in rows if r["step"] == 0}
    best_step = run.mit.best_step(state)  # early-stop: OUT/model holds the best step's weights
    if best_step is not None:
        after = {r["split"]: r for r in rows if r["step"] == best_step}
    evals = {split: {"before": before.get(split), "after": after.get(split)} for split in after}
    final_model = run.mit.final_model(run)  # best weights back, LoRA merged; None: the model as trained
    result = AdaptResult(str(run.out), state.step, state.tokens, round(state.seconds, 3),
                         int(run.blocks.shape[1]), evals, run.mit.info, best_step,
                         state.step if state.step < run.total_steps and run.mit.should_stop(state) else None)
    result.model_source = model_source(acc.unwrap_model(run.model))
    # A collective under FSDP/DeepSpeed: every process calls it.
    state_dict = acc.get_state_dict(run.model) if final_model is None else None
    if acc.is_main_process:
        tmp, final = run.out / "model.tmp", run.out / "model"
        shutil.rmtree(tmp, ignore_errors=True)
        model = acc.unwrap_model(run.model) if final_model is None else final_model
        model.save_pretrained(tmp, state_dict=state_dict)
        run.tokenizer.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        write_json(run.out / "result.json", result.to_dict())
    acc.wait_for_everyone()
    return result
