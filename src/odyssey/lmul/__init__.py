"""L-Mul: floating-point multiplication approximated by one integer addition (Luo and Sun 2024).

>>> from odyssey.lmul import lmul, lmul_matmul, lmul_patched
>>> lmul(torch.tensor([1.5]), torch.tensor([1.5]))            # elementwise, bit-level
>>> lmul_matmul(a, b, mantissa=4)                             # compiled CPU matrix product
>>> with torch.inference_mode(), lmul_patched(model, where="attention", mantissa=4):
...     model(ids)

- :mod:`odyssey.lmul.reference`: the scalar pure-Python definition (and its semantics);
- :mod:`odyssey.lmul.kernels`: vectorized elementwise L-Mul and the numba matrix product;
- :mod:`odyssey.lmul.patch`: a model's Linear layers and/or attention products by L-Mul,
  and the counting of their operations;
- :mod:`odyssey.lmul.energy_model`: energy from counted operations;
- :mod:`odyssey.lmul.studies`: the precision study and the model evaluation.

Names are imported on first use (numba and torch are slow to import).
"""

from __future__ import annotations

from odyssey.lazy import lazy_exports

_EXPORTS = {
    "lmul_reference": "odyssey.lmul.reference",
    "offset_exponent": "odyssey.lmul.reference",
    "lmul": "odyssey.lmul.kernels",
    "lmul_matmul": "odyssey.lmul.kernels",
    "lmul_patched": "odyssey.lmul.patch",
    "OpCount": "odyssey.lmul.energy_model",
    "OpCounter": "odyssey.lmul.patch",
    "count_forward": "odyssey.lmul.patch",
    "forward_energy": "odyssey.lmul.energy_model",
    "precision_study": "odyssey.lmul.studies",
    "evaluate_lmul": "odyssey.lmul.studies",
    "LMulEvalConfig": "odyssey.lmul.config",
    "OpEnergy": "odyssey.lmul.config",
    "PrecisionConfig": "odyssey.lmul.config",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
