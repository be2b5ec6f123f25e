"""Energy of matrix products from counted operations, exact and with L-Mul.

A matrix product ``(M, K) @ (K, N)`` does ``M*K*N`` multiplications and
``M*(K-1)*N`` additions (a bias adds ``M*N`` more). Exact arithmetic pays a float
multiplication and a float addition per term; L-Mul replaces each multiplication by
one integer addition and keeps the float accumulation (Luo and Sun 2024, section 3.3)::

    E_exact = mults * E(mul) + adds * E(add)
    E_lmul  = mults_lmul * E(int32 add) + mults_other * E(mul) + adds * E(add)

with ``E(mul), E(add)`` the float32 (or float16) figures of an editable table
(:class:`odyssey.lmul.config.OpEnergy`, Horowitz 2014 by default). Only matrix
products are counted: elementwise work (softmax, norms, activations, the attention
scale) is left out of both sides. The operations are counted while the model runs
(:class:`odyssey.lmul.patch.OpCounter`, :func:`odyssey.lmul.patch.count_forward`).

>>> ops = {"linear": OpCount(mults=8, adds=6)}
>>> forward_energy(ops, lmul_on={"linear"}, table=OpEnergy())["lmul_pj"]   # 8*0.1 + 6*0.9
6.2
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from odyssey.lmul.config import OpEnergy


@dataclass
class OpCount:
    """Multiplications and additions of the matrix products of one kind."""

    mults: int = 0
    adds: int = 0

    def add_matmul(self, M: int, K: int, N: int, bias: bool = False) -> None:
        self.mults += M * K * N
        self.adds += M * max(0, K - 1) * N + (M * N if bias else 0)


def forward_energy(ops: dict[str, OpCount], lmul_on: set[str], table: OpEnergy,
                   precision: str = "fp32") -> dict:
    """Energy (picojoules) of the counted products, exact and with L-Mul on the kinds in
    ``lmul_on``; ``saving`` is ``1 - lmul / exact``."""
    mul = table.fp32_mul if precision == "fp32" else table.fp16_mul
    add = table.fp32_add if precision == "fp32" else table.fp16_add
    exact = sum(c.mults * mul + c.adds * add for c in ops.values())
    lmul = sum(c.mults * (table.int32_add if kind in lmul_on else mul) + c.adds * add for kind, c in ops.items())
    return {"exact_pj": exact, "lmul_pj": lmul, "saving": 1.0 - lmul / exact if exact else 0.0,
            "mults": sum(c.mults for c in ops.values()), "adds": sum(c.adds for c in ops.values()),
            "by_kind": {k: asdict(v) for k, v in ops.items()}, "precision": precision,
            "table": table.model_dump()}
