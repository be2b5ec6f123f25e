"""Tokenize documents and pack them into fixed-length training blocks.

Documents are joined with the tokenizer's EOS token, which also opens the stream,
so every document is read after an EOS exactly as evaluation reads it::

    [eos] d1 d1 d1 [eos] d2 d2 [eos] d3 ...   ->   | block 0 | block 1 | ... (remainder dropped)

Packed blocks are cached as ``.npy`` files (memory-mapped on load) keyed by the
tokenizer, the block size and the hash of the texts, so a rerun or a second run on
the same data does not tokenize again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odyssey.errors import DataError
from odyssey.io import atomic_write, odyssey_home


def default_cache_dir() -> Path:
    return odyssey_home() / "cache" / "blocks"


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything that decides the token ids: vocabulary, merges, specials."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    desc = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{desc}|eos={tokenizer.eos_token_id}".encode()).hexdigest()[:16]


def texts_fingerprint(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()[:16]


def tokenize_texts(texts: Sequence[str], tokenizer, batch: int = 256) -> list[list[int]]:
    """Token ids of each text, with no special tokens added."""
    out: list[list[int]] = []
    for i in range(0, len(texts), batch):
        out.extend(tokenizer(list(texts[i:i + batch]), add_special_tokens=False)["input_ids"])
    return out


def pack_token_lists(token_lists: Sequence[Sequence[int]], eos_id: int, block_size: int) -> np.ndarray:
    """Join token lists with EOS (also first) and cut into ``(n_blocks, block_size)`` int32."""
    total = sum(len(t) + 1 for t in token_lists)
    stream = np.empty(total, dtype=np.int32)
    pos = 0
    for ids in token_lists:
        stream[pos] = eos_id
        stream[pos + 1: pos + 1 + len(ids)] = ids
        pos += len(ids) + 1
    n_blocks = total // block_size
    if n_blocks == 0:
        raise DataError(f"the training text has {total} tokens, fewer than one block of {block_size}",
                        "add data or lower train.block_size")
    return stream[: n_blocks * block_size].reshape(n_blocks, block_size)


def pack_documents(documents: Sequence[dict], tokenizer, block_size: int, *,
                   cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Packed ``(n_blocks, block_size)`` token blocks of ``documents``, cached on disk.

    >>> blocks = pack_documents(docs, tokenizer, block_size=256)
    """
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no EOS token to join documents with")
    texts = [d["text"] for d in documents]
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    key = f"{tokenizer_fingerprint(tokenizer)}-{texts_fingerprint(texts)}-{block_size}.npy"
    path = cache / key
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            pass  # a damaged cache entry is rebuilt below
    blocks = pack_token_lists(tokenize_texts(texts, tokenizer), tokenizer.eos_token_id, block_size)
    try:
        with atomic_write(path, "wb") as f:
            np.save(f, blocks)
    except Exception:  # the cache is an optimization; a read-only home must not stop training
        return blocks
    return np.load(path, mmap_mode="r")
