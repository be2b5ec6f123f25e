"""odyssey adapt vs HF ``Trainer``: the default study's recipe on real text, shipped base model.

Workload: the default study's recipe (:class:`odyssey.study.config.Recipe`) on a domain's
train split of the default world (``--domain``, default ``wiki-arts``), capped as the
study caps it (65,536 tokens: 32 steps of 8 blocks of 256 tokens with the default
base), at the study's reference learning rate (2e-4), cosine schedule with 10% warmup,
AdamW (0.9, 0.95), gradient clipping at 1.0, fp32.

Both sides do the same computation: the same weights, the same packed blocks in the same
order (odyssey's packing and data order; ``Trainer`` reads them as a sequential dataset),
the same optimizer (torch AdamW, same settings) and the same learning rate at every step
(``Trainer`` is given a ``LambdaLR`` of odyssey's ``lr_at``); the script prints both final
losses. The study's mid-run evaluations and checkpoints are left out on both sides (the
data is the split's JSONL file, so no valid split; ``eval_every=0``, ``save_every=0``).
Two timings, medians of ``--repeats`` after one warm-up, alternating the sides:

- whole process: a fresh ``odyssey adapt`` (load, tokenize and pack, train, save the
  model and its checkpoint) vs a fresh ``Trainer`` script (this file with
  ``--trainer-child``: load, tokenize and pack, train, save the model), each with an
  empty block cache;
- in process: ``odyssey.adapt.loop.fit`` on a run already set up vs ``Trainer.train()``
  on a ``Trainer`` already built;

and each side's achieved GFLOP/s (3x the forward FLOPs, see ``bench_common``) as a
fraction of the machine's fp32 matmul rate, measured in the same run.

The README's figures, on a quiet machine (about 6 minutes on 2 cores):

    python benchmarks/train_vs_trainer.py --repeats 3 --json train-speed.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

os.environ.update(bc.OFFLINE_ENV)


@dataclass
class Plan:
    """Everything both sides train with; the Trainer child reads it from JSON."""

    model: str
    data: str  # JSONL of the domain's train split
    block_size: int
    batch_size: int
    max_tokens: int
    epochs: float
    steps: int
    warmup_steps: int
    lr: float
    schedule: str
    min_lr_ratio: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    max_grad_norm: float | None
    seed: int


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", default="wiki-arts", help="domain of the world whose train split trains")
    ap.add_argument("--train-tokens", type=int, help="training-token cap (default: the study's, 65,536)")
    ap.add_argument("--batch-size", type=int, help="blocks per step (default: the study's, 8)")
    ap.add_argument("--block-size", type=int, help="tokens per block (default: min(model context, 512))")
    ap.add_argument("--world", help="world directory (default: the default world)")
    ap.add_argument("--model", help="model directory (default: the shipped default base)")
    bc.add_common_args(ap, tolerance=1e-4, tolerance_help="largest relative difference of the final losses accepted (same computation)")
    ap.add_argument("--trainer-child", metavar="PLAN_JSON", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# --- the plan: the study's recipe on this data ------------------------------------------

def make_plan(args, model_dir: Path, data: Path, tokenizer, context: int) -> Plan:
    """The study's recipe, with the steps and warmup odyssey's ``setup`` derives (checked
    against the run itself in :func:`odyssey_in_process`)."""
    from odyssey.adapt.schedule import steps_for
    from odyssey.blocks import pack_documents
    from odyssey.corpora.store import load_documents
    from odyssey.study.config import Recipe

    recipe = Recipe()
    block = args.block_size or min(context, 512)
    batch = args.batch_size or recipe.train.batch_size
    cap = args.train_tokens or recipe.train.max_tokens
    n_blocks = len(pack_documents(load_documents(str(data)), tokenizer, block))
    steps = min(steps_for(recipe.train.epochs, n_blocks, batch), steps_for(1.0, math.ceil(cap / block), batch))
    optim, schedule = recipe.optim.at(recipe.lrs[0]), recipe.schedule
    warmup = schedule.warmup_steps if schedule.warmup_steps is not None else round(schedule.warmup_ratio * steps)
    return Plan(model=str(model_dir), data=str(data), block_size=block, batch_size=batch, max_tokens=cap,
                epochs=recipe.train.epochs, steps=steps, warmup_steps=warmup, lr=optim.lr, schedule=schedule.kind,
                min_lr_ratio=schedule.min_lr_ratio, beta1=optim.beta1, beta2=optim.beta2, eps=optim.eps,
                weight_decay=optim.weight_decay, max_grad_norm=optim.max_grad_norm, seed=recipe.train.seed)


def adapt_config(plan: Plan, out: Path):
    """The AdaptConfig of the study's recipe on ``plan``'s data (no mid-run evaluation or checkpoint)."""
    from odyssey.adapt.config import AdaptConfig, OptimConfig, TrainConfig
    from odyssey.study.config import Recipe

    return AdaptConfig(
        model=plan.model, data=plan.data, out=str(out), eval_every=0, save_every=0,
        train=TrainConfig(block_size=plan.block_size, batch_size=plan.batch_size, epochs=plan.epochs,
                          max_tokens=plan.max_tokens, precision="no", device="cpu", seed=plan.seed),
        optim=OptimConfig(lr=plan.lr, beta1=plan.beta1, beta2=plan.beta2, eps=plan.eps,
                          weight_decay=plan.weight_decay, max_grad_norm=plan.max_grad_norm),
        schedule=Recipe().schedule)


# --- HF Trainer ---------------------------------------------------------------------------

def ordered_blocks(plan: Plan, tokenizer, cache_dir: Path | None = None):
    """The blocks of every step in odyssey's order (``block_indices``, sorted within a step)."""
    import numpy as np

    from odyssey.adapt.schedule import block_indices
    from odyssey.blocks import pack_documents
    from odyssey.corpora.store import load_documents

    blocks = pack_documents(load_documents(plan.data), tokenizer, plan.block_size, cache_dir=cache_dir)
    rows = [np.sort(block_indices(s, 0, rank=0, world_size=1, micro_batch=plan.batch_size, grad_accum=1,
                                  n_blocks=len(blocks), seed=plan.seed)) for s in range(plan.steps)]
    return np.asarray(blocks[np.concatenate(rows)], dtype=np.int64)


def build_trainer(model, blocks, plan: Plan, out: Path):
    """A Trainer that runs ``plan``'s steps on ``blocks`` in order, with torch AdamW and
    odyssey's learning rate at every step."""
    import torch
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from odyssey.adapt.schedule import lr_at

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return len(blocks)

        def __getitem__(self, i):
            ids = torch.from_numpy(blocks[i])
            return {"input_ids": ids, "labels": ids}

    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, betas=(plan.beta1, plan.beta2), eps=plan.eps,
                                  weight_decay=plan.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(
        step, base_lr=plan.lr, total_steps=plan.steps, warmup_steps=plan.warmup_steps, kind=plan.schedule,
        min_lr_ratio=plan.min_lr_ratio) / plan.lr)
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=plan.batch_size, max_steps=plan.steps,
        max_grad_norm=plan.max_grad_norm or 0.0, logging_steps=1, save_strategy="no", report_to=[],
        dataloader_num_workers=0, use_cpu=True, disable_tqdm=True, seed=plan.seed,
        train_sampling_strategy="sequential")
    trainer = Trainer(model=model, args=targs, train_dataset=Blocks(), optimizers=(optimizer, scheduler))
    trainer.remove_callback(PrinterCallback)  # the log lines on stdout
    return trainer


def final_trainer_loss(trainer) -> float:
    return [row["loss"] for row in trainer.state.log_history if "loss" in row][-1]


def load_for_trainer(plan: Plan, cache_dir: Path | None = None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(plan.model)
    model = AutoModelForCausalLM.from_pretrained(plan.model, dtype=torch.float32)
    return model, ordered_blocks(plan, tokenizer, cache_dir)


def trainer_child(plan_file: str, out: str) -> None:
    """The whole-process Trainer script: load, pack, train, save the model."""
    plan = Plan(**json.loads(Path(plan_file).read_text()))
    model, blocks = load_for_trainer(plan, Path(out) / "block-cache")
    trainer = build_trainer(model, blocks, plan, Path(out))
    trainer.train()
    trainer.save_model(str(Path(out) / "model"))
    import torch

    print(json.dumps({"final_loss": final_trainer_loss(trainer), "threads": torch.get_num_threads()}))


# --- the two sides ----------------------------------------------------------------------

def in_process_sides(plan: Plan, work: Path) -> dict:
    """Each side sets up untimed (model loaded, blocks packed) and times its training call."""
    from odyssey.adapt.loop import fit, setup
    from odyssey.adapt.tracking import read_metrics

    def odyssey():
        out = work / "odyssey-run"
        shutil.rmtree(out, ignore_errors=True)
        run = setup(adapt_config(plan, out))
        if (run.total_steps, run.warmup_steps) != (plan.steps, plan.warmup_steps):
            sys.exit(f"odyssey plans {run.total_steps} steps ({run.warmup_steps} warmup), the benchmark "
                     f"{plan.steps} ({plan.warmup_steps})")
        t = time.perf_counter()
        fit(run, progress=False)
        seconds = time.perf_counter() - t
        run.log.close()
        return seconds, [r["loss"] for r in read_metrics(out) if r["kind"] == "train"][-1]

    def trainer():
        model, blocks = load_for_trainer(plan)
        tr = build_trainer(model, blocks, plan, work / "trainer-run")
        t = time.perf_counter()
        tr.train()
        return time.perf_counter() - t, final_trainer_loss(tr)

    return {"odyssey": odyssey, "Trainer": trainer}


def whole_process_sides(plan: Plan, args, work: Path) -> dict:
    """Fresh processes, each with an empty block cache; each returns (wall seconds, final loss)."""
    from odyssey.adapt.tracking import read_metrics
    from odyssey.config import save_config

    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(asdict(plan)))
    config_file = work / "adapt.yaml"
    save_config(adapt_config(plan, work / "odyssey-cli"), config_file)

    def fresh(name: str) -> tuple[Path, dict]:
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        env = bc.thread_env(args.threads)
        env["ODYSSEY_HOME"] = str(work / f"{name}-home")  # an empty block cache
        shutil.rmtree(env["ODYSSEY_HOME"], ignore_errors=True)
        return out, env

    def odyssey():
        out, env = fresh("odyssey-cli")
        seconds, _ = bc.run_process([bc.executable("odyssey"), "adapt", "--config", str(config_file), "--json"], env)
        return seconds, [r["loss"] for r in read_metrics(out) if r["kind"] == "train"][-1]

    def trainer():
        out, env = fresh("trainer-cli")
        argv = [sys.executable, str(Path(__file__).resolve()), "--trainer-child", str(plan_file), "--out", str(out)]
        seconds, stdout = bc.run_process(argv, env)
        child = json.loads(stdout.strip().splitlines()[-1])
        if child["threads"] != args.threads:
            sys.exit(f"the Trainer script ran on {child['threads']} torch threads, not {args.threads}")
        return seconds, child["final_loss"]

    return {"odyssey": odyssey, "Trainer": trainer}


def measure(sides: dict, args, flops: int, tokens: int, rate: float) -> tuple[dict, dict]:
    payloads, times = bc.interleaved(sides, args.repeats)
    losses = {**payloads, "relative_difference": abs(payloads["odyssey"] - payloads["Trainer"])
              / abs(payloads["Trainer"])}
    return {side: bc.speed(times[side], flops, rate, tokens) for side in sides}, losses


def print_report(r: dict) -> None:
    p = r["plan"]
    print(f"\n{r['domain']} train ({r['train_documents']} documents): {p['steps']} steps x {p['batch_size']} "
          f"blocks x {p['block_size']} tokens = {r['tokens']:,} tokens; lr {p['lr']:g} {p['schedule']}, "
          f"warmup {p['warmup_steps']}; work {r['gflop']:.0f} GFLOP")
    for key, title in (("whole_process", "whole process (odyssey adapt / a Trainer script, fresh processes)"),
                       ("in_process", "in process (fit / Trainer.train, model loaded and blocks packed)")):
        if key in r:
            loss = r[f"{key}_final_loss"]
            print(f"  final loss: odyssey {loss['odyssey']:.6f}, Trainer {loss['Trainer']:.6f} "
                  f"(relative difference {loss['relative_difference']:.1e})")
            bc.print_speeds(title, r[key], "Trainer")


def prepare(args, work: Path) -> tuple[Plan, dict]:
    from odyssey.io import write_jsonl
    from odyssey.models import load_model, load_tokenizer, max_context
    from odyssey.models.presets import default_base_path

    world = Path(args.world)
    model_dir = Path(args.model) if args.model else default_base_path()
    docs = bc.read_split(world, args.domain, "train")
    data = work / f"{args.domain}-train.jsonl"
    write_jsonl(data, docs)
    tokenizer, model = load_tokenizer(str(model_dir)), load_model(str(model_dir))
    plan = make_plan(args, model_dir, data, tokenizer, max_context(model))
    return plan, {"world": str(world), "model": str(model_dir), "train_documents": len(docs),
                  "shape": bc.model_shape(model)}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.trainer_child:
        trainer_child(args.trainer_child, args.out)
        return 0
    import torch
    import transformers

    from odyssey.corpora.world import default_world_dir

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    work = Path(tempfile.mkdtemp(prefix="odyssey-train-bench-"))
    args.world = args.world or str(default_world_dir())  # before ODYSSEY_HOME moves
    os.environ["ODYSSEY_HOME"] = str(work / "home")  # the block cache of the in-process runs
    plan, info = prepare(args, work)
    shape = info.pop("shape")
    rates = bc.matmul_rates(bc.matmul_shapes(shape, plan.batch_size * plan.block_size), args.threads,
                              args.matmul_repeats)
    tokens = plan.steps * plan.batch_size * plan.block_size
    flops = bc.training_flops(shape, plan.steps, plan.batch_size, plan.block_size)
    report = {"benchmark": "train_vs_trainer", "argv": sys.argv[1:], **info, "domain": args.domain,
              "transformers": transformers.__version__, "machine": bc.machine_info(args.threads), "matmul": rates,
              "model_shape": vars(shape), "plan": asdict(plan), "tokens": tokens, "gflop": flops / 1e9}
    print(f"model {info['model']}: {shape}\ntorch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    bc.print_rate(rates)
    if not args.in_process_only:
        report["whole_process"], report["whole_process_final_loss"] = measure(
            whole_process_sides(plan, args, work), args, flops, tokens, rates["rate_gflops"])
    report["in_process"], report["in_process_final_loss"] = measure(
        in_process_sides(plan, work), args, flops, tokens, rates["rate_gflops"])
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["machine"]["threads_at_end"] = torch.get_num_threads()
    print_report(report)
    bad = [key for key in ("whole_process_final_loss", "in_process_final_loss")
           if key in report and not report[key]["relative_difference"] <= args.tolerance]
    report["agree"] = not bad
    bc.write_report(args.json, report)
    shutil.rmtree(work, ignore_errors=True)
    if bad:
        print(f"DISAGREEMENT beyond {args.tolerance} relative: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
