"""Mixing by similarity: general documents that resemble the domain added to the training text.

Replay mixes in general text drawn at random; this method spends the same budget on the
general documents nearest the domain, scored against a profile of the domain's training
text with the project's similarity measures (:mod:`odyssey.analysis.measures`):

- ``unigram``: the Jensen-Shannon divergence of a document's word unigram distribution and
  the domain's (:func:`~odyssey.analysis.measures.js_divergence`; words as
  :func:`~odyssey.analysis.similarity.words` counts them); lower is nearer. Computed over the
  document's own words only (:func:`js_to_profile`: a word the document lacks adds half its
  domain frequency), which gives the same number without a pass over the domain vocabulary
  per document;
- ``embedding``: the cosine of a document's all-MiniLM-L6-v2 embedding (its first
  ``embed_chunk_words`` words) with the mean embedding of a sample of the domain's chunks
  (:func:`~odyssey.analysis.measures.cosine_of_means`); higher is nearer.

Documents are taken nearest first until the added text reaches ``ratio`` of all training
text (UTF-8 bytes), ties in input order, and appended to the training documents before
packing, so one epoch covers the domain and the added documents once (replay's token cost
at the same ratio). Which documents were added, with their scores, goes to
``OUT/mix-similar.json``. Valid and test text are untouched.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from odyssey.adapt.mitigations.base import Mitigation, general_spec
from odyssey.config import StageConfig
from odyssey.errors import DataError
from odyssey.io import sha256_text, write_json

if TYPE_CHECKING:
    import numpy as np


class MixSimilarConfig(StageConfig):
    ratio: float = Field(0.25, gt=0, lt=1, description=(
        "share of the training text (UTF-8 bytes) taken by the added general documents, as replay's ratio"))
    measure: Literal["unigram", "embedding"] = Field("unigram", description=(
        "how a general document is compared with the domain: unigram (Jensen-Shannon divergence of word "
        "distributions) or embedding (cosine with the domain's mean all-MiniLM-L6-v2 embedding)"))
    data: str | None = Field(None, description="general text to choose from (default: the train split of `general`)")
    max_candidates: int | None = Field(None, ge=1, description=(
        "score at most this many general documents (a seeded sample; bounds the embedding time)"))
    embed_chunk_words: int = Field(128, ge=8, description="embedding: words of each document that are embedded")
    embed_max_chunks: int = Field(256, ge=2, description="embedding: domain chunks in the domain's mean embedding")


# -- scores ---------------------------------------------------------------------------------
def js_to_profile(counts: Mapping[str, int], profile: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (base 2) of the word counts of one document and a profile
    of frequencies summing to 1, reading only the document's words.

    A word the document lacks (p = 0, m = q/2) adds ``0.5 * q * log2(q / m) = 0.5 * q``, so
    those words together add half the profile's mass outside the document.
    """
    total = sum(counts.values())
    if not total:
        return 1.0
    inside = 0.0  # profile mass on the document's words
    js = 0.0
    for w, c in counts.items():
        p, q = c / total, profile.get(w, 0.0)
        m = (p + q) / 2
        js += 0.5 * p * math.log2(p / m)
        if q > 0:
            js += 0.5 * q * math.log2(q / m)
            inside += q
    return min(1.0, max(0.0, js + 0.5 * (1.0 - inside)))


def unigram_scores(domain: list[str], candidates: list[str]) -> np.ndarray:
    """Similarity of each candidate to the domain: minus the JS divergence of the unigram distributions."""
    import numpy as np

    from odyssey.analysis.similarity import words

    domain_counts: Counter[str] = Counter()
    for text in domain:
        domain_counts.update(words(text))
    total = sum(domain_counts.values())
    if not total:
        raise DataError("the domain's training text has no words to compare general text with")
    profile = {w: c / total for w, c in domain_counts.items()}
    return np.array([-js_to_profile(Counter(words(t)), profile) for t in candidates])


def embedding_scores(domain: list[str], candidates: list[str], embed: Callable[[list[str]], np.ndarray], *,
                     chunk_words: int, max_chunks: int, seed: int) -> np.ndarray:
    """Cosine of each candidate's embedding (its first ``chunk_words`` words) with the mean
    embedding of a reservoir sample of the domain's chunks."""
    import numpy as np

    from odyssey.analysis.similarity import ChunkSample

    sample = ChunkSample(max_chunks, chunk_words, seed)
    for text in domain:
        sample.add(text)
    if not sample.items:
        raise DataError("the domain's training text has no words to compare general text with")
    mean = np.asarray(embed(sample.items), np.float64).mean(0)
    heads = [" ".join(t.split()[:chunk_words]) for t in candidates]
    E = np.asarray(embed(heads), np.float64)
    norms = np.linalg.norm(E, axis=1) * np.linalg.norm(mean)
    return np.divide(E @ mean, norms, out=np.full(len(E), -1.0), where=norms > 0)


def take_nearest(scores: np.ndarray, sizes: np.ndarray, budget: float) -> list[int]:
    """Indices by falling score (ties in input order) until their sizes reach ``budget``."""
    import numpy as np

    chosen, total = [], 0
    for i in np.argsort(-scores, kind="stable"):
        if total >= budget:
            break
        chosen.append(int(i))
        total += int(sizes[i])
    return chosen


def budget_bytes(domain_bytes: int, ratio: float) -> float:
    """Bytes of added text that make ``ratio`` of domain + added text."""
    return domain_bytes * ratio / (1 - ratio)


# -- the method -------------------------------------------------------------------------------
class MixSimilarMethod(Mitigation):
    """Appends the general documents nearest the domain to the training documents."""

    name = "mix-similar"
    section = "mix_similar"
    Config = MixSimilarConfig
    summary = "general documents nearest the domain (unigram or embedding similarity) added at a share of text"
    needs_general = True

    def documents(self, docs: list[dict], accelerator) -> list[dict]:
        import numpy as np

        from odyssey.corpora.store import load_documents

        c = self.cfg
        spec = general_spec(self.ctx.cfg, c.data)
        pool = load_documents(spec, default_split="train")
        known = self._domain_texts(docs)
        before = len(pool)
        pool = [d for d in pool if sha256_text(d["text"]) not in known]
        excluded = before - len(pool)
        if c.max_candidates is not None and len(pool) > c.max_candidates:
            keep = np.sort(np.random.default_rng([self.ctx.seed, 0x51A1]).choice(len(pool), c.max_candidates,
                                                                                  replace=False))
            pool = [pool[i] for i in keep]
        # The profile is the domain's own text: rewrites another method added (rephrase) are not.
        domain = [d["text"] for d in docs if "rephrased_from" not in (d.get("meta") or {})]
        texts = [d["text"] for d in pool]
        scores = self._scores(domain, texts)
        sizes = np.array([len(t.encode("utf-8")) for t in texts])
        domain_bytes = sum(len(t.encode("utf-8")) for t in domain)
        chosen = take_nearest(scores, sizes, budget_bytes(domain_bytes, c.ratio))
        added = [{**pool[i], "meta": {**(pool[i].get("meta") or {}), "added_by": self.name,
                                      "similarity": float(scores[i])}} for i in chosen]
        added_bytes = int(sizes[chosen].sum()) if chosen else 0
        info = {"measure": c.measure, "data": spec, "candidates": len(pool), "excluded_as_domain_text": excluded, "added_documents": len(added),
                "added_bytes": added_bytes, "domain_bytes": domain_bytes,
                "share": round(added_bytes / max(1, added_bytes + domain_bytes), 4),
                "similarity_added": [float(scores[chosen].min()), float(scores[chosen].max())] if chosen else None,
                "similarity_all": [float(scores.min()), float(scores.max())]}
        self.ctx.info["mix_similar"] = info
        if accelerator.is_main_process:
            write_json(self.ctx.out / "mix-similar.json", {
                **info, "added": [{"id": pool[i].get("id"), "similarity": float(scores[i]),
                                   "bytes": int(sizes[i])} for i in chosen]})
        return [*docs, *added]

    def _domain_texts(self, docs: list[dict]) -> set[str]:
        """Hashes of the domain's texts: its training documents (not added twice) and, for a
        corpus directory, its valid and test documents (never added: that would leak them)."""
        from odyssey.corpora.store import is_corpus_dir, iter_split, parse_data_spec

        known = {sha256_text(d["text"]) for d in docs}
        path, _ = parse_data_spec(self.ctx.cfg.data)
        if is_corpus_dir(path):
            for split in ("valid", "test"):
                if (path / split).is_dir():
                    known.update(sha256_text(d["text"]) for d in iter_split(path, split))
        return known

    def _scores(self, domain: list[str], texts: list[str]) -> np.ndarray:
        c = self.cfg
        if c.measure == "unigram":
            return unigram_scores(domain, texts)
        from odyssey.analysis.config import SimilarityConfig
        from odyssey.analysis.similarity import embed_texts

        sim = SimilarityConfig(embed_chunk_words=c.embed_chunk_words, embed_max_chunks=c.embed_max_chunks,
                               seed=self.ctx.seed)
        return embedding_scores(domain, texts, lambda t: embed_texts(t, sim), chunk_words=c.embed_chunk_words,
                                max_chunks=c.embed_max_chunks, seed=self.ctx.seed)
