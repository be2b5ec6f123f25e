"""Analyses of what adaptation did and why: token-level attribution of a change in loss
(:mod:`~odyssey.analysis.tokens`, :mod:`~odyssey.analysis.categories`,
:mod:`~odyssey.analysis.token_html`) and the similarity of a corpus to the base model's
pretraining data (:mod:`~odyssey.analysis.similarity`).

The similarity entry point is ``odyssey.analysis.similarity.similarity``; it is not
re-exported here, where its name would hide the module of the same name.

Names are imported on first use, so that importing a config module of this package (as
the CLI does for every command) does not import torch or scipy.
"""

from __future__ import annotations

from odyssey.lazy import lazy_exports

_EXPORTS = {
    "CATEGORIES": "odyssey.analysis.categories",
    "categorize": "odyssey.analysis.categories",
    "classify": "odyssey.analysis.categories",
    "SimilarityConfig": "odyssey.analysis.config",
    "TokensConfig": "odyssey.analysis.config",
    "MEASURES": "odyssey.analysis.similarity",
    "ReferenceProfile": "odyssey.analysis.similarity",
    "build_reference": "odyssey.analysis.similarity",
    "render_token_html": "odyssey.analysis.token_html",
    "Attribution": "odyssey.analysis.tokens",
    "attribute": "odyssey.analysis.tokens",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
