"""The compiled L-Mul matrix product equals elementwise L-Mul summed in float32, k ascending,
bit for bit, for every format, with zeros and special values, and across column tiles."""

import numpy as np
import pytest
import torch
from lmul_cases import operands, same_bits

from odyssey.lmul.kernels import _TILE, lmul, lmul_matmul, lmul_sum_reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mantissa", [None, 4, 2])
def test_matmul_equals_elementwise_then_ordered_sum(dtype, mantissa):
    a, b = operands(7, 33, _TILE + 19, dtype)  # two column tiles, the second partial
    got = lmul_matmul(a, b, mantissa)
    assert got.dtype == torch.float32 and got.shape == (7, _TILE + 19)
    assert same_bits(got, lmul_sum_reference(a, b, mantissa))


def test_matmul_is_not_the_exact_product_but_close():
    a, b = operands(16, 64, 16, torch.float32, zeros=0)
    exact, approx = a @ b, lmul_matmul(a, b)
    assert not torch.equal(exact, approx)
    # L-Mul's mean relative error per product is a few percent; sums partly average it out
    assert (approx - exact).abs().mean() < 0.1 * exact.abs().mean()


def test_special_values_in_either_operand():
    a, b = operands(5, 9, 6, torch.float32, seed=1)
    a[0, 0], a[1, 3], a[2, 2] = float("inf"), float("nan"), -float("inf")
    b[4, 1], b[5, 5], b[2, 0] = float("inf"), float("nan"), 0.0
    b[0, 3] = 3e38  # inf * 3e38 stays inf; 3e38 * a[0, ...] overflows
    a[3, 0] = 0.0  # 0 * inf = NaN in row 3, column 1
    want = lmul_sum_reference(a, b)
    assert same_bits(lmul_matmul(a, b), want)
    assert torch.isnan(want).any() and torch.isinf(want).any()


def test_float16_products_overflow_in_float16():
    a = torch.full((1, 2), 300.0, dtype=torch.float16)
    b = torch.full((2, 1), 300.0, dtype=torch.float16)  # 90000 > 65504
    assert torch.isinf(lmul(a[0], b[:, 0])).all()
    assert torch.isinf(lmul_matmul(a, b)).all()


def test_batched_broadcasting_matches_2d():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(2, 3, 4, 5, generator=gen)
    b = torch.randn(5, 6, generator=gen)
    out = lmul_matmul(a, b, 3)
    assert out.shape == (2, 3, 4, 6)
    for i in range(2):
        for j in range(3):
            assert torch.equal(out[i, j], lmul_matmul(a[i, j], b, 3))
    with pytest.raises(ValueError):
        lmul_matmul(a, torch.randn(4, 6))
    with pytest.raises(TypeError):
        lmul_matmul(a, b.half())


def test_accumulation_order_is_k_ascending():
    """Sums whose value depends on the order: 1e8 + 1 + ... only survives if added first."""
    a = torch.tensor([[1.0, 1.0, 1.0]])
    b = torch.tensor([[2.0**27], [-(2.0**27)], [1.0]])  # products are exact powers of two * (1 + 1/16)
    p = lmul(a[0], b[:, 0])
    want = np.float32(np.float32(np.float32(0) + np.float32(p[0])) + np.float32(p[1])) + np.float32(p[2])
    assert lmul_matmul(a, b).item() == float(want)
