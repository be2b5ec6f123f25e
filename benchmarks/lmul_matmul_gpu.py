"""Throughput of the Triton L-Mul matrix product against torch's float32 matmul (TF32 off), one GPU.

    python benchmarks/lmul_matmul_gpu.py [--sizes 1024 2048 4096] [--repeats 20] [--json OUT.json]
    python benchmarks/lmul_matmul_gpu.py --smoke      # CPU: Triton's interpreter, tiny shapes

For each square size S it times, on the same operands (float32, N(0, 1)) and the same
GPU, with CUDA events after warm-up (compilation excluded), medians of ``--repeats``:

- ``torch.matmul`` in float32 with TF32 off (``torch.backends.cuda.matmul.allow_tf32 =
  False``, precision "highest"): what a user gets without L-Mul;
- ``lmul_matmul_triton`` end to end (encoding both operands included) and the kernel
  alone on pre-encoded operands (what a patched Linear with its cached weight pays per
  call), for each tile configuration in ``--blocks``, keeping the fastest.

Throughput is ``2 * S^3 / time`` (one product and one addition per term, as for the
matmul), and ``ratio = torch time / L-Mul time`` (goal: >= 0.5). Before timing, the
GPU result is checked bit for bit against the CPU kernel on a slice of the operands.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--mantissa", type=int, default=None, help="L-Mul mantissa bits (default native, 23)")
    ap.add_argument("--blocks", nargs="+", default=["64,64,4", "128,64,4", "64,128,4", "128,128,8"],
                    help="tile configurations BLOCK_M,BLOCK_N,num_warps to try (the fastest is reported)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes; without CUDA, in Triton's interpreter")
    return ap.parse_args(argv)


def timer(fn, repeats: int, cuda: bool) -> float:
    """Median seconds of ``fn()`` (after two warm-up calls)."""
    import torch

    fn()
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.sizes, args.repeats, args.blocks = [32, 48], 2, ["16,16,1"]
    import torch

    cuda = torch.cuda.is_available()
    if not cuda:
        if not args.smoke:
            print("no CUDA device: run on a GPU, or pass --smoke (Triton's CPU interpreter)")
            return 2
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernel is first compiled
    from odyssey.lmul.kernels import Spec, lmul_matmul
    from odyssey.lmul.triton_kernel import encode_gpu, lmul_matmul_triton, matmul_encoded_gpu

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name() if cuda else "CPU (Triton interpreter)"
    spec = Spec("float32", args.mantissa)
    blocks = [tuple(int(v) for v in b.split(",")) for b in args.blocks]
    print(f"{name}, torch {torch.__version__}, mantissa {spec.m}, TF32 off, median of {args.repeats}", flush=True)
    print(f"{'size':>6} {'torch ms':>9} {'TFLOP/s':>8} {'L-Mul ms':>9} {'kernel ms':>9} {'TFLOP/s':>8} "
          f"{'ratio':>6}  best tile")
    rows = []
    for S in args.sizes:
        gen = torch.Generator(device=device).manual_seed(S)
        a = torch.randn(S, S, device=device, generator=gen)
        b = torch.randn(S, S, device=device, generator=gen)
        cut = min(S, 256)  # bit-exactness on a slice: the CPU kernel is slow at 4096^3
        want = lmul_matmul(a[:cut].cpu(), b[:, :cut].cpu(), args.mantissa)
        got = lmul_matmul_triton(a[:cut], b[:, :cut], args.mantissa).cpu()
        exact = bool(torch.equal(got.view(torch.int32), want.view(torch.int32)))
        t_torch = timer(lambda a=a, b=b: torch.matmul(a, b), args.repeats, cuda)
        at, a_special = encode_gpu(a.t()[None], spec)
        bt, b_special = encode_gpu(b[None], spec)
        special = a_special or b_special
        kernel = {bl: timer(lambda bl=bl, at=at, bt=bt, sp=special: matmul_encoded_gpu(at, bt, spec, sp, bl),
                            args.repeats, cuda) for bl in blocks}
        best = min(kernel, key=kernel.get)
        t_lmul = timer(lambda a=a, b=b, best=best: lmul_matmul_triton(a, b, args.mantissa, best), args.repeats, cuda)
        flop = 2.0 * S**3
        row = {"size": S, "torch_s": t_torch, "torch_tflops": flop / t_torch / 1e12, "lmul_s": t_lmul,
               "kernel_s": kernel[best], "kernel_tflops": flop / kernel[best] / 1e12,
               "ratio": t_torch / t_lmul, "kernel_ratio": t_torch / kernel[best], "best_tile": list(best),
               "tiles_s": {",".join(map(str, k)): v for k, v in kernel.items()}, "bit_exact_slice": exact}
        rows.append(row)
        print(f"{S:>6} {t_torch * 1e3:9.3f} {row['torch_tflops']:8.2f} {t_lmul * 1e3:9.3f} "
              f"{kernel[best] * 1e3:9.3f} {row['kernel_tflops']:8.2f} {row['ratio']:6.3f}  {best}"
              f"{'' if exact else '  NOT BIT-EXACT'}", flush=True)
    geo = statistics.geometric_mean(r["ratio"] for r in rows)
    print(f"geometric mean ratio (torch fp32 time / L-Mul time): {geo:.3f} (goal >= 0.5); "
          f"bit-exact on every checked slice: {all(r['bit_exact_slice'] for r in rows)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "mantissa": spec.m, "rows": rows,
                       "geomean_ratio": geo, "date": time.strftime("%Y-%m-%d")}, f, indent=1)
    return 0 if all(r["bit_exact_slice"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
