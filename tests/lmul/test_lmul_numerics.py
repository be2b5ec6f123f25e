"""L-Mul numerics: hand-worked examples from the paper's formula, special values, and the
fast (vectorized, bit-level) implementation against the pure-Python reference, bit for bit."""

import math
import os
import struct
import zlib

import numpy as np
import pytest
import torch

from odyssey.lmul.kernels import Spec, lmul
from odyssey.lmul.reference import (
    FORMATS,
    from_bits,
    lmul_reference,
    lmul_reference_bits,
    offset_exponent,
    to_bits,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
INT = {"float32": torch.int32, "bfloat16": torch.int16, "float16": torch.int16}
WIDTH = {"float32": 32, "bfloat16": 16, "float16": 16}


def fast_bits(a_bits, b_bits, fmt, mantissa=None) -> np.ndarray:
    """lmul on arrays of bit patterns -> result bit patterns (unsigned)."""
    def tensor(bits):
        arr = np.asarray(bits, dtype=np.int64)
        arr = np.where(arr >= 1 << (WIDTH[fmt] - 1), arr - (1 << WIDTH[fmt]), arr)
        return torch.from_numpy(arr).to(INT[fmt]).view(DTYPES[fmt])

    out = lmul(tensor(a_bits), tensor(b_bits), mantissa).view(INT[fmt]).numpy().astype(np.int64)
    return out & ((1 << WIDTH[fmt]) - 1)


def assert_same_as_reference(a_bits, b_bits, fmt, mantissa=None):
    got = fast_bits(a_bits, b_bits, fmt, mantissa)
    want = [lmul_reference_bits(int(a), int(b), fmt, mantissa) for a, b in zip(a_bits, b_bits, strict=True)]
    bad = np.flatnonzero(got != np.asarray(want, dtype=np.int64))
    assert bad.size == 0, (f"{bad.size} of {len(got)} differ, first: {fmt} m={mantissa} "
                           f"{a_bits[bad[0]]:#x} * {b_bits[bad[0]]:#x}: fast {got[bad[0]]:#x}, "
                           f"reference {want[bad[0]]:#x}")


def test_offset_exponent_follows_the_paper():
    assert [offset_exponent(m) for m in range(1, 9)] == [1, 2, 3, 3, 4, 4, 4, 4]
    assert Spec("float32").k_off == 0x3F780000  # the constant of the paper's fp32 PTX code


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_hand_worked_examples(fmt):
    x = lambda v: torch.tensor([v], dtype=DTYPES[fmt])  # noqa: E731
    # 1.5 * 1.5, native m (l = 4): xm = ym = 0.5, s = 0.5 + 0.5 + 1/16 = 1.0625 >= 1 carries:
    # (1 + 0.0625) * 2^(0 + 0 + 1) = 2.125 (exact 2.25). In fp32 bits: 0x3FC00000 * 2 - 0x3F780000.
    assert lmul_reference(1.5, 1.5, fmt) == 2.125 and lmul(x(1.5), x(1.5)).item() == 2.125
    assert to_bits(2.125, "float32") == 2 * 0x3FC00000 - 0x3F780000
    # 3 * -5: xm = .5 (e 1), ym = .25 (e 2): s = .8125, no carry: -(1.8125) * 2^3 = -14.5 (exact -15)
    assert lmul_reference(3.0, -5.0, fmt) == -14.5 and lmul(x(3.0), x(-5.0)).item() == -14.5
    # m = 2 (l = 2): 1.25 * 1.25 -> 1 + .25 + .25 + .25 = 1.75 (exact 1.5625)
    assert lmul_reference(1.25, 1.25, fmt, 2) == 1.75 and lmul(x(1.25), x(1.25), 2).item() == 1.75
    # m = 1 truncates 1.75 to 1.5 (xm .75 -> .5); l = 1: s = .5 + 0 + .5 = 1 carries: 1 * 2^1
    assert lmul_reference(1.75, 1.0, fmt, 1) == 2.0 and lmul(x(1.75), x(1.0), 1).item() == 2.0
    # a double carry: xm = ym = 1 - 2^-23: s = 2 - 2^-22 + 1/16 carries 2 into the exponent:
    # (1 + 1/16 - 2^-22) * 2^2 = 4.25 - 2^-20 (exact ~4)
    if fmt == "float32":
        v = from_bits(0x3FFFFFFF, "float32")
        assert lmul_reference(v, v) == 4.25 - 2**-20 and lmul(x(v), x(v)).item() == 4.25 - 2**-20


def special_cases(fmt):
    _, emin, emax = FORMATS[fmt]
    tiny = math.ldexp(1.0, emin)  # smallest normal
    sub = tiny / 4  # a subnormal of the format
    big = math.ldexp(1.5, emax)
    inf, nan = math.inf, math.nan
    return [  # x, y, expected
        (0.0, 3.0, 0.0), (-0.0, 3.0, -0.0), (0.0, -3.0, -0.0), (-0.0, -0.0, 0.0),
        (sub, 3.0, 0.0), (-sub, 1.5, -0.0), (sub, big, 0.0),  # subnormals flush to zero
        (inf, 2.0, inf), (-inf, 2.0, -inf), (inf, -inf, -inf),
        (inf, 0.0, nan), (0.0, -inf, -nan), (inf, sub, nan),
        (nan, 1.0, nan), (nan, 0.0, nan), (nan, inf, nan), (-nan, 1.0, -nan),
        (big, 4.0, inf), (big, -big, -inf),  # overflow -> signed infinity
        (tiny, 0.5, 0.0), (-tiny, 0.25, -0.0),  # underflow -> signed zero
        (tiny, 1.0, lmul_reference(tiny, 1.0, fmt)),  # the smallest normal result survives
    ]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_special_values(fmt):
    cases = special_cases(fmt)
    for x, y, want in cases:
        got = lmul_reference(x, y, fmt)
        if math.isnan(want):
            assert math.isnan(got) and math.copysign(1, got) == math.copysign(1, want), (x, y, got)
        else:
            assert got == want and math.copysign(1, got) == math.copysign(1, want), (x, y, got)
    assert lmul_reference(cases[-1][0], 1.0, fmt) == math.ldexp(1.0, FORMATS[fmt][1]) * 1.0625
    a = [to_bits(x, fmt) for x, _, _ in cases]
    b = [to_bits(y, fmt) for _, y, _ in cases]
    assert_same_as_reference(a, b, fmt)
    assert_same_as_reference(a, b, fmt, 2)


def bf16_values(exponents, signs=(0, 1)):
    return [(s << 15) | (e << 7) | m for s in signs for e in exponents for m in range(128)]


def test_exhaustive_bf16_window_against_reference():
    """Every mantissa pair and both signs, at exponents that reach zero and subnormals,
    the smallest and largest normals, inf and NaN, around 1, and the overflow and
    underflow boundaries of their products: 1280 x 512 = 655,360 pairs."""
    xs = bf16_values((1, 2, 127, 253, 254))
    ys = bf16_values((0, 126, 127, 255), signs=(0,))
    a = np.repeat(np.asarray(xs), len(ys))
    b = np.tile(np.asarray(ys), len(xs))
    assert_same_as_reference(a, b, "bfloat16")


def test_exhaustive_bf16_window_truncated_mantissas():
    xs = bf16_values((1, 127, 254), signs=(1,))
    ys = bf16_values((126, 128), signs=(0,))
    a, b = np.repeat(np.asarray(xs), len(ys)), np.tile(np.asarray(ys), len(xs))
    for m in (1, 3, 4, 5):
        assert_same_as_reference(a, b, "bfloat16", m)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ODYSSEY_LMUL_EXHAUSTIVE"), reason="set ODYSSEY_LMUL_EXHAUSTIVE=1")
def test_exhaustive_bf16_large_window():
    """All bf16 values with exponent fields 120..135, both signs (4096 values), times the
    same: 16.8 million pairs (~45 s on one core: the reference is pure Python)."""
    xs = np.asarray(bf16_values(range(120, 136)))
    for i in range(0, len(xs), 256):
        a = np.repeat(xs[i:i + 256], len(xs))
        b = np.tile(xs, 256)[:len(a)]
        assert_same_as_reference(a, b, "bfloat16")


@pytest.mark.parametrize("fmt", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("mantissa", [None, 4, 1])
def test_random_bit_patterns_against_reference(fmt, mantissa):
    """Uniformly random bit patterns: every exponent, subnormals, inf and NaN payloads."""
    rng = np.random.default_rng(zlib.crc32(f"{fmt}-{mantissa}".encode()))
    n = 8000
    a = rng.integers(0, 1 << WIDTH[fmt], n)
    b = rng.integers(0, 1 << WIDTH[fmt], n)
    assert_same_as_reference(a, b, fmt, mantissa)


@pytest.mark.parametrize("fmt", ["float32", "float16"])
def test_random_normal_values_against_reference(fmt):
    """Values a model sees: N(0, 1) scaled by powers of two, where products stay in range."""
    rng = np.random.default_rng(1)
    n = 8000
    dtype = np.float32 if fmt == "float32" else np.float16
    x = (rng.standard_normal(n) * 2.0 ** rng.integers(-4, 5, n)).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    view = np.uint32 if fmt == "float32" else np.uint16
    for m in (None, 3, 7):
        assert_same_as_reference(x.view(view).astype(np.int64), y.view(view).astype(np.int64), fmt, m)


def test_reference_rejects_values_outside_the_format():
    with pytest.raises(ValueError):
        to_bits(1.0 + 2.0**-10, "bfloat16")
    with pytest.raises(ValueError):
        lmul_reference(1.0, 1.0, "float16", mantissa=11)
    assert struct.pack("<f", lmul_reference(1.5, 1.5)) == struct.pack("<f", 2.125)
