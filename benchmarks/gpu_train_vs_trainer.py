"""Training throughput on one GPU: odyssey's adapt loop against HF `Trainer` (and a plain loop).

A GPT-2-124M-shaped model (12 layers, hidden 768, 12 heads, context 1024, vocabulary
50257, tied embeddings: 124.4M parameters), randomly initialized, trains on the same
packed blocks of text (pseudo-English documents generated offline, or ``--data`` a
corpus directory or JSONL file such as the default world's general corpus) with the same
batch (16 x 1024 tokens), bf16 autocast, SDPA attention, fused AdamW (lr 1e-4, clipping
at 1.0) in each of these contenders, each a fresh subprocess (its own CUDA context, so
its own peak memory):

- ``odyssey``: :func:`odyssey.adapt.loop.adapt` as it is (``train.precision=bf16``);
- ``odyssey-compile``: the same loop with the prepared model wrapped in
  ``torch.compile`` (what a ``train.compile`` option would do; the loop has none yet);
- ``trainer``: HF ``Trainer`` (``bf16=True``, ``optim="adamw_torch_fused"``), the
  baseline a user would pick;
- ``trainer-compile``: the same with ``torch_compile=True`` (not run by default);
- ``plain-compile``: a minimal PyTorch loop, compiled: the reference for what the GPU
  can do with these settings.

Each contender's step times are measured with CUDA synchronization around each
optimizer step; the first ``--warmup`` steps (compilation, allocator) are dropped and the
median of the rest is reported as tokens/s. MFU = tokens/s x FLOPs per token / the
card's dense bf16 peak, with FLOPs per token = ``6 N + 12 L d T`` (N parameters, tied
embeddings counted once; L layers, d hidden size, T = block length: the matrix products
of the forward and backward passes, attention scores included; the PaLM/nanoGPT
convention). Peak: H100/H200 SXM 989 TFLOP/s, by device name (``--peak-tflops``
overrides).

    python benchmarks/gpu_train_vs_trainer.py --json train.json
    python benchmarks/gpu_train_vs_trainer.py --smoke        # tiny model on the CPU, to check it runs
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

REPO = Path(__file__).resolve().parents[1]
CONTENDERS = ("odyssey", "odyssey-compile", "trainer", "trainer-compile", "plain", "plain-compile")
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched against torch.cuda.get_device_name().
PEAKS = [("H200", 989.0), ("GH200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
         ("H800", 989.0), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0),
         ("L4", 121.0), ("A10G", 70.0), ("RTX 4090", 165.0)]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS,
                    default=["trainer", "odyssey", "plain-compile", "odyssey-compile"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20, help="timed steps after the warm-up")
    ap.add_argument("--warmup", type=int, default=5, help="untimed first steps (compilation, allocator)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--data", default="synthetic", help="'synthetic', or a corpus directory / JSONL file of text")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (default: by name)")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per contender")
    ap.add_argument("--smoke", action="store_true", help="tiny model, few steps, on the CPU if there is no GPU")
    ap.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.smoke:
        args.layers, args.hidden, args.heads, args.vocab = 2, 64, 4, 4096
        args.batch, args.block, args.steps, args.warmup = 2, 64, 3, 1
        if args.contenders == ap.get_default("contenders"):
            args.contenders = ["odyssey", "trainer", "plain"]
    return args


# --- setup (parent) ------------------------------------------------------------------

def documents(data: str, tokens: int) -> list[dict]:
    """About ``tokens`` tokens' worth of text (4 bytes a token) as ``{"text", "id"}`` rows."""
    if data != "synthetic":
        from odyssey.corpora.store import load_documents

        docs, total = [], 0
        for d in load_documents(data, default_split="train"):
            docs.append({"text": d["text"], "id": d.get("id", str(len(docs)))})
            total += len(d["text"]) // 4
            if total >= tokens:
                break
        return docs
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import make_documents

    n = max(50, tokens // 300)  # ~300 words of one token or so each
    return [{"text": t, "id": str(i)} for i, t in enumerate(make_documents(n, seed=0, min_words=200, max_words=400))]


def build(work: Path, args, tokens: int | None = None) -> dict:
    """The random GPT-2-shaped model (safetensors), a BPE trained on the text, the text
    (``tokens`` of it; default: what the training steps consume, plus 10%)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from odyssey.models.tokenizer_train import train_bpe_tokenizer

    needed = tokens or args.batch * args.block * (args.steps + args.warmup) * 11 // 10
    docs = documents(args.data, needed)
    # A BPE of at most 8192 tokens trained here (offline); the model keeps GPT-2's 50257-row
    # embedding and output head, so its FLOPs and memory are GPT-2's whatever ids occur.
    tok = train_bpe_tokenizer((d["text"] for d in docs), vocab_size=min(8192, args.vocab), min_frequency=2,
                              model_max_length=args.block)
    cfg = GPT2Config(vocab_size=args.vocab, n_positions=args.block, n_embd=args.hidden, n_layer=args.layers,
                     n_head=args.heads, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                     tie_word_embeddings=True)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg)
    model.save_pretrained(work / "model")
    tok.save_pretrained(work / "model")
    with open(work / "docs.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    return {"params": n_params, "documents": len(docs),
            "flops_per_token": 6 * n_params + 12 * args.layers * args.hidden * args.block}


# --- contenders (children) -------------------------------------------------------------

def cuda_sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blocks(work: Path, block: int):
    import numpy as np

    from odyssey.blocks import pack_documents
    from odyssey.corpora.store import load_documents
    from odyssey.models import load_tokenizer

    tok = load_tokenizer(work / "model")
    return np.asarray(pack_documents(load_documents(str(work / "docs.jsonl")), tok, block))


def run_odyssey(work: Path, args, compile_model: bool) -> tuple[list[float], dict]:
    import torch

    import odyssey.adapt.loop as loop
    from odyssey.adapt.config import AdaptConfig
    from odyssey.config import resolve

    times: list[float] = []
    info: dict = {}
    real_step, real_setup = loop._train_step, loop.setup

    def timed(run, step):
        cuda_sync()
        t = time.perf_counter()
        out = real_step(run, step)
        cuda_sync()
        times.append(time.perf_counter() - t)
        return out

    def setup(cfg, accelerator=None):
        run = real_setup(cfg, accelerator)
        model = run.accelerator.unwrap_model(run.model)
        info["attn_implementation"] = model.config._attn_implementation
        info["optimizer_fused"] = bool(run.optimizer.param_groups[0].get("fused"))
        if compile_model:  # what a train.compile option would do after accelerator.prepare
            run.model = torch.compile(run.model)
        return run

    loop._train_step, loop.setup = timed, setup
    cuda = torch.cuda.is_available()
    out = Path(tempfile.mkdtemp(prefix="odyssey-run-", dir=work))
    cfg = resolve(AdaptConfig, overrides=[
        f"model={work / 'model'}", f"data={work / 'docs.jsonl'}", f"out={out}",
        f"train.block_size={args.block}", f"train.batch_size={args.batch}",
        f"train.max_steps={args.steps + args.warmup}", f"train.precision={'bf16' if cuda else 'no'}",
        f"train.device={'cuda' if cuda else 'cpu'}", "optim.lr=1e-4", "optim.weight_decay=0.1",
        "optim.max_grad_norm=1.0", "schedule.kind=constant", "schedule.warmup_steps=0", "log_every=1000"])
    loop.adapt(cfg, progress=False)
    return times, info


def run_trainer(work: Path, args, compile_model: bool) -> tuple[list[float], dict]:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    data = blocks(work, args.block)

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            ids = torch.from_numpy(data[i].astype(np.int64))
            return {"input_ids": ids, "labels": ids}

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            cuda_sync()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            cuda_sync()
            times.append(time.perf_counter() - self.t)

    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.float32, attn_implementation="sdpa")
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.batch, max_steps=args.steps + args.warmup,
            learning_rate=1e-4, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.1,
            max_grad_norm=1.0, adam_beta2=0.95, logging_steps=10**6, save_strategy="no", report_to=[],
            dataloader_num_workers=2 if cuda else 0, bf16=cuda, use_cpu=not cuda, disable_tqdm=True, seed=0,
            optim="adamw_torch_fused" if cuda else "adamw_torch", torch_compile=compile_model)
        Trainer(model=model, args=targs, train_dataset=Blocks(), callbacks=[Timer()]).train()
    return times, {"attn_implementation": model.config._attn_implementation, "optimizer_fused": cuda}


def run_plain(work: Path, args, compile_model: bool) -> tuple[list[float], dict]:
    """A minimal loop: the same model, data order, optimizer and clipping, nothing else."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    data = blocks(work, args.block)
    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.float32,
                                                 attn_implementation="sdpa").to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=cuda)
    step_fn = torch.compile(model) if compile_model else model
    rng = np.random.default_rng(0)
    times: list[float] = []
    for _ in range(args.steps + args.warmup):
        idx = np.sort(rng.choice(len(data), args.batch, replace=len(data) < args.batch))
        cuda_sync()
        t = time.perf_counter()
        batch = torch.from_numpy(data[idx].astype(np.int64)).to(device, non_blocking=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
            loss = step_fn(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        cuda_sync()
        times.append(time.perf_counter() - t)
    return times, {"attn_implementation": model.config._attn_implementation, "optimizer_fused": cuda}


def child(args) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 parts (optimizer) as any user would run them
    work = Path(args.work)
    name = args.child
    fn = {"odyssey": run_odyssey, "trainer": run_trainer, "plain": run_plain}[name.removesuffix("-compile")]
    times, info = fn(work, args, name.endswith("-compile"))
    steady = times[args.warmup:] or times
    print(json.dumps({"step_seconds": statistics.median(steady), "steps_timed": len(steady),
                      "peak_mb": peak_memory_mb(),
                      "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if torch.cuda.is_available() else None,
                      **info}))


# --- report (parent) -----------------------------------------------------------------------

def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((tf for key, tf in PEAKS if key.lower() in name.lower()), None)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    import torch
    import transformers

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    peak = peak_tflops(device, args.peak_tflops) if torch.cuda.is_available() else args.peak_tflops
    results: dict[str, dict] = {}

    def save() -> None:  # after each contender, so that a run cut short keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps({
                "device": device, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                "transformers": transformers.__version__, "peak_tflops": peak, **setup,
                "batch": args.batch, "block": args.block, "steps": args.steps, "warmup": args.warmup,
                "layers": args.layers, "hidden": args.hidden, "vocab": args.vocab, "data": args.data,
                "results": results}, indent=1))

    with tempfile.TemporaryDirectory(prefix="odyssey-gpu-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        setup = build(work, args)
        print(f"{device}; torch {torch.__version__}, transformers {transformers.__version__}; "
              f"GPT-2 shape {args.layers} layers x {args.hidden}, vocab {args.vocab}: {setup['params'] / 1e6:.1f}M "
              f"parameters; batch {args.batch} x {args.block}; {setup['documents']} documents; "
              f"setup {time.perf_counter() - t0:.0f} s", flush=True)
        passthrough = [a for k in ("batch", "block", "steps", "warmup", "layers", "hidden", "heads", "vocab")
                       for a in (f"--{k}", str(getattr(args, k)))]
        for name in args.contenders:
            t = time.perf_counter()
            cmd = [sys.executable, __file__, "--child", name, "--work", str(work), *passthrough]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                results[name] = {"error": f"timed out after {args.timeout} s"}
                print(f"  {name}: timed out", flush=True)
                save()
                continue
            if proc.returncode != 0:
                results[name] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
                print(f"  {name}: FAILED\n{proc.stderr[-3000:]}", flush=True)
                save()
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["tokens_per_s"] = args.batch * args.block / r["step_seconds"]
            r["tflops"] = r["tokens_per_s"] * setup["flops_per_token"] / 1e12
            r["mfu"] = r["tflops"] / peak if peak else None
            r["wall_s"] = time.perf_counter() - t
            results[name] = r
            save()
            print(f"  {name}: {r['tokens_per_s']:,.0f} tokens/s ({r['wall_s']:.0f} s)", flush=True)
    base = results.get("trainer", {}).get("tokens_per_s")
    print(f"\n{'contender':16} {'tokens/s':>10} {'MFU':>6} {'TFLOP/s':>8} {'peak GB':>8} {'vs Trainer':>10}  attention")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:16} {'error: ' + r['error'][:70]}")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else "n/a"
        print(f"{name:16} {r['tokens_per_s']:>10,.0f} {mfu:>6} {r['tflops']:8.1f} {r['peak_mb'] / 1024:8.1f} "
              f"{ratio:>10}  {r.get('attn_implementation')}")
    print(f"MFU: FLOPs/token = 6N + 12*L*d*T = {setup['flops_per_token'] / 1e6:.0f}M; peak {peak} TFLOP/s "
          f"(dense bf16, {device})")
    save()
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
