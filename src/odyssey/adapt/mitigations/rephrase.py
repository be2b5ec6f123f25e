"""Rephrasing: a generator model rewrites training documents, and the run trains on a mix
of original and rephrased text (WRAP: Maini et al. 2024, "Rephrasing the Web").

A seeded sample of at most ``max_documents`` training documents is cut into chunks of about
``chunk_words`` words (at sentence ends where it can; the first ``max_chunks`` of each
document), and the generator rewrites each chunk in each of ``styles`` with the paper's
prompts (encyclopedic: "as in sentences on Wikipedia"; question-and-answer: "Question:"
followed by "Answer:"), through its chat template when it has one (an instruction-tuned
model such as the offline default ``smollm2-135m``, SmolLM2-135M-Instruct), else as a plain
prompt. The rewritten chunks of a document, joined, are one new training document; with
``keep_original`` the originals stay beside them, else they replace them.

Generation is slow on a CPU (measured tokens per second are recorded), so every rewrite is
cached under ``$ODYSSEY_HOME/cache/rephrase`` by the sha256 of (chunk text, generator
fingerprint: the sha256 of its weights file(s), style and prompt, generation settings):
reruns, resumed runs and other runs on the same documents reuse it. The rewrites a run
trained on go to ``OUT/rephrased.jsonl`` (read first when resuming) and the counts to
``OUT/rephrase.json``. Valid and test text are never rephrased.

With ``batch_size`` 1 (the default) and greedy decoding each rewrite is a function of its
cache key alone; a larger batch is faster but pads prompts together, which may change the
last bits of the logits and so, rarely, a greedy choice.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from odyssey.adapt.mitigations.base import Mitigation
from odyssey.config import StageConfig
from odyssey.energy import measure_phase
from odyssey.errors import ConfigError
from odyssey.io import (
    atomic_write,
    odyssey_home,
    read_json,
    read_jsonl,
    sha256_text,
    write_json,
    write_jsonl,
)
from odyssey.progress import progress_bar

if TYPE_CHECKING:
    import torch

CACHE_FORMAT = 1
SAMPLE_STREAM = 0x4E94  # seeds the choice of documents apart from other draws
# The WRAP prompts (Maini et al. 2024, appendix), one per style.
STYLES = {
    "encyclopedic": "For the following paragraph give me a diverse paraphrase of the same in high quality "
                    "English language as in sentences on Wikipedia.",
    "qa": 'Convert the following paragraph into a conversational format with multiple tags of "Question:" '
          'followed by "Answer:".',
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


class RephraseConfig(StageConfig):
    generator: str = Field("smollm2-135m", description=(
        "causal LM that rewrites the documents: a name from `odyssey models`, a local model or a hub id"))
    styles: list[Literal["encyclopedic", "qa"]] = Field(
        default_factory=lambda: ["encyclopedic"], min_length=1,
        description="rewriting styles (WRAP's prompts): encyclopedic (Wikipedia-like prose), qa (questions and answers)")
    max_documents: int | None = Field(16, ge=1, description=(
        "rephrase at most this many training documents (a seeded sample; none: all): bounds the generation time"))
    max_chunks: int = Field(2, ge=1, description="chunks rewritten per document (its first ones)")
    chunk_words: int = Field(150, ge=8, description="words per chunk given to the generator")
    keep_original: bool = Field(True, description=(
        "train on the originals and the rewrites (true) or on the rewrites in place of their originals (false)"))
    max_new_tokens: int = Field(256, ge=1, description="longest rewrite of a chunk, in generator tokens")
    temperature: float = Field(0.0, ge=0, description="sampling temperature (0: greedy decoding)")
    top_p: float = Field(0.9, gt=0, le=1, description="nucleus sampling mass (only when temperature > 0)")
    repetition_penalty: float = Field(1.1, ge=1, description="HF generate's repetition penalty (small models loop without it)")
    batch_size: int = Field(1, ge=1, description="chunks per generate call (see the module docs on batching)")

    @field_validator("styles")
    @classmethod
    def _once(cls, v):
        return list(dict.fromkeys(v))

    def settings(self, seed: int) -> dict:
        """What shapes a rewrite besides the text, the generator and the style (in the cache key)."""
        out = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
               "temperature": self.temperature, "dtype": "float32"}
        if self.temperature > 0:
            out.update(top_p=self.top_p, seed=seed)
        return out


# -- text ----------------------------------------------------------------------------------
def chunk_text(text: str, chunk_words: int, max_chunks: int) -> list[str]:
    """The first ``max_chunks`` chunks of about ``chunk_words`` words: whole sentences (or
    paragraphs) packed in order, a longer sentence cut by words."""
    pieces: list[list[str]] = []
    for sentence in _SENTENCE_END.split(text):
        ws = sentence.split()
        pieces += [ws[i:i + chunk_words] for i in range(0, len(ws), chunk_words)]
    chunks: list[list[str]] = []
    for ws in pieces:
        if chunks and len(chunks[-1]) + len(ws) <= chunk_words:
            chunks[-1] += ws
        elif len(chunks) < max_chunks:
            chunks.append(list(ws))
        else:
            break
    return [" ".join(c) for c in chunks if c]


def build_prompt(tokenizer, style: str, chunk: str) -> str:
    """The generator's prompt: its chat template around one user turn, else a plain prompt."""
    request = f"{STYLES[style]}\n\n{chunk}"
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": request}], add_generation_prompt=True,
                                             tokenize=False)
    return f"{request}\n\nRewritten:\n"


def choose_documents(n: int, max_documents: int | None, seed: int) -> list[int]:
    """Indices of the documents to rephrase: all, or a seeded sample in corpus order."""
    import numpy as np

    if max_documents is None or max_documents >= n:
        return list(range(n))
    return sorted(int(i) for i in np.random.default_rng([seed, SAMPLE_STREAM]).choice(n, max_documents,
                                                                                       replace=False))


# -- the generator ---------------------------------------------------------------------------
def generator_fingerprint(spec: str) -> str:
    """What identifies the generator's weights: the sha256 of its .gguf or safetensors files
    (an adapter's and its base's), or, for a hub id not on disk, the id and revision."""
    from odyssey.io import sha256_file
    from odyssey.models import resolve_source

    src = resolve_source(spec)
    if src.kind == "hub":
        return f"hub:{src.path}"
    path = Path(src.path)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f).encode())
    if src.base is not None:
        h.update(generator_fingerprint(src.base.spec).encode())
    return h.hexdigest()


def cache_key(chunk: str, generator: str, style: str, settings: dict) -> str:
    blob = {"format": CACHE_FORMAT, "text": sha256_text(chunk), "generator": generator, "style": style,
            "prompt": STYLES[style], "settings": settings}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def cache_dir() -> Path:
    return odyssey_home() / "cache" / "rephrase"


class Generator:
    """The generator model, loaded on first use, and the rewrites it made (tokens, seconds)."""

    def __init__(self, cfg: RephraseConfig, device, seed: int):
        self.cfg, self.device, self.seed = cfg, device, seed
        self.model = self.tokenizer = None
        self.tokens = 0  # generated
        self.forwarded = 0  # through the model: prompts once, then each generated token (KV cache)
        self.seconds = 0.0

    def _load(self) -> None:
        from odyssey.models import load_model, load_tokenizer, max_context

        self.tokenizer = load_tokenizer(self.cfg.generator)
        self.tokenizer.padding_side = "left"  # generation continues at the right end of every prompt
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = load_model(self.cfg.generator, device=self.device).eval()
        self.context = max_context(self.model)

    def rewrite(self, items: list[tuple[str, str]]) -> list[tuple[str, int, float]]:
        """(text, generated tokens, seconds) of each (style, chunk), generated in one call."""
        import torch

        if self.model is None:
            self._load()
        c, tok = self.cfg, self.tokenizer
        enc = tok([build_prompt(tok, style, chunk) for style, chunk in items], return_tensors="pt", padding=True,
                  add_special_tokens=not getattr(tok, "chat_template", None)).to(self.device)
        longest = int(enc["input_ids"].shape[1]) + c.max_new_tokens
        if longest > self.context:
            raise ConfigError(f"rephrase: a prompt plus max_new_tokens is {longest} tokens, more than the "
                              f"generator's context of {self.context}",
                              "lower mitigation.rephrase.chunk_words or max_new_tokens, or use another generator")
        sample = c.temperature > 0
        if sample:  # the draws are a function of the seed and of the chunks in this call
            torch.manual_seed(_sample_seed(self.seed, items))
        started = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=c.max_new_tokens, do_sample=sample,
                                      temperature=c.temperature if sample else None,
                                      top_p=c.top_p if sample else None, top_k=None,
                                      repetition_penalty=c.repetition_penalty, pad_token_id=tok.pad_token_id)
        seconds = time.perf_counter() - started
        new = out[:, enc["input_ids"].shape[1]:]
        counts = [_generated_length(row, tok.eos_token_id, tok.pad_token_id) for row in new]
        self.tokens += sum(counts)
        self.forwarded += int(enc["attention_mask"].sum()) + sum(counts)
        self.seconds += seconds
        texts = tok.batch_decode(new, skip_special_tokens=True)
        return [(t.strip(), n, seconds / len(items)) for t, n in zip(texts, counts, strict=True)]

    def close(self) -> None:
        self.model = None
        gc.collect()


def _sample_seed(seed: int, items: list[tuple[str, str]]) -> int:
    blob = json.dumps([seed, items]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


def _generated_length(row: torch.Tensor, eos: int | None, pad: int | None) -> int:
    """Tokens generated in one row: up to and including the first end-of-text token."""
    ids = row.tolist()
    for i, t in enumerate(ids):
        if t in (eos, pad):
            return i + 1
    return len(ids)


# -- the method -------------------------------------------------------------------------------
class RephraseMethod(Mitigation):
    """Adds (or substitutes) the generator's rewrites of a sample of training documents."""

    name = section = "rephrase"
    Config = RephraseConfig
    summary = "a generator LM rewrites training documents (encyclopedic or Q&A style); originals kept or replaced"

    def documents(self, docs: list[dict], accelerator) -> list[dict]:
        # The main process generates and caches; the others then find every rewrite cached.
        with accelerator.main_process_first():
            rewritten, stats = self._rephrase(docs, accelerator)
        picked = {r["source_index"] for r in rewritten}
        kept = docs if self.cfg.keep_original else [d for i, d in enumerate(docs) if i not in picked]
        new_docs = [{"text": r["text"], "id": r["id"], "meta": r["meta"]} for r in rewritten]
        self.ctx.info["rephrase"] = stats
        if accelerator.is_main_process:
            write_jsonl(self.ctx.out / "rephrased.jsonl", rewritten)
            write_json(self.ctx.out / "rephrase.json", stats)
        return [*kept, *new_docs]

    def _rephrase(self, docs: list[dict], accelerator) -> tuple[list[dict], dict]:
        c, seed = self.cfg, self.ctx.seed
        fingerprint = generator_fingerprint(c.generator)
        settings = c.settings(seed)
        chosen = choose_documents(len(docs), c.max_documents, seed)
        jobs = []  # (doc index, style, chunk index, chunk, key)
        for i in chosen:
            for style in c.styles:
                for k, chunk in enumerate(chunk_text(docs[i]["text"], c.chunk_words, c.max_chunks)):
                    jobs.append((i, style, k, chunk, cache_key(chunk, fingerprint, style, settings)))
        found = self._known_rewrites()
        missing = [j for j in jobs if j[4] not in found and not _cache_file(j[4]).is_file()]
        gen = Generator(c, accelerator.device, seed)
        if missing:  # the generation's energy is a phase of the run (OUT/energy.csv)
            with measure_phase(self.ctx.out, "rephrase", accelerator=accelerator, config=self.ctx.cfg.energy) as meter, \
                    progress_bar(len(missing), f"rephrase ({c.generator})", unit="chunks") as advance:
                for start in range(0, len(missing), c.batch_size):
                    batch = missing[start:start + c.batch_size]
                    for job, (text, n, secs) in zip(batch, gen.rewrite([(j[1], j[3]) for j in batch]), strict=True):
                        _write_cache(job[4], {"text": text, "tokens": n, "seconds": round(secs, 3),
                                              "generator": c.generator, "style": job[1]})
                    advance(len(batch))
                if gen.model is not None:  # loaded on the first batch
                    meter.add_tokens(gen.model, gen.forwarded, training=False)
        gen.close()
        rewrites = {j[4]: found[j[4]] if j[4] in found else read_json(_cache_file(j[4]))["text"] for j in jobs}
        rewritten = _assemble(docs, jobs, rewrites, fingerprint, c.generator)
        stats = {"generator": c.generator, "generator_fingerprint": fingerprint, "styles": list(c.styles),
                 "settings": settings, "documents": len(chosen), "of_documents": len(docs), "chunks": len(jobs),
                 "generated_chunks": len(missing), "cached_chunks": len(jobs) - len(missing),
                 "generated_tokens": gen.tokens, "generation_seconds": round(gen.seconds, 2),
                 "tokens_per_second": round(gen.tokens / gen.seconds, 2) if gen.seconds else None,
                 "rephrased_documents": len(rewritten), "empty_rewrites": sum(1 for j in jobs if not rewrites[j[4]]),
                 "original_bytes": sum(len(docs[i]["text"].encode()) for i in chosen),
                 "rephrased_bytes": sum(len(r["text"].encode()) for r in rewritten),
                 "keep_original": c.keep_original}
        return rewritten, stats

    def _known_rewrites(self) -> dict[str, str]:
        """Rewrites this run already trained on (``OUT/rephrased.jsonl``), by cache key: a
        resumed run reads them even if the cache was cleared."""
        path = self.ctx.out / "rephrased.jsonl"
        if self.ctx.resume_from is None or not path.is_file():
            return {}
        return {ch["key"]: ch["text"] for row in read_jsonl(path) for ch in row.get("chunks", [])}


def _cache_file(key: str) -> Path:
    return cache_dir() / key[:2] / f"{key}.json"


def _write_cache(key: str, entry: dict) -> None:
    path = _cache_file(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(entry, f)


def _assemble(docs: list[dict], jobs: list[tuple], rewrites: dict[str, str], fingerprint: str,
              generator: str) -> list[dict]:
    """One new document per (document, style): its rewritten chunks joined, empty ones left out."""
    by_doc: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for i, style, _, _, key in jobs:
        by_doc.setdefault((i, style), []).append((key, rewrites[key]))
    out = []
    for (i, style), parts in by_doc.items():
        text = "\n\n".join(t for _, t in parts if t)
        if not text:
            continue
        source = docs[i]
        out.append({"text": text, "id": f"{source.get('id', i)}~{style}", "source_index": i,
                    "chunks": [{"key": k, "text": t} for k, t in parts],
                    "meta": {"rephrased_from": source.get("id"), "style": style, "generator": generator,
                             "generator_fingerprint": fingerprint}})
    return out
