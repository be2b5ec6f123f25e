"""Run a Hugging Face model with its matrix products computed by L-Mul.

:func:`lmul_patched` is a context manager that, on exit, leaves the model exactly
as it found it:

- ``where="linear"``: every module whose type is exactly ``torch.nn.Linear`` (the
  output head included) or transformers' GPT-2 ``Conv1D`` computes ``x @ W^T`` with
  :func:`odyssey.lmul.kernels.matmul_encoded` (its encoded weight is cached while the
  weight is unchanged); the bias is added exactly. The module's class is swapped for
  a subclass for the duration, so code that special-cases ``type(m) is nn.Linear``
  (e.g. a fast BLAS route for the output head) does not bypass the patch.
- ``where="attention"``: the model's attention implementation is switched to
  ``"odyssey_lmul"``, an eager attention (registered with transformers'
  ``AttentionInterface``, with the eager additive mask) whose ``Q K^T`` and ``P V``
  products are L-Mul; the scale, mask, softmax stay exact.
- ``where="all"``: both.

Activations are cast to the weight's dtype (float32, bfloat16 or float16) and the
products formed in that format, accumulated in float32; the output is cast back to the
activations' dtype. A model on the CPU uses the compiled CPU kernel, a model on a CUDA
GPU the Triton kernel (:mod:`odyssey.lmul.triton_kernel`, same bits). L-Mul is for
inference: a call that would need a gradient raises.

>>> with torch.inference_mode(), lmul_patched(model, where="all", mantissa=4):
...     logits = model(ids).logits
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from odyssey.errors import ModelError
from odyssey.lmul.energy_model import OpCount
from odyssey.lmul.kernels import Spec, encode_operand, format_of, lmul_matmul, matmul_encoded

ATTENTION_NAME = "odyssey_lmul"
_STATE_ATTR = "_odyssey_lmul_state"
WHERE = ("attention", "linear", "all")


class OpCounter:
    """Counts matrix-product operations by kind ("linear", "attention") as a patched
    forward runs (the wrappers below call :meth:`add`)."""

    def __init__(self):
        self.ops: dict[str, OpCount] = {}

    def add(self, kind: str, M: int, K: int, N: int, bias: bool = False) -> None:
        self.ops.setdefault(kind, OpCount()).add_matmul(M, K, N, bias)

    def as_dict(self) -> dict[str, dict]:
        return {k: asdict(v) for k, v in self.ops.items()}


@dataclass
class PatchState:
    """What the patched modules of one model share."""

    mantissa: int | None
    exact: bool = False  # count only, compute exactly (for counting operations)
    counter: OpCounter | None = None
    attention_calls: int = 0
    linear_calls: int = 0
    weights: dict = field(default_factory=dict)  # id(module) -> (version, data_ptr, Spec, encoded weight)

    def spec(self, dtype: torch.dtype) -> Spec:
        try:
            return Spec(format_of(dtype), self.mantissa)
        except (TypeError, ValueError) as e:
            raise ModelError(f"L-Mul: {e}") from e

    def encoded_weight(self, module, weight_kn: torch.Tensor, spec: Spec):
        """The encoded ``(1, K, N)`` weight, re-encoded only if the weight changed."""
        key = (module.weight._version, module.weight.data_ptr(), spec.fmt, spec.m)
        cached = self.weights.get(id(module))
        if cached is None or cached[0] != key:
            if weight_kn.is_cuda:  # (int32 tensor on the GPU, has inf/NaN) for the Triton kernel
                from odyssey.lmul.triton_kernel import encode_gpu

                cached = (key, encode_gpu(weight_kn[None], spec))
            else:
                cached = (key, encode_operand(weight_kn[None], spec))
            self.weights[id(module)] = cached
        return cached[1]


def _check_inference(*tensors: torch.Tensor) -> None:
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        raise ModelError("L-Mul products have no gradient",
                         "run the patched model under torch.no_grad() or torch.inference_mode()")
    devices = {t.device.type for t in tensors}
    if devices == {"cuda"}:
        from odyssey.lmul.triton_kernel import available

        if not available():
            raise ModelError("the L-Mul GPU kernel needs Triton, which is not installed",
                             "pip install triton (it comes with torch's CUDA builds), or load the model on the CPU")
    elif devices != {"cpu"}:
        raise ModelError(f"the L-Mul kernels run on the CPU or a CUDA GPU, not {', '.join(sorted(devices))}",
                         "load the model with device cpu or cuda")


def _matmul(a: torch.Tensor, b: torch.Tensor, mantissa: int | None) -> torch.Tensor:
    """L-Mul ``a @ b`` (float32) on the operands' device: Triton on a GPU, numba on the CPU."""
    if a.is_cuda:
        from odyssey.lmul.triton_kernel import lmul_matmul_triton

        return lmul_matmul_triton(a, b, mantissa)
    return lmul_matmul(a, b, mantissa)


def _lmul_linear(state: PatchState, module, x: torch.Tensor, weight_kn: torch.Tensor, bias) -> torch.Tensor:
    """``x @ weight_kn (+ bias)`` by L-Mul; ``weight_kn`` is (K, N)."""
    _check_inference(x, module.weight)
    state.linear_calls += 1
    K, N = weight_kn.shape
    spec = state.spec(module.weight.dtype)
    rows = x.reshape(-1, K).to(module.weight.dtype)  # (R, K)
    if rows.is_cuda:
        from odyssey.lmul.triton_kernel import encode_gpu, matmul_encoded_gpu

        rows_t, special = encode_gpu(rows.t()[None], spec)  # the kernel reads A transposed: (1, K, R)
        weight, w_special = state.encoded_weight(module, weight_kn, spec)
        y = matmul_encoded_gpu(rows_t, weight, spec, special or w_special)[0]  # (R, N) float32
    else:
        out = matmul_encoded(encode_operand(rows[None], spec), state.encoded_weight(module, weight_kn, spec), spec)
        y = torch.from_numpy(out[0])  # (R, N) float32
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], N)


class LMulLinear(torch.nn.Linear):
    """An ``nn.Linear`` whose product is L-Mul (the class a patched Linear takes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state: PatchState = getattr(self, _STATE_ATTR)
        if state.counter is not None:
            state.counter.add("linear", x.numel() // self.in_features, self.in_features, self.out_features,
                              self.bias is not None)
        if state.exact:
            return F.linear(x, self.weight, self.bias)
        return _lmul_linear(state, self, x, self.weight.t(), self.bias)


def _conv1d_class():
    from transformers.pytorch_utils import Conv1D

    class LMulConv1D(Conv1D):
        """GPT-2's ``Conv1D`` (``x @ W + b``, W is (in, out)) with an L-Mul product."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            state: PatchState = getattr(self, _STATE_ATTR)
            K, N = self.weight.shape
            if state.counter is not None:
                state.counter.add("linear", x.numel() // K, K, N, True)
            if state.exact:
                return Conv1D.forward(self, x)
            return _lmul_linear(state, self, x, self.weight, self.bias)

    return Conv1D, LMulConv1D


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, kvH, T, d) -> (B, kvH * n_rep, T, d): head h reads kv head h // n_rep."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def lmul_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention with L-Mul ``Q K^T`` and ``P V`` (transformers' attention interface).
    ``query`` is (B, H, T, d), ``key``/``value`` (B, kvH, S, d); returns (B, T, H, d), probs."""
    from transformers.models.llama.modeling_llama import eager_attention_forward

    state: PatchState | None = getattr(module, _STATE_ATTR, None)
    if state is None:  # a model left with this implementation name outside the patch
        return eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    for name in ("softcap", "s_aux", "sinks"):
        if kwargs.get(name) is not None:
            raise ModelError(f"L-Mul attention does not support {name!r} (used by this model)",
                             "use --where linear for this model")
    state.attention_calls += 1
    key = _repeat_kv(key, query.shape[1] // key.shape[1])
    value = _repeat_kv(value, query.shape[1] // value.shape[1])
    B, H, T, d = query.shape
    S = key.shape[2]
    if state.counter is not None:
        state.counter.add("attention", B * H * T, d, S)  # Q K^T
        state.counter.add("attention", B * H * T, S, d)  # P V
    if state.exact:
        scores = torch.matmul(query, key.transpose(2, 3))
    else:
        _check_inference(query, key, value)
        scores = _matmul(query, key.transpose(2, 3).to(query.dtype), state.mantissa).to(query.dtype)
    scores = scores * scaling  # (B, H, T, S)
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, :S]
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = F.dropout(probs, p=dropout, training=module.training)
    if state.exact:
        out = torch.matmul(probs, value)
    else:
        out = _matmul(probs, value.to(probs.dtype), state.mantissa).to(query.dtype)  # (B, H, T, d)
    return out.transpose(1, 2).contiguous(), probs


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if ATTENTION_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION_NAME, lmul_attention)
        # the same additive float mask as eager attention (without it no mask is built)
        AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["eager"])


@contextlib.contextmanager
def lmul_patched(model, where: str = "all", mantissa: int | None = None, *, exact: bool = False,
                 counter: OpCounter | None = None):
    """Within the block, ``model``'s products named by ``where`` are L-Mul with ``mantissa``
    bits (default: the weights' native width). ``exact=True`` computes exactly but still
    routes through the wrappers, so that ``counter`` counts every product. Yields the
    :class:`PatchState` (``linear_calls``, ``attention_calls``)."""
    if where not in WHERE:
        raise ModelError(f"unknown --where {where!r}", f"use one of {', '.join(WHERE)}")
    state = PatchState(mantissa=mantissa, exact=exact, counter=counter)
    if mantissa is not None:  # check the width against every weight dtype now, not mid-forward
        for dtype in {p.dtype for p in model.parameters() if p.is_floating_point()}:
            state.spec(dtype)
    swapped: list[tuple[torch.nn.Module, type]] = []
    tagged: list[torch.nn.Module] = []
    previous_attention = None
    try:
        for module in model.modules():
            setattr(module, _STATE_ATTR, state)
            tagged.append(module)
        if where in ("linear", "all"):
            conv1d, lmul_conv1d = _conv1d_class()
            for module in model.modules():
                cls = type(module)
                if cls is torch.nn.Linear or cls is conv1d:
                    module.__class__ = LMulLinear if cls is torch.nn.Linear else lmul_conv1d
                    swapped.append((module, cls))
        if where in ("attention", "all"):
            if not hasattr(model, "set_attn_implementation"):
                raise ModelError(f"{type(model).__name__} cannot switch its attention implementation",
                                 "use --where linear for this model")
            _register_attention()
            previous_attention = model.config._attn_implementation
            try:
                model.set_attn_implementation(ATTENTION_NAME)
            except Exception as e:  # models without attention-interface support refuse here
                previous_attention = None
                raise ModelError(f"{type(model).__name__} does not take a custom attention function ({e})",
                                 "use --where linear for this model") from e
        yield state
    finally:
        if previous_attention is not None:
            model.set_attn_implementation(previous_attention)
        for module, cls in swapped:
            module.__class__ = cls
        for module in tagged:
            with contextlib.suppress(AttributeError):
                delattr(module, _STATE_ATTR)
        state.weights.clear()


def count_forward(model, seq_len: int) -> dict[str, OpCount]:
    """The matrix-product operations of one forward pass of ``model`` over one sequence of
    ``seq_len`` tokens, counted by running it (exactly) with counting wrappers; their energy
    is :func:`odyssey.lmul.energy_model.forward_energy`."""
    counter = OpCounter()
    device = next(model.parameters()).device
    ids = torch.zeros(1, seq_len, dtype=torch.long, device=device)
    with torch.inference_mode(), lmul_patched(model, where="all", exact=True, counter=counter):
        model(input_ids=ids, use_cache=False)
    return counter.ops
