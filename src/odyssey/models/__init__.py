"""Models: load any Hugging Face causal LM and tokenizer safely: hub ids, local and run
directories, ``.gguf`` files, peft adapters and the short names of
:mod:`odyssey.models.catalog`.

Names are imported on first use, so that listing the catalog (``odyssey models``) does
not import torch.
"""

from __future__ import annotations

from odyssey.lazy import lazy_exports

_EXPORTS = {
    "check_tokenizer_fits": "odyssey.models.load",
    "load_model": "odyssey.models.load",
    "load_tokenizer": "odyssey.models.load",
    "max_context": "odyssey.models.load",
    "model_source": "odyssey.models.gguf",
    "resolve_source": "odyssey.models.resolve",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
