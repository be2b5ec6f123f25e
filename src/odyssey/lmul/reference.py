"""L-Mul, one product at a time, in plain Python: the reference the fast code is checked against.

Luo and Sun (2024), "Addition is All You Need for Energy-efficient Language Models",
approximate the product of two floating-point numbers ``x = (-1)^sx (1 + xm) 2^xe`` and
``y = (-1)^sy (1 + ym) 2^ye`` (``xm, ym`` in ``[0, 1)`` the mantissas) by::

    L-Mul(x, y) = (-1)^(sx xor sy) * (1 + xm + ym + 2^-l(m)) * 2^(xe + ye)

    l(m) = m  if m <= 3,   3  if m == 4,   4  if m > 4      (m = mantissa bits)

that is, the mantissa product ``xm * ym`` is replaced by the constant ``2^-l(m)``. On
the bit patterns this is one integer addition (the exponent and mantissa fields of
``x`` and ``y`` added, minus the exponent bias, plus the offset), which is how the
paper implements it (its Figure 2: ``add`` the two fp32 registers, subtract
``0x3F780000`` = bias minus offset, ``xor`` the signs).

Semantics pinned down here (and matched bit for bit by :mod:`odyssey.lmul.kernels`):

- **Formats.** ``float32`` (23 mantissa bits, exponents -126..127), ``bfloat16``
  (7, -126..127) and ``float16`` (10, -14..15). The result is a value of the
  *input* format.
- **Mantissa width m.** Each input's mantissa is truncated (rounded toward zero) to
  ``m`` bits, ``1 <= m <= native``; ``m = None`` means the format's native width.
  The offset is ``2^-l(m)``. Since ``l(m) <= m``, the result mantissa has at most
  ``m`` bits: no rounding ever happens.
- **Carry.** The integer adder carries out of the mantissa field into the exponent:
  with ``s = xm + ym + 2^-l(m)`` and ``c = floor(s)`` (0, 1, or 2 when both
  mantissas are close to 1 and ``m > l(m)``), the result is
  ``(1 + s - c) * 2^(xe + ye + c)``. For ``s >= 1`` this is not the literal
  ``(1 + s) * 2^(xe+ye)``, which has no ``1.f`` representation; the carried form is
  what the paper's adder computes, and the more accurate one (for ``xm = ym = 0.75``,
  m = 23: exact 3.0625, carried 3.125, literal 2.5625).
- **Zeros and subnormals.** Subnormal inputs are flushed to zero (the formula assumes
  the implicit leading 1; hardware approximate multipliers flush too). ``0 * finite``
  is a zero with sign ``sx xor sy``.
- **Underflow and overflow.** A result exponent below the format's smallest normal
  exponent gives a signed zero (flush, no subnormal results); above the largest
  gives a signed infinity. (The bare integer addition would wrap into the sign bit.)
- **Inf and NaN.** ``inf * nonzero`` is a signed infinity; ``inf * 0`` and anything
  with a NaN give NaN. The sign of every result, NaN included, is ``sx xor sy``;
  NaN is the format's canonical quiet NaN.

>>> lmul_reference(1.5, 1.5)        # xm = ym = 0.5, l = 4: s = 1.0625 carries
2.125
>>> lmul_reference(1.25, 1.25, mantissa=2)   # l(2) = 2: 1 + .25 + .25 + .25
1.75
"""

from __future__ import annotations

import math
import struct

# name: (native mantissa bits, smallest normal exponent, largest exponent)
FORMATS: dict[str, tuple[int, int, int]] = {
    "float32": (23, -126, 127),
    "bfloat16": (7, -126, 127),
    "float16": (10, -14, 15),
}


def offset_exponent(m: int) -> int:
    """``l(m)``: the L-Mul offset is ``2^-l(m)`` for an ``m``-bit mantissa."""
    if m < 1:
        raise ValueError(f"mantissa bits must be >= 1, got {m}")
    return m if m <= 3 else (3 if m == 4 else 4)


def check_mantissa(fmt: str, mantissa: int | None) -> int:
    """The mantissa width to use: ``mantissa`` checked against ``fmt``, or the native one."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    native = FORMATS[fmt][0]
    if mantissa is None:
        return native
    if not 1 <= mantissa <= native:
        raise ValueError(f"mantissa must be in [1, {native}] for {fmt}, got {mantissa}")
    return mantissa


def to_bits(value: float, fmt: str) -> int:
    """The bit pattern of ``value`` in ``fmt`` (``value`` must be exactly representable)."""
    if fmt == "float16":
        bits = struct.unpack("<H", struct.pack("<e", value))[0]
        back = struct.unpack("<e", struct.pack("<H", bits))[0]
    else:
        bits32 = struct.unpack("<I", struct.pack("<f", value))[0]
        back = struct.unpack("<f", struct.pack("<I", bits32))[0]
        if fmt == "bfloat16":
            if bits32 & 0xFFFF and not math.isnan(value):
                raise ValueError(f"{value!r} is not a bfloat16 value")
            bits = bits32 >> 16
        else:
            bits = bits32
    if not (back == value or (math.isnan(back) and math.isnan(value))):
        raise ValueError(f"{value!r} is not a {fmt} value")
    return bits


def from_bits(bits: int, fmt: str) -> float:
    """The value of the bit pattern ``bits`` in ``fmt``."""
    if fmt == "float16":
        return struct.unpack("<e", struct.pack("<H", bits & 0xFFFF))[0]
    if fmt == "bfloat16":
        bits = (bits & 0xFFFF) << 16
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def _split(v: float, m: int) -> tuple[float, int]:
    """``|v| = (1 + mant) * 2^exp`` with ``mant`` truncated to ``m`` bits."""
    frac, exp = math.frexp(abs(v))  # |v| = frac * 2^exp, frac in [0.5, 1)
    mant = 2.0 * frac - 1.0
    scale = float(1 << m)
    return math.floor(mant * scale) / scale, exp - 1


def lmul_reference(x: float, y: float, fmt: str = "float32", mantissa: int | None = None) -> float:
    """L-Mul of two values of ``fmt`` (given as Python floats), as a Python float that
    is exactly a value of ``fmt``. See the module docstring for the semantics.

    >>> lmul_reference(3.0, -5.0)      # xm = .5, ym = .25, s = .8125: (1.8125) * 2^3
    -14.5
    """
    m = check_mantissa(fmt, mantissa)
    _, emin, emax = FORMATS[fmt]
    sign = -1.0 if (math.copysign(1.0, x) < 0) != (math.copysign(1.0, y) < 0) else 1.0
    if math.isnan(x) or math.isnan(y):
        return math.copysign(math.nan, sign)
    tiny = math.ldexp(1.0, emin)  # smallest normal: anything smaller is flushed to zero
    x_zero, y_zero = abs(x) < tiny, abs(y) < tiny
    if math.isinf(x) or math.isinf(y):
        return math.copysign(math.nan if (x_zero or y_zero) else math.inf, sign)
    if x_zero or y_zero:
        return math.copysign(0.0, sign)
    xm, xe = _split(x, m)
    ym, ye = _split(y, m)
    s = xm + ym + math.ldexp(1.0, -offset_exponent(m))  # exact: a few dozen bits at most
    e = xe + ye
    carry = int(s)  # 0, 1 or 2: what the integer adder carries into the exponent field
    s -= carry
    e += carry
    if e > emax:
        return math.copysign(math.inf, sign)
    if e < emin:
        return math.copysign(0.0, sign)
    return math.copysign(math.ldexp(1.0 + s, e), sign)


def lmul_reference_bits(a: int, b: int, fmt: str = "float32", mantissa: int | None = None) -> int:
    """:func:`lmul_reference` on bit patterns: the bit pattern of the result in ``fmt``."""
    return to_bits(lmul_reference(from_bits(a, fmt), from_bits(b, fmt), fmt, mantissa), fmt)
