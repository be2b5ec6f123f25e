"""Fast L-Mul: elementwise products on tensors and a compiled CPU matrix product.

Both work on float32 bit patterns, whatever the input format: a bfloat16 or float16
value converts to float32 exactly, the mantissa is truncated to ``m`` bits there, and
the L-Mul of two such values is one integer addition of their magnitudes::

    bits(x * y) ~= |x|bits + |y|bits - K,    K = (127 << 23) - (1 << (23 - l(m)))

(the carry out of the mantissa field flows into the exponent), with the sign
``xor``-ed in and the result exponent checked against the *input* format's range
(float16 results flush below 2^-14 and overflow above 65504, exactly as a float16
multiplier would). The semantics, special values included, are those of
:mod:`odyssey.lmul.reference`, matched bit for bit (see ``tests/lmul``).

Operands are first *encoded* (:func:`encode`): the float32 bits with subnormals (of
the input format) flushed to zero, the mantissa truncated to ``m`` bits and any NaN
made the canonical quiet NaN. An encoded operand is an int32 array, so the compiled
kernel has a single signature for every format (one compilation, cached on disk).

The matrix product :func:`lmul_matmul` forms every product with L-Mul and sums them
in float32 in a fixed order: ``C[i, j] = (((0 + p[i,0,j]) + p[i,1,j]) + ...) +
p[i,K-1,j]``, k ascending, each addition rounded to float32. It is bit-exact to
:func:`lmul` followed by that loop (``tests/lmul/test_lmul_matmul.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from odyssey.errors import MissingDependencyError
from odyssey.lmul.reference import FORMATS, check_mantissa, offset_exponent

try:
    import numba
except ImportError as e:  # the lmul extra
    raise MissingDependencyError("numba", "lmul", "L-Mul's compiled CPU kernels") from e

SIGN = 0x80000000
MAG = 0x7FFFFFFF
INF = 0x7F800000
NAN = 0x7FC00000  # the canonical quiet NaN (float32 bits, sign cleared)

DTYPE_FORMATS = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class Spec:
    """The constants of L-Mul for one format and mantissa width, on float32 bits.

    >>> Spec("float32").k_off == 0x3F780000   # the paper's constant for fp32
    True
    """

    def __init__(self, fmt: str, mantissa: int | None = None):
        self.fmt = fmt
        self.m = check_mantissa(fmt, mantissa)
        _, emin, emax = FORMATS[fmt]
        self.l = offset_exponent(self.m)
        self.k_off = (127 << 23) - (1 << (23 - self.l))  # bias minus the offset 2^-l(m)
        self.lo = (emin + 127) << 23  # smallest normal magnitude of the format (float32 bits)
        self.hi = (emax + 128) << 23  # first magnitude past the format's largest exponent
        self.keep = MAG & ~((1 << (23 - self.m)) - 1)  # mantissa truncation mask

    def __repr__(self) -> str:
        return f"Spec({self.fmt!r}, mantissa={self.m})"


def format_of(dtype: torch.dtype) -> str:
    if dtype not in DTYPE_FORMATS:
        raise TypeError(f"L-Mul takes float32, bfloat16 or float16 tensors, not {dtype}")
    return DTYPE_FORMATS[dtype]


def _float32_bits_int64(x: torch.Tensor) -> torch.Tensor:
    """float32 bit patterns (int64) of a float32/bfloat16/float16 tensor, by integer
    operations: torch's own float16 -> float32 cast can drop the sign of a NaN."""
    if x.dtype == torch.float32:
        return x.view(torch.int32).to(torch.int64)
    h = x.view(torch.int16).to(torch.int64) & 0xFFFF
    if x.dtype == torch.bfloat16:
        return h << 16
    format_of(x.dtype)
    exp, frac = (h >> 10) & 0x1F, h & 0x3FF
    mag = ((exp + 112) << 23) | (frac << 13)  # normal numbers
    mag = torch.where(exp == 0x1F, torch.where(frac == 0, INF, NAN), mag)
    mag = torch.where(exp == 0, 0, mag)  # zeros and subnormals (flushed by encode anyway)
    return ((h & 0x8000) << 16) | mag


def encode(x: torch.Tensor, spec: Spec) -> torch.Tensor:
    """int64 ``sign | magnitude`` float32 bits of ``x``: subnormals flushed, mantissa
    truncated to ``spec.m`` bits, NaN canonical. Values lie in ``[0, 2^32)``."""
    bits = _float32_bits_int64(x.detach().contiguous())
    sign = bits & SIGN
    mag = bits & MAG
    finite = mag < INF
    mag = torch.where(mag < spec.lo, 0, mag)
    mag = torch.where(finite, mag & spec.keep, torch.where(mag > INF, NAN, INF))
    return sign | mag


def _decode(bits: torch.Tensor, fmt: str) -> torch.Tensor:
    """float32 bits of L-Mul results (int64, values of ``fmt``) -> a tensor of ``fmt``."""
    if fmt == "float32":
        return bits.to(torch.int32).view(torch.float32)
    if fmt == "bfloat16":  # a bfloat16 value is the top half of its float32 bits
        return (bits >> 16).to(torch.int16).view(torch.bfloat16)
    # float16: rebuild the fields (results are 0, normal, inf or NaN: never subnormal)
    sign = (bits >> 16) & 0x8000
    mag = bits & MAG
    normal = (((mag >> 23) - 112) << 10) | ((mag >> 13) & 0x3FF)
    half = torch.where(mag == 0, 0, torch.where(mag == INF, 0x7C00, torch.where(mag > INF, 0x7E00, normal)))
    return (half | sign).to(torch.int16).view(torch.float16)


def lmul_encoded(a: torch.Tensor, b: torch.Tensor, spec: Spec) -> torch.Tensor:
    """L-Mul of encoded operands (broadcasting): float32 bits of the products, int64."""
    sa, sb = a & SIGN, b & SIGN
    ma, mb = a & MAG, b & MAG
    s = ma + mb - spec.k_off  # the one integer addition; a carry flows into the exponent
    r = torch.where(s < spec.lo, 0, torch.where(s >= spec.hi, INF, s))  # underflow -> 0, overflow -> inf
    zero = (ma == 0) | (mb == 0)
    r = torch.where(zero, 0, r)
    r = torch.where((ma == INF) | (mb == INF), torch.where(zero, NAN, INF), r)  # inf * 0 = NaN
    r = torch.where((ma > INF) | (mb > INF), NAN, r)
    return r | (sa ^ sb)


def lmul(x: torch.Tensor, y: torch.Tensor, mantissa: int | None = None) -> torch.Tensor:
    """Elementwise L-Mul of two tensors of the same float format (broadcasting); the
    result has that format. ``mantissa``: bits kept of each input (default native).

    >>> lmul(torch.tensor([1.5]), torch.tensor([1.5]))
    tensor([2.1250])
    """
    if x.dtype != y.dtype:
        raise TypeError(f"L-Mul operands must have one dtype, got {x.dtype} and {y.dtype}")
    spec = Spec(format_of(x.dtype), mantissa)
    return _decode(lmul_encoded(encode(x, spec), encode(y, spec), spec), spec.fmt)


def lmul_sum_reference(a: torch.Tensor, b: torch.Tensor, mantissa: int | None = None) -> torch.Tensor:
    """``(M, K) @ (K, N)`` as elementwise L-Mul products summed in float32, k ascending:
    the definition :func:`lmul_matmul` implements. Materializes ``(M, K, N)``: for tests."""
    products = lmul(a[:, :, None], b[None, :, :], mantissa).to(torch.float32)  # (M, K, N)
    acc = torch.zeros(a.shape[0], b.shape[1], dtype=torch.float32)
    for k in range(a.shape[1]):
        acc = acc + products[:, k, :]
    return acc


# --- the compiled CPU matrix product ------------------------------------------------

_TILE = 256  # output columns per tile: the product and accumulator rows stay in L1


@numba.njit(cache=True, fastmath=False)
def _product_bits(x, y, k_off, lo, hi):
    """L-Mul of two encoded operands (int32) -> float32 bits (in the low 32 bits)."""
    ma = x & 0x7FFFFFFF
    mb = y & 0x7FFFFFFF
    sign = (x ^ y) & 0x80000000
    if ma > 0x7F800000 or mb > 0x7F800000:
        return 0x7FC00000 | sign
    zero = ma == 0 or mb == 0
    if ma == 0x7F800000 or mb == 0x7F800000:
        return (0x7FC00000 if zero else 0x7F800000) | sign
    if zero:
        return sign
    s = ma + mb - k_off
    if s < lo:
        return sign
    if s >= hi:
        return 0x7F800000 | sign
    return s | sign


@numba.njit(parallel=True, cache=True, fastmath=False)
def _matmul_kernel(a, b, out, k_off, lo, hi, b_finite):
    """out[g] = L-Mul product of a[g] (M, K) and b[g] (K, N), float32 accumulation.

    Why numba: the product is integer arithmetic on bit patterns, which no BLAS
    offers; numba compiles these loops to vectorized machine code (the inner j loop
    becomes SIMD integer adds, compares and selects, then SIMD float adds) and spreads
    the output rows over the cores with ``prange``, with no C extension to build.
    ``fastmath=False`` keeps the float32 additions IEEE and in the written order (no
    reassociation, no contraction): the bit-exactness to elementwise L-Mul + ordered sum
    depends on it. ``cache=True`` keeps the machine code on disk: only the first use
    pays the few seconds of compilation.

    Order: each ``out[g, i, j]`` starts at +0.0 and adds its products for k = 0, 1, ...,
    K-1, rounding to float32 after each addition. Skipping a zero product is exact (the
    accumulator, starting at +0.0, is never -0.0, so adding +-0 leaves it unchanged).

    Memory: the output plus, per row in flight, two ``_TILE``-long buffers; the
    ``(M, K, N)`` products are never materialized. Rows are independent (parallel over
    ``G * M``); columns go in tiles of ``_TILE`` so the products and accumulators of a
    tile stay in L1 while k runs over a contiguous row of ``b``.
    """
    G, M, K = a.shape
    N = b.shape[2]
    for row in numba.prange(G * M):
        g = row // M
        i = row - g * M
        prod = np.empty(_TILE, np.int32)
        prodf = prod.view(np.float32)
        acc = np.empty(_TILE, np.float32)
        for j0 in range(0, N, _TILE):
            w = min(_TILE, N - j0)
            for j in range(w):
                acc[j] = 0.0
            for k in range(K):
                x = a[g, i, k]
                ma = x & 0x7FFFFFFF
                if ma == 0 and b_finite:
                    continue  # +-0 products: adding them leaves acc (never -0) unchanged
                brow = b[g, k, j0:j0 + w]
                if ma != 0 and ma < 0x7F800000 and b_finite:
                    # the hot loop: a is normal, b has no inf/NaN
                    c = ma - k_off
                    for j in range(w):
                        y = brow[j]
                        mb = y & 0x7FFFFFFF
                        s = c + mb
                        r = 0 if s < lo else (0x7F800000 if s >= hi else s)
                        r = 0 if mb == 0 else r
                        prod[j] = r | ((x ^ y) & 0x80000000)
                else:
                    for j in range(w):
                        prod[j] = _product_bits(x, brow[j], k_off, lo, hi)
                for j in range(w):
                    acc[j] += prodf[j]
            for j in range(w):
                out[g, i, j0 + j] = acc[j]


@numba.njit(cache=True, fastmath=False)
def _encode_kernel(bits, out, lo, keep):
    """:func:`encode` on float32 bit patterns (int32), into ``out`` (int32)."""
    for i in range(bits.size):
        x = bits[i]
        mag = x & 0x7FFFFFFF
        if mag < 0x7F800000:
            mag = 0 if mag < lo else mag & keep
        elif mag > 0x7F800000:
            mag = 0x7FC00000
        out[i] = (x & 0x80000000) | mag


def float32_bits(x: torch.Tensor) -> np.ndarray:
    """The float32 bit patterns (int32 numpy, C order) of a float32/bfloat16/float16
    tensor's values (exact: both half formats convert to float32 without rounding)."""
    x = x.detach().cpu().contiguous()
    if x.dtype == torch.bfloat16:  # a bfloat16 is the top half of its float32
        return x.view(torch.int16).numpy().astype(np.int32) << 16
    if x.dtype == torch.float16:
        return x.numpy().astype(np.float32).view(np.int32)
    format_of(x.dtype)
    return x.numpy().view(np.int32)


def encode_operand(x: torch.Tensor, spec: Spec) -> np.ndarray:
    """:func:`encode` as the kernel takes it: a C-contiguous int32 numpy array.
    Computed with numpy and numba rather than torch ops: on a busy machine torch's
    multi-threaded elementwise ops can wait milliseconds at each barrier."""
    bits = float32_bits(x)
    out = np.empty_like(bits)
    _encode_kernel(bits.reshape(-1), out.reshape(-1), spec.lo, spec.keep)
    return out


def matmul_encoded(a: np.ndarray, b: np.ndarray, spec: Spec) -> np.ndarray:
    """L-Mul matrix product of encoded operands ``a`` (G, M, K) and ``b`` (G, K, N):
    float32 (G, M, N). Memory: the output plus two ``_TILE`` rows per thread."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"cannot multiply {a.shape} by {b.shape}")
    out = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=np.float32)
    b_finite = not bool(((b & MAG) >= INF).any())
    _matmul_kernel(a, b, out, spec.k_off, spec.lo, spec.hi, b_finite)
    return out


def lmul_matmul(a: torch.Tensor, b: torch.Tensor, mantissa: int | None = None) -> torch.Tensor:
    """``a @ b`` with every product an L-Mul and float32 accumulation (k ascending).

    ``a`` is ``(..., M, K)``, ``b`` is ``(..., K, N)`` of the same dtype (float32,
    bfloat16 or float16), batch dimensions broadcasting as in ``torch.matmul``; the
    result is float32 ``(..., M, N)`` on the CPU. No gradient flows through it.

    >>> lmul_matmul(torch.ones(2, 3), torch.ones(3, 4), mantissa=4)  # 1 * 1 ~ 1.125
    tensor([[3.3750, 3.3750, 3.3750, 3.3750],
            [3.3750, 3.3750, 3.3750, 3.3750]])
    """
    if a.dtype != b.dtype:
        raise TypeError(f"L-Mul operands must have one dtype, got {a.dtype} and {b.dtype}")
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"cannot multiply {tuple(a.shape)} by {tuple(b.shape)}")
    spec = Spec(format_of(a.dtype), mantissa)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = a.expand(*batch, *a.shape[-2:]).reshape(-1, *a.shape[-2:])
    b3 = b.expand(*batch, *b.shape[-2:]).reshape(-1, *b.shape[-2:])
    out = matmul_encoded(encode_operand(a3, spec), encode_operand(b3, spec), spec)
    return torch.from_numpy(out).reshape(*batch, a.shape[-2], b.shape[-1])
