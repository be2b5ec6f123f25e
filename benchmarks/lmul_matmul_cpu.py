"""Throughput of the compiled L-Mul matrix product on CPU, as a ratio to torch's float32 matmul.

    python benchmarks/lmul_matmul_cpu.py [--repeats 5] [--threads N] [--mantissa 4]

For each shape it times ``odyssey.lmul.lmul_matmul`` (products by L-Mul, float32
accumulation) and ``torch.matmul`` in float32 on the same operands and thread count,
and prints the medians and ``ratio = torch time / L-Mul time`` (1/30 means L-Mul is
30 times slower). Compilation is excluded (one warm-up call each). The L-Mul time
includes encoding the operands; the "kernel" column excludes it (as a patched
``nn.Linear`` that keeps its encoded weight would pay).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

SHAPES = [  # (M, K, N): square, a linear layer of the default base model, attention scores
    (512, 512, 512),
    (1024, 256, 688),
    (256, 64, 256),
]


def main() -> None:
    from odyssey.lmul.kernels import Spec, encode_operand, lmul_matmul, matmul_encoded

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="threads for both (default: torch's)")
    parser.add_argument("--mantissa", type=int, default=None, help="L-Mul mantissa bits (default native)")
    args = parser.parse_args()
    import numba

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    spec = Spec("float32", args.mantissa)
    print(f"threads {threads}, mantissa {spec.m}, median of {args.repeats}")
    print(f"{'M x K x N':>18} {'torch ms':>10} {'L-Mul ms':>10} {'kernel ms':>10} {'Gprod/s':>8} {'ratio':>8} {'1/ratio':>8}")
    ratios = []
    for M, K, N in SHAPES:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(M, K, generator=gen), torch.randn(K, N, generator=gen)
        t_torch = bc.median_seconds(lambda a=a, b=b: torch.matmul(a, b), args.repeats)
        t_lmul = bc.median_seconds(lambda a=a, b=b: lmul_matmul(a, b, args.mantissa), args.repeats)
        ea, eb = encode_operand(a[None], spec), encode_operand(b[None], spec)
        t_kernel = bc.median_seconds(lambda ea=ea, eb=eb: matmul_encoded(ea, eb, spec), args.repeats)
        ratio = t_torch / t_lmul
        ratios.append(ratio)
        print(f"{f'{M} x {K} x {N}':>18} {t_torch * 1e3:10.2f} {t_lmul * 1e3:10.2f} {t_kernel * 1e3:10.2f} "
              f"{M * K * N / t_kernel / 1e9:8.2f} {ratio:8.4f} {1 / ratio:8.1f}")
    geo = statistics.geometric_mean(ratios)
    print(f"geometric mean ratio {geo:.4f} (L-Mul is {1 / geo:.1f}x slower than torch float32; goal <= 30x)")


if __name__ == "__main__":
    main()
