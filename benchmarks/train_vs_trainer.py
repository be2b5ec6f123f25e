"""Training throughput and peak memory: odyssey's adapt loop against HF `Trainer`.

Both train the same randomly initialized model (the default base's shape unless
--preset/--model says otherwise) on the same packed blocks, with the same batch,
precision, optimizer (AdamW) and learning rate, for the same number of steps. Each
run is a fresh subprocess, so peak memory (max RSS on CPU, max allocated on CUDA)
is its own. Per-step times are taken after `--warmup` steps; medians are reported.

    python benchmarks/train_vs_trainer.py --steps 30 --repeats 3

Prints tokens/s for both, the ratio odyssey / Trainer, and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_model_dir(out: Path, preset: str, vocab: int) -> Path:
    from odyssey.models.presets import build_model, llama_config
    from odyssey.models.tokenizer_train import train_bpe_tokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import make_documents

    docs = make_documents(400, seed=0, min_words=200, max_words=400)
    tok = train_bpe_tokenizer(docs, vocab_size=vocab, min_frequency=1)
    build_model(llama_config(preset, len(tok), eos_token_id=tok.eos_token_id), seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    with open(out / "docs.jsonl", "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"text": d, "id": str(i)}) + "\n")
    return out


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_odyssey(model_dir: Path, args) -> list[float]:
    import odyssey.adapt.loop as loop
    from odyssey.adapt.config import AdaptConfig
    from odyssey.config import resolve

    times: list[float] = []
    real_step = loop._train_step

    def timed(run, step):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = real_step(run, step)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        return out

    loop._train_step = timed
    with tempfile.TemporaryDirectory() as tmp:
        cfg = resolve(AdaptConfig, overrides=[
            f"model={model_dir}", f"data={model_dir / 'docs.jsonl'}", f"out={tmp}/run",
            f"train.block_size={args.block}", f"train.batch_size={args.batch}", f"train.max_steps={args.steps}",
            f"train.precision={args.precision}", "optim.lr=1e-4", "schedule.kind=constant",
            "schedule.warmup_steps=0", "optim.weight_decay=0.0", "optim.max_grad_norm=1.0"])
        loop.adapt(cfg, progress=False)
    return times


def run_trainer(model_dir: Path, args) -> list[float]:
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from odyssey.blocks import pack_documents
    from odyssey.corpora.store import load_documents
    from odyssey.models import load_tokenizer

    tok = load_tokenizer(model_dir)
    blocks = np.asarray(pack_documents(load_documents(str(model_dir / "docs.jsonl")), tok, args.block))

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return len(blocks)

        def __getitem__(self, i):
            ids = torch.from_numpy(blocks[i].astype(np.int64))
            return {"input_ids": ids, "labels": ids}

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.batch, max_steps=args.steps, learning_rate=1e-4,
            lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
            adam_beta2=0.95, logging_steps=10**6, save_strategy="no", report_to=[], dataloader_num_workers=0,
            bf16=args.precision == "bf16", use_cpu=not torch.cuda.is_available(), disable_tqdm=True, seed=0)
        Trainer(model=model, args=targs, train_dataset=Blocks(), callbacks=[Timer()]).train()
    return times


def child(args) -> None:
    model_dir = Path(args.model_dir)
    times = (run_odyssey if args.child == "odyssey" else run_trainer)(model_dir, args)
    steady = times[args.warmup:] or times
    print(json.dumps({"step_seconds": statistics.median(steady), "peak_mb": peak_memory_mb()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="no", choices=["no", "bf16"])
    p.add_argument("--child", choices=["odyssey", "trainer"], help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model_dir(Path(tmp), args.preset, args.vocab)
        results: dict[str, list[dict]] = {"odyssey": [], "trainer": []}
        for r in range(args.repeats):
            for name in ("odyssey", "trainer") if r % 2 == 0 else ("trainer", "odyssey"):
                cmd = [sys.executable, __file__, "--child", name, "--model-dir", str(model_dir)] + [
                    a for k in ("preset", "vocab", "block", "batch", "steps", "warmup", "precision")
                    for a in (f"--{k}", str(getattr(args, k)))]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                results[name].append(json.loads(out.strip().splitlines()[-1]))
    tokens = args.batch * args.block
    row = {}
    for name, runs in results.items():
        step = statistics.median(r["step_seconds"] for r in runs)
        row[name] = (tokens / step, statistics.median(r["peak_mb"] for r in runs))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"{args.preset} preset, batch {args.batch}x{args.block}, precision {args.precision}, {device}, "
          f"{args.steps} steps x {args.repeats} repeats (medians)")
    for name, (tps, mem) in row.items():
        print(f"  {name:8s} {tps:10.0f} tokens/s   peak memory {mem:8.0f} MB")
    print(f"  ratio odyssey/Trainer: {row['odyssey'][0] / row['trainer'][0]:.2f}x tokens/s, "
          f"{row['odyssey'][1] / row['trainer'][1]:.2f}x memory")


if __name__ == "__main__":
    main()
