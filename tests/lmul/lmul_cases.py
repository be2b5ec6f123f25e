"""Operands and bitwise comparison shared by the L-Mul matrix-product tests (CPU kernel
and Triton kernel)."""

import torch


def same_bits(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Bitwise equality, every NaN counting as equal to any NaN (a GPU's float addition
    returns its canonical NaN, the CPU the first operand's)."""
    got, want = got.cpu(), want.cpu()
    nan = torch.isnan(want)
    if got.shape != want.shape or not torch.equal(torch.isnan(got), nan):
        return False
    return torch.equal(got[~nan].view(torch.int32), want[~nan].view(torch.int32))


def operands(M, K, N, dtype, seed=0, zeros=0.1):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(M, K, generator=gen) * 2.0 ** torch.randint(-3, 4, (M, K), generator=gen)
    b = torch.randn(K, N, generator=gen)
    a[torch.rand(M, K, generator=gen) < zeros] = 0.0
    b[torch.rand(K, N, generator=gen) < zeros] = -0.0
    return a.to(dtype), b.to(dtype)
