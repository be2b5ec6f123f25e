"""A disk cache of reference profiles, so that `odyssey diagnose` and `odyssey
similarity` read a large reference corpus (and embed its chunks) once, not per call.

A profile is stored under ``$ODYSSEY_HOME/cache/references/<key>/`` as
``profile.json`` (word frequencies, chunks, counts) and ``arrays.npz`` (the Bloom
filter's bits, the chunk embeddings), loaded without pickle. The key hashes the
reference's content (its manifest's sha256 or its files') and every setting that
shapes the profile, so a changed corpus or setting builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from odyssey.analysis.config import SimilarityConfig
from odyssey.analysis.similarity import (
    BloomFilter,
    ReferenceProfile,
    build_reference,
    embed_texts,
    resolve_reference,
)
from odyssey.corpora.store import data_fingerprint
from odyssey.io import atomic_write, odyssey_home, read_json, write_json

CACHE_FORMAT = 1
# The settings that change what build_reference produces (device, progress and the data-side
# settings do not).
_PROFILE_SETTINGS = ("split", "max_bytes", "ngram_orders", "bloom_bits_log2", "bloom_hashes", "max_vocab",
                     "embeddings", "embed_model", "embed_max_chunks", "embed_chunk_words", "seed")


def cache_dir() -> Path:
    return odyssey_home() / "cache" / "references"


def reference_key(reference: str, config: SimilarityConfig) -> str | None:
    """The cache key of a reference spec under ``config``; None when its content cannot
    be fingerprinted (then it is not cached)."""
    fingerprint = data_fingerprint(reference, config.split)
    if fingerprint is None:
        return None
    settings = {k: getattr(config, k) for k in _PROFILE_SETTINGS}
    blob = json.dumps({"format": CACHE_FORMAT, "data": fingerprint, "settings": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached_reference(reference: str | os.PathLike | None = None, *, model: str | None = None,
                     config: SimilarityConfig | None = None, use_cache: bool = True) -> ReferenceProfile:
    """:func:`~odyssey.analysis.similarity.build_reference`, read from the cache when the
    same reference was profiled with the same settings before; embeddings included."""
    config = config or SimilarityConfig()
    reference, kind, verified = resolve_reference(reference, model)
    if reference is None:
        return build_reference(None, config=config)  # wordfreq's frequencies: nothing to cache
    key = reference_key(str(reference), config) if use_cache else None
    folder = cache_dir() / key if key else None
    if folder is None:
        ref = build_reference(reference, config=config)
    elif (folder / "profile.json").is_file():
        ref = load_profile(folder)
    else:
        ref = build_reference(reference, config=config)
        if config.embeddings and ref.chunks and ref.embeddings is None:
            ref.embeddings = embed_texts(ref.chunks, config)
        save_profile(ref, folder)
    ref.kind, ref.verified = kind, verified
    return ref


def save_profile(ref: ReferenceProfile, folder: Path) -> None:
    """Write a profile into ``folder`` (staged, then renamed: never a half-written cache)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays = {}
    if ref.bloom is not None:
        ref.bloom.flush()
        arrays["bloom_bits"] = ref.bloom.bits
    if ref.embeddings is not None:
        arrays["embeddings"] = np.asarray(ref.embeddings)
    with atomic_write(tmp / "arrays.npz", mode="wb", encoding=None) as f:
        np.savez(f, **arrays)
    meta = {"format": CACHE_FORMAT, "name": ref.name, "kind": ref.kind, "freq": ref.freq, "words": ref.words,
            "bytes": ref.bytes, "documents": ref.documents, "pruned_words": ref.pruned_words,
            "orders": ref.orders, "chunks": ref.chunks, "verified": ref.verified,
            "bloom": None if ref.bloom is None else {"bits_log2": ref.bloom.bits_log2, "hashes": ref.bloom.k}}
    write_json(tmp / "profile.json", meta)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_profile(folder: Path) -> ReferenceProfile:
    meta = read_json(folder / "profile.json")
    with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
        bits = arrays.get("bloom_bits")
        embeddings = arrays.get("embeddings")
    bloom = None
    if meta["bloom"] is not None and bits is not None:
        bloom = BloomFilter(meta["bloom"]["bits_log2"], meta["bloom"]["hashes"])
        bloom.bits = bits.copy()
    return ReferenceProfile(name=meta["name"], kind=meta["kind"], freq=meta["freq"], words=meta["words"],
                            bytes=meta["bytes"], documents=meta["documents"], pruned_words=meta["pruned_words"],
                            bloom=bloom, orders=list(meta["orders"]), chunks=list(meta["chunks"]),
                            embeddings=embeddings, verified=meta["verified"])
