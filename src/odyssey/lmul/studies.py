"""The two L-Mul studies: how precise is it, and what does it do to a language model.

**Precision** (:func:`precision_study`). Pairs ``(x, y)`` of float32 inputs from two
documented distributions:

- ``normal``: x, y ~ N(0, 1), independent;
- ``log-uniform``: ``|x| = 2^u``, ``u ~ U[lo, hi)`` (default ``[-6, 8)``, inside
  float8 e4m3's normal range), random sign;

and the relative error ``|p - x*y| / |x*y|`` (``x*y`` exact, in float64) of:

- ``L-Mul m``: :func:`odyssey.lmul.kernels.lmul` with the mantissas truncated to
  ``m`` bits, for each ``m`` and the native 23;
- ``fp8 e4m3`` / ``fp8 e5m2``: both inputs rounded (to nearest even, as torch casts)
  to ``torch.float8_e4m3fn`` / ``torch.float8_e5m2``, then multiplied exactly.

The verdict checks the paper's two claims on each distribution: L-Mul with m = 4 is
about as precise as e4m3 (mean relative errors within ``comparable_ratio``, or
better), and L-Mul with m = 3 is more precise than e5m2 (lower mean relative error).

**Model** (:func:`evaluate_lmul`). Perplexity of a model on domain (and general) text,
exact and with L-Mul products (:mod:`odyssey.lmul.patch`), and the energy of one
forward pass from counted operations (:mod:`odyssey.lmul.energy_model`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from odyssey.lmul.config import LMulEvalConfig, PrecisionConfig

NATIVE = 23


def _distributions(cfg: PrecisionConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(cfg.seed)
    n = cfg.samples
    normal = (torch.randn(n, generator=gen), torch.randn(n, generator=gen))
    lo, hi = cfg.log2_range

    def log_uniform():
        mag = torch.exp2(lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64))
        sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
        return (sign * mag).float()

    return {"normal": normal, "log-uniform": (log_uniform(), log_uniform())}


def _errors(approx: torch.Tensor, exact: torch.Tensor) -> dict:
    rel = (approx.double() - exact).abs() / exact.abs()
    return {"mean": float(rel.mean()), "median": float(rel.median()), "max": float(rel.max())}


def precision_study(cfg: PrecisionConfig | None = None) -> dict:
    """Relative errors of L-Mul at each mantissa width and of fp8 products, with a verdict
    on the paper's claims. Returns ``{"config", "distributions": {name: {method: errors}},
    "verdict": [...]}``.

    >>> study = precision_study(PrecisionConfig(samples=10_000))
    >>> study["distributions"]["normal"]["L-Mul m=4"]["mean"]
    """
    from odyssey.lmul.kernels import lmul

    cfg = cfg or PrecisionConfig()
    widths = sorted(set(cfg.mantissas) | {NATIVE})
    results: dict[str, dict[str, dict]] = {}
    for name, (x, y) in _distributions(cfg).items():
        keep = (x != 0) & (y != 0)
        x, y = x[keep], y[keep]
        exact = x.double() * y.double()
        rows = {f"L-Mul m={m}": _errors(lmul(x, y, m), exact) for m in widths}
        for label, dtype in (("fp8 e4m3", torch.float8_e4m3fn), ("fp8 e5m2", torch.float8_e5m2)):
            rows[label] = _errors(x.to(dtype).double() * y.to(dtype).double(), exact)
        results[name] = rows
    return {"config": cfg.model_dump(mode="json"), "distributions": results,
            "verdict": verdict(results, cfg.comparable_ratio)}


def verdict(results: dict[str, dict[str, dict]], comparable_ratio: float = 1.5) -> list[dict]:
    """The paper's two claims, checked on each distribution by mean relative error."""
    out = []
    for name, rows in results.items():
        l4, e4m3 = rows["L-Mul m=4"]["mean"], rows["fp8 e4m3"]["mean"]
        ratio = l4 / e4m3
        ok = ratio <= comparable_ratio
        out.append({"claim": "L-Mul m=4 is about as precise as fp8 e4m3", "distribution": name,
                    "holds": ok, "lmul": l4, "fp8": e4m3, "ratio": ratio,
                    "text": f"{'confirmed' if ok else 'refuted'} on {name}: mean relative error "
                            f"{l4:.4f} (L-Mul m=4) vs {e4m3:.4f} (e4m3), ratio {ratio:.2f} "
                            f"({'within' if ok else 'beyond'} {comparable_ratio:g})"})
        l3, e5m2 = rows["L-Mul m=3"]["mean"], rows["fp8 e5m2"]["mean"]
        ok = l3 < e5m2
        out.append({"claim": "L-Mul m=3 is more precise than fp8 e5m2", "distribution": name,
                    "holds": ok, "lmul": l3, "fp8": e5m2, "ratio": l3 / e5m2,
                    "text": f"{'confirmed' if ok else 'refuted'} on {name}: mean relative error "
                            f"{l3:.4f} (L-Mul m=3) vs {e5m2:.4f} (e5m2)"})
    return out


# --- the model study ----------------------------------------------------------------

@dataclass
class LMulEvalResult:
    """What `odyssey lmul evaluate` measured."""

    model: str
    data: str
    where: str
    mantissa: int
    dtype: str
    domain: dict  # {"exact": summary, "lmul": summary, "delta_ppl_pct", "delta_bpb", "seconds"}
    general: dict | None
    energy: dict  # forward_energy() of one forward pass of seq_len tokens
    seq_len: int
    calls: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _compare(model, tokenizer, documents, cfg: LMulEvalConfig) -> tuple[dict, dict]:
    from odyssey.evaluate.run import evaluate_documents
    from odyssey.lmul.patch import lmul_patched

    t0 = time.perf_counter()
    exact = evaluate_documents(model, tokenizer, documents, cfg.eval)
    t1 = time.perf_counter()
    with lmul_patched(model, cfg.where, cfg.mantissa) as state:
        approx = evaluate_documents(model, tokenizer, documents, cfg.eval)
    t2 = time.perf_counter()
    _check_patched(model, cfg.where, state)
    diffs = [float(abs(a.astype("float64") - b.astype("float64")).mean())
             for a, b in zip(approx.nll, exact.nll, strict=True) if len(a)]
    return {
        "exact": exact.summary(), "lmul": approx.summary(),
        "delta_ppl_pct": 100.0 * (approx.perplexity / exact.perplexity - 1.0),
        "delta_bpb": approx.bits_per_byte - exact.bits_per_byte,
        "mean_abs_token_nll_change": sum(diffs) / max(1, len(diffs)),
        "seconds": {"exact": t1 - t0, "lmul": t2 - t1},
    }, {"linear": state.linear_calls, "attention": state.attention_calls}


def _check_patched(model, where: str, state) -> None:
    from odyssey.errors import ModelError

    if where in ("attention", "all") and state.attention_calls == 0:
        raise ModelError(f"{type(model).__name__}'s attention never called the L-Mul attention function",
                         "this model does not use transformers' attention interface; use --where linear")
    if where in ("linear", "all") and state.linear_calls == 0:
        raise ModelError(f"{type(model).__name__} has no nn.Linear or Conv1D layer to patch",
                         "use --where attention")


def evaluate_lmul(model: str, data: str, cfg: LMulEvalConfig | None = None, *, general: str | None = None,
                  revision: str | None = None, allow_pickle: bool = False,
                  trust_remote_code: bool = False) -> LMulEvalResult:
    """Perplexity of ``model`` on ``data`` (and ``general``) exact and with L-Mul products
    where ``cfg.where`` says, and the energy of one forward pass of a full window.

    >>> r = evaluate_lmul("runs/base/model", "world/domains/wiki-arts:test",
    ...                   LMulEvalConfig(where="all", mantissa=4))
    >>> r.domain["delta_ppl_pct"], r.energy["saving"]
    """
    from odyssey.corpora.store import load_documents
    from odyssey.errors import ConfigError
    from odyssey.evaluate.run import resolve_window
    from odyssey.lmul.energy_model import forward_energy
    from odyssey.lmul.kernels import Spec, format_of
    from odyssey.lmul.patch import count_forward
    from odyssey.models import load_model, load_tokenizer, max_context

    cfg = cfg or LMulEvalConfig()
    tokenizer = load_tokenizer(model, revision=revision, trust_remote_code=trust_remote_code)
    lm = load_model(model, revision=revision, dtype=cfg.eval.dtype, device=cfg.eval.device,
                    allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    weight_dtype = next(lm.parameters()).dtype
    try:
        mantissa = Spec(format_of(weight_dtype), cfg.mantissa).m
    except (TypeError, ValueError) as e:
        raise ConfigError(f"L-Mul: {e}", "choose --mantissa within the model dtype's mantissa bits") from e
    domain, calls = _compare(lm, tokenizer, load_documents(data, default_split="test"), cfg)
    general_result = None
    if general:
        general_result, _ = _compare(lm, tokenizer, load_documents(general, default_split="test"), cfg)
    seq_len, _ = resolve_window(cfg.eval, max_context(lm))
    lmul_on = {"linear", "attention"} if cfg.where == "all" else {cfg.where}
    energy = forward_energy(count_forward(lm, seq_len), lmul_on, cfg.energy, cfg.precision)
    return LMulEvalResult(model=str(model), data=str(data), where=cfg.where, mantissa=mantissa,
                          dtype=str(weight_dtype).removeprefix("torch."), domain=domain, general=general_result,
                          energy=energy, seq_len=seq_len, calls=calls)
