"""The L-Mul matrix product on the GPU (Triton), bit-exact to the CPU kernel.

:func:`lmul_matmul_triton` computes what :func:`odyssey.lmul.kernels.lmul_matmul`
computes, bit for bit (NaN payloads aside: a NaN is compared as any NaN, as in the CPU
tests): every product an L-Mul on the float32 bit patterns of the operands (encoded as in
:mod:`odyssey.lmul.kernels`: subnormals flushed, mantissas truncated to ``m`` bits,
canonical NaN), summed in float32 in the order ``k = 0, 1, ..., K-1``, each addition
rounded to nearest (``C[i, j] = ((0 + p0) + p1) + ...``).

The order is what makes it bit-exact, and it decides the kernel's shape: a program owns
a ``BLOCK_M x BLOCK_N`` tile of ``C`` and walks ``k`` one step at a time, adding the
rank-1 tile of products ``p[:, k, :]`` to its float32 accumulator (no tree reduction, no
tensor cores: L-Mul is an integer addition, not a multiplication they could do). Per
step it loads a column of ``A`` (``A`` is passed transposed, ``(K, M)``, so the column is
contiguous) and a row of ``B``. Per product: one unsigned 32-bit addition of the two
magnitudes, compares for underflow (to 0) and overflow (to inf), masks for zero
operands, the sign ``xor``, one float32 addition. A tensor-core fp32 matmul does one
fused multiply-add per product instead, so expect L-Mul well below torch's float32
matmul throughput (``benchmarks/lmul_matmul_gpu.py`` measures it).

Products of two magnitudes below ``2^31`` sum below ``2^32``, so the sum is exact in
uint32 and the integer adder's carry into the exponent field is the same as the CPU
kernel's int64 arithmetic. Inputs with inf or NaN take a slower variant
(``SPECIAL``), chosen per call on the host.

Triton is imported lazily and only needed here; with ``TRITON_INTERPRET=1`` the same
kernel runs on CPU tensors in Triton's interpreter (how the CPU test suite checks it).
"""

from __future__ import annotations

import math
import os

import torch

from odyssey.lmul.kernels import INF, MAG, Spec, encode, format_of

_KERNEL = None


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available() -> bool:
    """True if Triton is importable and there is a CUDA device (or the interpreter is on)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or interpreting()


def _kernel():
    """Compile (once) and return the Triton kernel; the import is deferred so that this
    module imports without Triton."""
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import triton
    import triton.language as tl

    @triton.jit
    def lmul_mm_kernel(at_ptr, b_ptr, c_ptr, M, N, K,
                       LOK: tl.constexpr, K_OFF: tl.constexpr, HI: tl.constexpr,
                       HI_IS_INF: tl.constexpr, SPECIAL: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        # at: (G, K, M) int32 encoded A^T; b: (G, K, N) int32 encoded B; c: (G, M, N) float32
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        g = tl.program_id(2).to(tl.int64)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        in_m = offs_m < M
        in_n = offs_n < N
        a_base = at_ptr + g * K * M + offs_m
        b_base = b_ptr + g * K * N + offs_n
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, K):
            xa = tl.load(a_base + k * M, mask=in_m, other=0)
            xb = tl.load(b_base + k * N, mask=in_n, other=0)
            ma = (xa & 0x7FFFFFFF).to(tl.uint32)
            mb = (xb & 0x7FFFFFFF).to(tl.uint32)
            sign = (xa & -0x80000000)[:, None] ^ (xb & -0x80000000)[None, :]
            s = ma[:, None] + mb[None, :]  # < 2^32: exact in uint32
            # the one integer addition: bias minus the offset 2^-l(m) taken off, carries included
            r = s - K_OFF
            if HI_IS_INF:  # noqa: SIM108 (a constexpr branch: Triton compiles one side)
                r = tl.minimum(r, HI)  # past the largest exponent: inf (float32, bfloat16)
            else:
                r = tl.where(r >= HI, 0x7F800000, r)  # float16's range ends below float32's
            # below the smallest normal exponent (underflow) or a zero operand: a zero product
            keep = (s >= LOK) & (ma != 0)[:, None] & (mb != 0)[None, :]
            r = tl.where(keep, r, 0)
            if SPECIAL:
                a_inf = (ma == 0x7F800000)[:, None]
                b_inf = (mb == 0x7F800000)[None, :]
                zero = (ma == 0)[:, None] | (mb == 0)[None, :]
                r = tl.where(a_inf | b_inf, tl.where(zero, 0x7FC00000, 0x7F800000), r)  # inf * 0 = NaN
                r = tl.where((ma > 0x7F800000)[:, None] | (mb > 0x7F800000)[None, :], 0x7FC00000, r)
            p = (r.to(tl.int32) | sign).to(tl.float32, bitcast=True)
            acc = acc + p  # k ascending, rounded to float32 at each step, as the CPU kernel
        c_ptrs = c_ptr + g * M * N + offs_m[:, None] * N + offs_n[None, :]
        tl.store(c_ptrs, acc, mask=in_m[:, None] & in_n[None, :])

    _KERNEL = lmul_mm_kernel
    return _KERNEL


def encode_gpu(x: torch.Tensor, spec: Spec) -> tuple[torch.Tensor, bool]:
    """``x`` encoded as the kernel reads it (int32 float32-bits, on ``x``'s device, contiguous)
    and whether it holds an inf or NaN."""
    bits = encode(x, spec)  # int64 sign | magnitude, in [0, 2^32)
    special = bool(((bits & MAG) >= INF).any())
    return torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32).contiguous(), special


def _blocks(M: int, N: int) -> tuple[int, int, int]:
    """Tile shape and warps: large tiles for large outputs (more products per load)."""
    if interpreting():
        return 16, 16, 1
    if M * N >= 1 << 20:
        return 128, 128, 8
    return 64, 64, 4


def matmul_encoded_gpu(at: torch.Tensor, b: torch.Tensor, spec: Spec, special: bool,
                       blocks: tuple[int, int, int] | None = None) -> torch.Tensor:
    """L-Mul product of encoded ``A^T`` (G, K, M) and ``B`` (G, K, N): float32 (G, M, N)."""
    G, K, M = at.shape
    N = b.shape[2]
    out = torch.empty((G, M, N), dtype=torch.float32, device=at.device)
    if out.numel() == 0:
        return out
    bm, bn, warps = blocks or _blocks(M, N)
    grid = ((M + bm - 1) // bm, (N + bn - 1) // bn, G)
    _kernel()[grid](at, b, out, M, N, K,
                    LOK=spec.lo + spec.k_off, K_OFF=spec.k_off, HI=spec.hi, HI_IS_INF=spec.hi == INF,
                    SPECIAL=special, BLOCK_M=bm, BLOCK_N=bn, num_warps=warps)
    return out


def lmul_matmul_triton(a: torch.Tensor, b: torch.Tensor, mantissa: int | None = None,
                       blocks: tuple[int, int, int] | None = None) -> torch.Tensor:
    """``a @ b`` with every product an L-Mul and float32 accumulation (k ascending), on the GPU.

    Same contract as :func:`odyssey.lmul.kernels.lmul_matmul` (float32, bfloat16 or
    float16 operands of one dtype, batch dimensions broadcasting; float32 result; no
    gradient) and the same bits; the result is on the operands' CUDA device.

    >>> lmul_matmul_triton(torch.ones(2, 3, device="cuda"), torch.ones(3, 4, device="cuda"), mantissa=4)
    tensor([[3.3750, 3.3750, 3.3750, 3.3750],
            [3.3750, 3.3750, 3.3750, 3.3750]], device='cuda:0')
    """
    if a.dtype != b.dtype:
        raise TypeError(f"L-Mul operands must have one dtype, got {a.dtype} and {b.dtype}")
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"cannot multiply {tuple(a.shape)} by {tuple(b.shape)}")
    if a.device != b.device or not (a.is_cuda or interpreting()):
        raise ValueError(f"the Triton L-Mul kernel needs both operands on one CUDA device, got {a.device} "
                         f"and {b.device}")
    spec = Spec(format_of(a.dtype), mantissa)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    G = math.prod(batch)  # explicit: reshape(-1, ...) is ambiguous when K = 0
    a3 = a.detach().expand(*batch, *a.shape[-2:]).reshape(G, *a.shape[-2:])
    b3 = b.detach().expand(*batch, *b.shape[-2:]).reshape(G, *b.shape[-2:])
    at, a_special = encode_gpu(a3.transpose(1, 2), spec)  # (G, K, M): columns of A contiguous
    bt, b_special = encode_gpu(b3, spec)
    out = matmul_encoded_gpu(at, bt, spec, a_special or b_special, blocks)
    return out.reshape(*batch, a.shape[-2], b.shape[-1])
