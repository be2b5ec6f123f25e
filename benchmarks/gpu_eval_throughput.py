"""Evaluation throughput on one GPU: odyssey evaluate vs lm-evaluation-harness, and vs training.

The same GPT-2-124M-shaped random model and text as ``gpu_train_vs_trainer.py`` (built
the same way, offline), in bf16 on the GPU. Measured, median of ``--repeats`` after one
warm-up each, in tokens scored per second:

- ``odyssey``: :func:`odyssey.evaluate.evaluate_documents` (tokenization included) with
  disjoint windows of 1024 (stride 1024, lm-eval's only rolling setting) and with its
  default stride 512 (each token after the first window gets >= 512 tokens of context:
  twice the forward work per scored token);
- ``lm-eval``: ``HFLM.loglikelihood_rolling`` on the same documents (``dtype=bfloat16``,
  same batch size), when lm-eval is installed; their bits per byte are compared;
- ``forward``: a compiled bf16 forward pass of the model on full 16 x 1024 batches,
  logits and loss included: the ceiling for any evaluator;
- training: read from ``--train-json`` (the output of ``gpu_train_vs_trainer.py``), for
  the ratio evaluation / training tokens/s (goal: >= 3x).

    python benchmarks/gpu_eval_throughput.py --train-json train.json --json eval.json
    python benchmarks/gpu_eval_throughput.py --smoke      # tiny model on the CPU, to check it runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval shows progress bars even with disable_tqdm
sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=400_000, help="about this many tokens of text")
    ap.add_argument("--batch", type=int, default=16, help="full-length windows per forward pass (both tools)")
    ap.add_argument("--block", type=int, default=1024, help="window length (the model's context)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--data", default="synthetic", help="'synthetic', or a corpus directory / JSONL file")
    ap.add_argument("--skip-lm-eval", action="store_true")
    ap.add_argument("--train-json", help="gpu_train_vs_trainer.py --json output: training tokens/s")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--smoke", action="store_true", help="tiny model and text, on the CPU if there is no GPU")
    args = ap.parse_args(argv)
    if args.smoke:
        args.layers, args.hidden, args.heads, args.vocab = 2, 64, 4, 4096
        args.tokens, args.batch, args.block, args.repeats = 6000, 4, 128, 1
    return args


def timed(fn, repeats: int, cuda: bool):
    """(last result, median seconds) of ``fn()`` after one untimed warm-up call."""
    import torch

    out = fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def forward_ceiling(model, args, cuda: bool, vocab: int) -> float:
    """Tokens/s of a compiled bf16 forward (logits and loss) on full batches of random ids."""
    import torch

    device = "cuda" if cuda else "cpu"
    fwd = torch.compile(model) if cuda else model
    ids = torch.randint(0, vocab, (args.batch, args.block), device=device)

    def step():
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
            return fwd(input_ids=ids, labels=ids).loss

    timed(step, 1, cuda)  # compilation
    _, sec = timed(step, max(5, args.repeats), cuda)
    return args.batch * args.block / sec


def lm_eval_rolling(model_dir: Path, docs: list[dict], args, cuda: bool):
    """(sum of NLLs, seconds) of lm-eval's rolling loglikelihoods, or None without lm-eval."""
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError as e:
        print(f"lm-eval not available ({e}); skipping it", flush=True)
        return None
    hflm = HFLM(pretrained=str(model_dir), dtype="bfloat16" if cuda else "float32", batch_size=args.batch,
                device="cuda" if cuda else "cpu", max_length=args.block)
    requests = [Instance("loglikelihood_rolling", d, (d["text"],), i) for i, d in enumerate(docs)]
    lls, sec = timed(lambda: hflm.loglikelihood_rolling(requests, disable_tqdm=True), args.repeats, cuda)
    return -sum(lls), sec


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from gpu_train_vs_trainer import build

    from odyssey.evaluate import EvalConfig, evaluate_documents
    from odyssey.models import load_model, load_tokenizer

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else "CPU"
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="odyssey-eval-bench-") as tmp:
        work = Path(tmp)
        batch, block = args.batch, args.block
        setup = build(work, args, tokens=args.tokens)
        model_dir = work / "model"
        docs = [json.loads(line) for line in (work / "docs.jsonl").open()]
        tok = load_tokenizer(model_dir)
        model = load_model(model_dir, dtype="bfloat16" if cuda else "float32", device="cuda" if cuda else "cpu")
        n_bytes = sum(len(d["text"].encode("utf-8")) for d in docs)
        print(f"{device}; torch {torch.__version__}; {setup['params'] / 1e6:.1f}M parameters, {len(docs)} documents, "
              f"{n_bytes:,} bytes; window {block}, batch {batch}", flush=True)
        dtype = "bfloat16" if cuda else "float32"
        for name, stride in ((f"odyssey (stride {block})", block), (f"odyssey (stride {block // 2})", block // 2)):
            cfg = EvalConfig(context_length=block, stride=stride, batch_size=batch, dtype=dtype, progress=False)
            res, sec = timed(lambda cfg=cfg: evaluate_documents(model, tok, docs, cfg), args.repeats, cuda)
            rows[name] = {"tokens": res.tokens, "seconds": sec, "tokens_per_s": res.tokens / sec,
                          "bits_per_byte": res.bits_per_byte, "nll_sum": res.nll_sum}
            print(f"  {name}: {res.tokens / sec:,.0f} tokens/s", flush=True)
        od = rows[f"odyssey (stride {block})"]
        if not args.skip_lm_eval:
            del model
            if cuda:
                torch.cuda.empty_cache()
            got = lm_eval_rolling(model_dir, docs, args, cuda)
            if got is not None:
                nll, sec = got
                rows["lm-eval loglikelihood_rolling"] = {
                    "tokens": od["tokens"], "seconds": sec, "tokens_per_s": od["tokens"] / sec,
                    "bits_per_byte": nll / math.log(2) / n_bytes,
                    "bpb_rel_diff_vs_odyssey": abs(nll / math.log(2) / n_bytes - od["bits_per_byte"]) / od["bits_per_byte"]}
                print(f"  lm-eval: {od['tokens'] / sec:,.0f} tokens/s", flush=True)
            model = load_model(model_dir, dtype="float32", device="cuda" if cuda else "cpu")
        else:
            model = model.float()
        rows["compiled bf16 forward (ceiling)"] = {"tokens_per_s": forward_ceiling(model, args, cuda, args.vocab)}
    train_tps = None
    if args.train_json and Path(args.train_json).is_file():
        train = json.loads(Path(args.train_json).read_text())["results"]
        train_tps = {k: v["tokens_per_s"] for k, v in train.items() if "tokens_per_s" in v}
    lm = rows.get("lm-eval loglikelihood_rolling", {}).get("tokens_per_s")
    print(f"\n{'evaluator':34} {'tokens/s':>11} {'vs lm-eval':>10} {'vs odyssey train':>16}")
    for name, r in rows.items():
        vs_lm = f"{r['tokens_per_s'] / lm:.2f}x" if lm else "n/a"
        vs_train = (f"{r['tokens_per_s'] / train_tps['odyssey']:.2f}x" if train_tps and "odyssey" in train_tps
                    else "n/a")
        print(f"{name:34} {r['tokens_per_s']:>11,.0f} {vs_lm:>10} {vs_train:>16}")
    if "lm-eval loglikelihood_rolling" in rows:
        print(f"bits per byte: odyssey {od['bits_per_byte']:.6f}, lm-eval "
              f"{rows['lm-eval loglikelihood_rolling']['bits_per_byte']:.6f} (relative difference "
              f"{rows['lm-eval loglikelihood_rolling']['bpb_rel_diff_vs_odyssey']:.2e}, {dtype})")
    if train_tps:
        print("training tokens/s (from --train-json): " + ", ".join(f"{k} {v:,.0f}" for k, v in train_tps.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": device, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, **setup,
            "batch": batch, "block": block, "bytes": n_bytes, "rows": rows, "train_tokens_per_s": train_tps},
            indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
