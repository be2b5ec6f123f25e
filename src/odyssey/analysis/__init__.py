"""Analyses of what adaptation did and why: token-level attribution of a change in loss
(:mod:`~odyssey.analysis.tokens`, :mod:`~odyssey.analysis.categories`,
:mod:`~odyssey.analysis.token_html`) and the similarity of a corpus to the base model's
pretraining data (:mod:`~odyssey.analysis.similarity`).

The similarity entry point is ``odyssey.analysis.similarity.similarity``; it is not
re-exported here, where its name would hide the module of the same name.
"""

from odyssey.analysis.categories import CATEGORIES, categorize, classify
from odyssey.analysis.config import SimilarityConfig, TokensConfig
from odyssey.analysis.similarity import MEASURES, ReferenceProfile, build_reference
from odyssey.analysis.token_html import render_token_html
from odyssey.analysis.tokens import Attribution, attribute

__all__ = ["CATEGORIES", "MEASURES", "Attribution", "ReferenceProfile", "SimilarityConfig", "TokensConfig",
           "attribute", "build_reference", "categorize", "classify", "render_token_html"]
