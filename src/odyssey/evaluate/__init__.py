"""Evaluate: per-token NLLs with sliding windows, perplexity and bits per byte.

>>> from odyssey.evaluate import EvalConfig, evaluate
>>> evaluate("runs/legal", "corpora/legal:test", EvalConfig(stride=512)).summary()

Names are imported on first use, so that importing the config (as the CLI does for
every command) does not import torch.
"""

from __future__ import annotations

from odyssey.lazy import lazy_exports

_EXPORTS = {
    "EvalConfig": "odyssey.evaluate.config",
    "EvalResult": "odyssey.evaluate.run",
    "evaluate": "odyssey.evaluate.run",
    "evaluate_documents": "odyssey.evaluate.run",
    "load_eval": "odyssey.evaluate.run",
    "save_eval": "odyssey.evaluate.run",
    "Window": "odyssey.evaluate.windows",
    "rolling_windows": "odyssey.evaluate.windows",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
