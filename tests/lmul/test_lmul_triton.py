"""The Triton L-Mul matrix product equals the CPU kernel bit for bit (NaN as any NaN).

The tests marked ``gpu`` run on a CUDA device and skip without one. The same tests also
run on the CPU in Triton's interpreter (``TRITON_INTERPRET=1``, small shapes only):
``test_kernel_in_the_triton_interpreter`` starts them so, which checks the kernel's
logic bit for bit on machines without a GPU whenever Triton is installed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lmul_cases import operands, same_bits

from odyssey.lmul.kernels import _TILE, lmul, lmul_matmul

try:
    import triton  # noqa: F401

    HAVE_TRITON = True
except ImportError:
    HAVE_TRITON = False

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
ON_GPU = HAVE_TRITON and torch.cuda.is_available() and not INTERPRETING
DEVICE = "cuda" if ON_GPU else "cpu"
needs_kernel = pytest.mark.skipif(not (ON_GPU or (HAVE_TRITON and INTERPRETING)),
                                  reason="needs CUDA and Triton (or TRITON_INTERPRET=1)")
real_gpu_only = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device (not the interpreter)")


def triton_matmul(a, b, mantissa=None):
    from odyssey.lmul.triton_kernel import lmul_matmul_triton

    return lmul_matmul_triton(a.to(DEVICE), b.to(DEVICE), mantissa)


SHAPES = [(1, 1, 1), (7, 33, 37), (17, 5, 70)]  # partial tiles in both directions
if ON_GPU:  # the large-tile configuration (M * N >= 2^20) and more than one column tile of the CPU kernel
    SHAPES += [(130, 70, _TILE + 19), (1024, 16, 1024)]


@pytest.mark.gpu
@needs_kernel
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mantissa", [None, 4, 2])
def test_random_operands_match_the_cpu_kernel(shape, dtype, mantissa):
    a, b = operands(*shape, dtype)
    got = triton_matmul(a, b, mantissa)
    assert got.dtype == torch.float32 and got.device.type == DEVICE
    assert same_bits(got, lmul_matmul(a, b, mantissa))


def random_bits(shape, gen, dtype):
    """Uniformly random bit patterns: every exponent, subnormals, infs and NaNs included."""
    if dtype == torch.float32:
        return torch.randint(-2**31, 2**31, shape, generator=gen, dtype=torch.int64).to(torch.int32).view(dtype)
    return torch.randint(-2**15, 2**15, shape, generator=gen, dtype=torch.int32).to(torch.int16).view(dtype)


@pytest.mark.gpu
@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_random_bit_patterns_match(dtype):
    gen = torch.Generator().manual_seed(3)
    for mantissa in (None, 3):
        a, b = random_bits((9, 24), gen, dtype), random_bits((24, 11), gen, dtype)
        assert same_bits(triton_matmul(a, b, mantissa), lmul_matmul(a, b, mantissa))


@pytest.mark.gpu
@needs_kernel
def test_special_values_edges_and_subnormal_sums():
    f32 = torch.float32
    tiny, huge = 2.0**-126, 3.4e38
    # products at the underflow and overflow edges, sums that end subnormal, inf * 0
    a = torch.tensor([[tiny, 1.0, 2.0**-63, 1.5 * 2.0**-63, 2.0**63, 0.0, float("inf"), huge],
                      [-tiny * 3, 1e-45, float("nan"), -2.0**64, 1.0, -0.0, 1.0, -1.0]], dtype=f32)
    b = torch.tensor([[1.0, -1.0, 2.0**-63, -2.0**-63, 2.0**64, 5.0, 0.0, huge]], dtype=f32).T.repeat(1, 5)
    b[:, 1] = torch.tensor([1.5, -1.0, 2.0**-64, -(2.0**-64), 1.0, float("inf"), 1.0, 1.0])
    b[:, 2] = torch.tensor([2.0**-1, 2.0**-1, 1.0, -1.0, 2.0**63, 1.0, 1.0, 2.0])  # overflow at the edge
    b[:, 3] = -b[:, 0]
    b[:, 4] = torch.tensor([1.0, 1.0, 2.0**-62, -(2.0**-63) * 1.25, 1.0, 1.0, 1.0, 1e-45])
    for mantissa in (None, 4, 1):
        assert same_bits(triton_matmul(a, b, mantissa), lmul_matmul(a, b, mantissa))
    # float16: products past 65504 are inf, below 2^-14 are zero (the float16 range, not float32's)
    h = torch.tensor([[300.0, 2.0**-7, 255.9, 2.0**-14]], dtype=torch.float16)
    hb = torch.tensor([[300.0], [2.0**-7], [256.0], [1.0]], dtype=torch.float16)
    for m in (None, 4):
        assert same_bits(triton_matmul(h, hb, m), lmul_matmul(h, hb, m))
        assert same_bits(triton_matmul(h.T, hb.T, m), lmul_matmul(h.T, hb.T, m))


@pytest.mark.gpu
@needs_kernel
def test_accumulation_order_is_k_ascending():
    a = torch.tensor([[1.0, 1.0, 1.0]])
    b = torch.tensor([[2.0**27], [-(2.0**27)], [1.0]])
    p = lmul(a[0], b[:, 0])
    want = ((torch.zeros(()) + p[0]) + p[1]) + p[2]
    assert triton_matmul(a, b).item() == want.item() == lmul_matmul(a, b).item()


@pytest.mark.gpu
@needs_kernel
def test_batches_broadcast_and_errors():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(2, 3, 4, 5, generator=gen)
    b = torch.randn(5, 6, generator=gen)
    got = triton_matmul(a, b, 3)
    assert got.shape == (2, 3, 4, 6) and same_bits(got, lmul_matmul(a, b, 3))
    assert triton_matmul(torch.zeros(3, 0), torch.zeros(0, 2)).eq(0).all()  # K = 0: sums of nothing
    with pytest.raises(ValueError):
        triton_matmul(a, torch.randn(4, 6))
    with pytest.raises(TypeError):
        triton_matmul(a, b.half())


@pytest.mark.gpu
@real_gpu_only
def test_patched_model_on_cuda_uses_the_gpu_kernel(tiny_llama_dir):
    """A patched Linear on the GPU gives the CPU patch's bits; a whole patched model on the
    GPU runs (through the Triton kernel) and agrees with the CPU patch to float tolerance."""
    from transformers import AutoModelForCausalLM

    from odyssey.lmul.patch import lmul_patched

    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(24, 10)
    x = torch.randn(3, 7, 24, generator=gen)
    with torch.inference_mode():
        with lmul_patched(lin, where="linear", mantissa=4):
            want = lin(x)
        lin.cuda()
        with lmul_patched(lin, where="linear", mantissa=4) as state:
            got = lin(x.cuda())
    assert state.linear_calls == 1 and same_bits(got, want)

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=gen)
    with torch.inference_mode():
        with lmul_patched(model, where="all", mantissa=4):
            cpu_logits = model(ids).logits
        exact = model.cuda()(ids.cuda()).logits
        with lmul_patched(model, where="all", mantissa=4) as state:
            gpu_logits = model(ids.cuda()).logits
    assert state.linear_calls > 0 and state.attention_calls > 0
    torch.testing.assert_close(gpu_logits.cpu(), cpu_logits, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(gpu_logits, exact, atol=1e-4)  # L-Mul did change the products


@pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed")
@pytest.mark.skipif(INTERPRETING or ON_GPU, reason="runs the gpu tests in the interpreter from a CPU-only run")
def test_kernel_in_the_triton_interpreter():
    """The gpu-marked tests above, run on CPU tensors by Triton's interpreter."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(Path(__file__))],
                          env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
