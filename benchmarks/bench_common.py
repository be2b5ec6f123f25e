"""What the speed benchmarks share: the FLOP counter, the machine's measured fp32 matmul
rate, interleaved timings, the default world's splits and the printed table.

FLOPs count the work a run actually does (a multiply-add is 2 FLOPs), padding excluded:

- forward, per position forwarded: ``2 x`` the decoder's matmul weights (every
  ``nn.Linear``/``Conv1D`` of ``model.get_decoder()``; embeddings are lookups), plus
  attention's ``QK^T`` and ``AV``, ``2 x 2 x keys x d_attn`` per layer, where a causal
  position ``t`` of a window attends to ``t + 1`` keys (torch's CPU flash attention
  skips the blocks above the diagonal, so the triangle is what is computed);
- the LM head, ``2 x d_model x vocab`` per position whose logits are computed;
- training: ``3 x`` the forward (the backward pass costs twice the forward).

The machine's rate is the fastest median of ``torch.matmul`` and numpy's ``@`` (odyssey's
evaluation runs the LM head on numpy's OpenBLAS where that is the faster BLAS) over square
1024 and 2048 products and the model's own shapes, at the benchmark's thread count.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Offline: HF datasets and hub lookups must not try the network.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "TRANSFORMERS_VERBOSITY": "error"}


# --- FLOPs ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelShape:
    """The sizes the FLOP count needs."""

    layers: int
    d_model: int
    d_attn: int  # query heads x head dim: the width of QK^T and AV
    vocab: int
    decoder_matmul_params: int  # weights of the decoder's matmuls (all layers)
    d_ff: int  # MLP width, for the matmul-rate shapes


def model_shape(model) -> ModelShape:
    """The :class:`ModelShape` of a loaded HF causal LM."""
    import torch
    from transformers.pytorch_utils import Conv1D

    cfg = model.config
    d_model = cfg.hidden_size
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or d_model // heads
    matmuls = [m for m in model.get_decoder().modules() if isinstance(m, torch.nn.Linear | Conv1D)]
    head = model.get_output_embeddings().weight
    return ModelShape(layers=cfg.num_hidden_layers, d_model=d_model, d_attn=heads * head_dim,
                      vocab=head.shape[0], decoder_matmul_params=sum(m.weight.numel() for m in matmuls),
                      d_ff=getattr(cfg, "intermediate_size", None) or 4 * d_model)


def forward_flops(shape: ModelShape, window_lengths: Sequence[int], head_positions: int) -> int:
    """FLOPs of forwarding windows of ``window_lengths`` tokens through the decoder (causal
    attention within each window) and of the LM head on ``head_positions`` positions."""
    positions = sum(window_lengths)
    causal_pairs = sum(n * (n + 1) // 2 for n in window_lengths)  # (query, key) pairs computed
    return (2 * shape.decoder_matmul_params * positions
            + 4 * shape.layers * shape.d_attn * causal_pairs
            + 2 * shape.d_model * shape.vocab * head_positions)


def training_flops(shape: ModelShape, steps: int, batch_size: int, block_size: int) -> int:
    """FLOPs of ``steps`` optimizer steps on ``batch_size`` blocks of ``block_size`` tokens:
    3x the forward, logits on every position (the causal-LM loss computes them all)."""
    blocks = steps * batch_size
    return 3 * forward_flops(shape, [block_size] * blocks, blocks * block_size)


# --- the machine's fp32 matmul rate -----------------------------------------------------

def matmul_shapes(shape: ModelShape, rows: int) -> dict[str, tuple[int, int, int]]:
    """(m, k, n) of square products and of the model's own matmuls on ``rows`` tokens."""
    d, f = shape.d_model, shape.d_ff
    return {"1024^3": (1024, 1024, 1024), "2048^3": (2048, 2048, 2048),
            f"{rows}x{d} @ {d}x{d} (attention)": (rows, d, d),
            f"{rows}x{d} @ {d}x{f} (MLP up)": (rows, d, f),
            f"{rows}x{f} @ {f}x{d} (MLP down)": (rows, f, d),
            f"{rows}x{d} @ {d}x{shape.vocab} (LM head)": (rows, d, shape.vocab)}


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocation, BLAS thread start
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_rates(shapes: dict[str, tuple[int, int, int]], threads: int, repeats: int = 5) -> dict:
    """Median GFLOP/s of ``torch.matmul`` and numpy ``@`` (limited to ``threads`` BLAS threads)
    per shape, and ``rate``: the fastest of them, the machine's fp32 matmul rate."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    per_shape: dict[str, dict[str, float]] = {}
    gen = torch.Generator().manual_seed(0)
    for label, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
        out = torch.empty(m, n)
        an, bn, outn = a.numpy(), b.numpy(), np.empty((m, n), dtype=np.float32)
        flops = 2 * m * k * n
        torch_s = median_seconds(lambda: torch.matmul(a, b, out=out), repeats)  # noqa: B023
        with threadpool_limits(limits=threads, user_api="blas"):
            numpy_s = median_seconds(lambda: np.matmul(an, bn, out=outn), repeats)  # noqa: B023
        per_shape[label] = {"torch": flops / torch_s / 1e9, "numpy": flops / numpy_s / 1e9}
    best = max(((v, f"{lib} {label}") for label, r in per_shape.items() for lib, v in r.items()))
    return {"gflops_per_shape": per_shape, "rate_gflops": best[0], "rate_from": best[1], "threads": threads}


def speed(seconds: list[float], flops: float, rate_gflops: float, tokens: int) -> dict:
    """Median seconds of ``seconds`` and what it means: tokens/s, GFLOP/s, fraction of the rate."""
    med = statistics.median(seconds)
    gflops = flops / med / 1e9
    return {"median_s": med, "times_s": seconds, "tokens_per_s": tokens / med, "gflops": gflops,
            "fraction_of_rate": gflops / rate_gflops}


# --- timing -----------------------------------------------------------------------------

def interleaved(sides: dict[str, Callable[[], tuple[float, object]]], repeats: int,
                warmup: int = 1) -> tuple[dict, dict[str, list[float]]]:
    """Run each side ``warmup`` times untimed, then ``repeats`` rounds alternating the order,
    so that a busy neighbour slows both sides alike. A side returns ``(seconds, payload)``
    (it times its own core, leaving its set-up out); returns the last payloads and the times."""
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    payloads, times = {}, {name: [] for name in sides}
    for r in range(repeats):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            seconds, payloads[name] = sides[name]()
            times[name].append(seconds)
    return payloads, times


def add_common_args(ap, *, tolerance: float, tolerance_help: str) -> None:
    """The options both speed benchmarks share."""
    from odyssey.machine import cpu_count

    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=cpu_count(), help="torch threads, both sides "
                    "(default: all cores)")
    ap.add_argument("--matmul-repeats", type=int, default=5, help="timed products per shape and library")
    ap.add_argument("--in-process-only", action="store_true", help="skip the whole-process timings")
    ap.add_argument("--tolerance", type=float, default=tolerance, help=tolerance_help)
    ap.add_argument("--json", help="write every figure to this JSON file")


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a child process: offline, ``threads`` threads for every BLAS."""
    env = {**os.environ, **OFFLINE_ENV}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def run_process(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout of a command; a failure stops the benchmark with its stderr."""
    t = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-4000:]}")
    return seconds, proc.stdout


def executable(name: str) -> str:
    """A console script of this environment (beside the running python), else on PATH."""
    import shutil

    here = Path(sys.executable).parent / name
    found = str(here) if here.is_file() else shutil.which(name)
    if not found:
        sys.exit(f"{name} is not installed in this environment")
    return found


# --- data -------------------------------------------------------------------------------

def corpus_dir(world: Path, corpus: str) -> Path:
    """``general`` or a domain's folder in a world built by ``odyssey world build``."""
    path = world / "general" if corpus == "general" else world / "domains" / corpus
    if not path.is_dir():
        sys.exit(f"no corpus {corpus!r} in {world} (expected {path}); build the default world with "
                 "`odyssey world build` or pass --world")
    return path


def read_split(world: Path, corpus: str, split: str) -> list[dict]:
    from odyssey.corpora.store import iter_split

    return list(iter_split(corpus_dir(world, corpus), split))


def leading_documents(docs: list[dict], tokenizer, max_tokens: int | None) -> list[dict]:
    """The leading documents until ``max_tokens`` tokens are reached (all when None), as
    odyssey's ``max_tokens`` selects them."""
    if max_tokens is None:
        return docs
    out, total = [], 0
    for doc in docs:
        if total >= max_tokens:
            break
        out.append(doc)
        total += len(tokenizer(doc["text"], add_special_tokens=False).input_ids)
    return out


# --- output -----------------------------------------------------------------------------

def machine_info(threads: int) -> dict:
    import torch

    from odyssey.energy.meter import _machine  # CPU model, OS, RAM: as energy.csv records them

    return {**_machine(), "threads": threads, "torch": torch.__version__, "load_average_at_start": os.getloadavg()}


def print_rate(rates: dict) -> None:
    print(f"machine fp32 matmul rate, {rates['threads']} threads: {rates['rate_gflops']:.1f} GFLOP/s "
          f"({rates['rate_from']})")
    for label, r in rates["gflops_per_shape"].items():
        print(f"  {label:40s} torch {r['torch']:7.1f}   numpy {r['numpy']:7.1f} GFLOP/s")


def print_speeds(title: str, speeds: dict[str, dict], other: str, ours: str = "odyssey") -> None:
    """One block of the table: median seconds, tokens/s, GFLOP/s and fraction per side, and
    the ratio other / ours of the medians."""
    print(f"  {title}")
    for name, s in speeds.items():
        print(f"    {name:10s} {s['median_s']:9.3f} s  {s['tokens_per_s']:10,.0f} tokens/s  "
              f"{s['gflops']:7.1f} GFLOP/s  {100 * s['fraction_of_rate']:5.1f}% of the matmul rate")
    print(f"    ratio {other} / {ours} time: {speeds[other]['median_s'] / speeds[ours]['median_s']:.2f}x")


def write_report(path: str | None, report: dict) -> None:
    if path:
        from odyssey.io import write_json

        write_json(Path(path), report)
        print(f"figures written to {path}")
