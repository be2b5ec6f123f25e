"""The embedded default world: a general corpus to pretrain a small base model on,
and domains from very similar to it to very different, all built from text that
installed packages carry (:mod:`odyssey.corpora.sources`); nothing is fetched.

=========================  ===============  ==================================================
corpus                     kind             text
=========================  ===============  ==================================================
``general``                general          Wikipedia lead paragraphs of the topics *not* held
                                            out + State of the Union addresses outside the
                                            held-out era (cut into ~4 KB chunks)
``wiki-arts``              wikipedia-topic  lead paragraphs of a held-out topic: same genre
``wiki-history``           wikipedia-topic  and style as the general corpus, unseen articles
``wiki-society-and-...``   wikipedia-topic  (the paper's Wikipedia domains)
``wiki-technology``        wikipedia-topic
``sotu-1790-1816``         register         the held-out earliest era of the addresses
``licenses``               register         software licenses (legal)
``shakespeare``            register         Early Modern English drama and verse
``python-docs``            register         docstrings of the standard library
``python-source``          register         standard library source code
``general-unseen``         in-distribution  unseen documents of the general corpus's sources
                                            and topics, held out of it (a control)
``general-seen``           seen             train/valid: unseen documents of the general
                                            sources; test: documents of the general *train*
                                            split, which the base was pretrained on (a control)
=========================  ===============  ==================================================

Why the two controls: the paper's Wikipedia domains were drawn from the distribution
its models were pretrained on, and their test articles were very likely in that
pretraining data. ``general-unseen`` is a domain from the pretraining distribution
itself (same sources, same topics, unseen documents); ``general-seen`` differs from it
only in that its test documents *were* seen in pretraining. Both are sampled from the
general corpus's documents before the general corpus is split, so the general corpus
(and the base model pretrained on it) never sees their train, valid or unseen text.

Why these held-out topics: of the 12 topics (10,033 articles, 4.9 MB), these four
have 600-800 articles and 300-380 KB each (Arts 668 articles/332 KB, History
615/339 KB, Society and social sciences 785/376 KB, Technology 628/302 KB), so each
fills a 300 KB domain and gets ~90 test articles, while the general corpus keeps the
larger topics (People, Biology and health sciences, Geography, Physical sciences,
Uncategorized) and the small ones (Everyday life, Philosophy and religion,
Mathematics: 114-196 KB, too few for a steady test split): 8 topics, 3.5 MB.
:func:`~odyssey.corpora.sources.wikipedia.topic_counts` gives the counts.

Why 1790-1816: the addresses of the first four presidents (Washington, J. Adams,
Jefferson, Madison; 28 addresses, 395 KB) are the earliest era, with the most
distant language and subjects, and just fill one 300 KB domain.

Leakage: every domain is chunked and sampled first; a chunk whose normalized text
(NFC, as the corpus builder normalizes) is already in an earlier domain is dropped,
and the general corpus drops every document whose text is in any domain. So no
text is in two corpora, and no test or valid document of any corpus is in any
train split, with one deliberate exception: the test split of ``general-seen`` is
a sample of the general corpus's train split (``world.json`` and its manifest say so
under ``seen_in_pretraining``).

Layout of ``OUT`` (:func:`default_world_dir` unless given)::

    OUT/general/                    a corpus directory (odyssey.corpora.store)
    OUT/domains/<name>/             one per domain
    OUT/world.json                  the corpora, kinds, paths, sizes, config; written last

>>> world = build_world(config=WorldConfig(domain_max_bytes=20_000))
>>> [d["name"] for d in world["domains"]][:2]
['wiki-arts', 'wiki-history']
"""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from odyssey import __version__
from odyssey.config import StageConfig
from odyssey.corpora.build import build_corpus_from_documents
from odyssey.corpora.clean import normalize_text
from odyssey.corpora.config import CorpusConfig
from odyssey.corpora.sources import (
    SOURCES,
    Provenance,
    chunk_documents,
    get_source,
    unknown_name_message,
)
from odyssey.corpora.split import split_documents
from odyssey.corpora.store import is_corpus_dir, iter_split
from odyssey.errors import ConfigError, DataError, WriteError
from odyssey.io import odyssey_home, read_json, sha256_text, write_json

WORLD_FILE = "world.json"
WORLD_FORMAT = 2  # 2: control domains, content hash
HELDOUT_TOPICS = ("Arts", "History", "Society and social sciences", "Technology")
HELDOUT_ERA = (1790, 1816)
REGISTERS = ("licenses", "shakespeare", "python-docs", "python-source")
GENERAL_SOURCES = ("wikipedia", "sotu")  # their text makes the general corpus
IN_DISTRIBUTION = "general-unseen"  # control: unseen documents of the pretraining distribution
SEEN = "general-seen"  # control: its test split was in the pretraining data


def default_world_dir() -> Path:
    """``$ODYSSEY_HOME/world`` if ``ODYSSEY_HOME`` is set, else ``~/.cache/odyssey/world``."""
    return odyssey_home() / "world"


def _ratios(value) -> dict[str, float]:
    try:  # one definition of valid ratios: the corpus builder's
        return CorpusConfig(ratios=value).ratios
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ValueError("; ".join(err["msg"] for err in e.errors())) from None


class WorldConfig(StageConfig):
    """What goes into the default world, and how big it is.

    >>> WorldConfig(domain_max_bytes=50_000, registers=["licenses", "shakespeare"])
    """

    seed: int = Field(0, description="Seed of every sample and split of the world.")
    heldout_topics: list[str] = Field(
        default_factory=lambda: list(HELDOUT_TOPICS),
        description="Wikipedia topics left out of the general corpus; each becomes a domain.")
    heldout_era: tuple[int, int] = Field(
        HELDOUT_ERA, description="First and last year of the State of the Union addresses left out "
        "of the general corpus; they become a domain.")
    registers: list[str] = Field(
        default_factory=lambda: list(REGISTERS),
        description=f"Sources that each become a register domain (of: {', '.join(SOURCES.names())}).")
    domain_max_bytes: int = Field(300_000, gt=0, description="Text per domain, at most about this many bytes "
                                  "(a seeded sample of its chunks).")
    domain_chunk_bytes: int = Field(3_000, ge=100, description="Long domain documents are cut into pieces "
                                    "of about this many bytes at paragraph boundaries.")
    domain_ratios: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "valid": 0.05, "test": 0.15},
        description="train/valid/test fractions of each domain (a larger test split gives a steadier "
        "perplexity).")
    general_max_bytes: int | None = Field(None, gt=0, description="Cap of the general corpus in bytes "
                                          "(a seeded sample); none: all the text its sources give.")
    general_chunk_bytes: int = Field(4_000, ge=100, description="Addresses in the general corpus are cut "
                                     "into pieces of about this many bytes at paragraph boundaries.")
    general_ratios: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.96, "valid": 0.02, "test": 0.02},
        description="train/valid/test fractions of the general corpus.")
    in_distribution_bytes: int = Field(
        300_000, ge=0, description=f"Size of the in-distribution control domain {IN_DISTRIBUTION!r}: "
        "documents of the general corpus's sources and topics, held out of it (0: no such domain).")
    seen_bytes: int = Field(
        300_000, ge=0, description=f"Size of the seen control domain {SEEN!r}: its train and valid splits "
        "are unseen documents of the general corpus's sources, its test split (domain_ratios' test share "
        "of this size) documents of the general train split, i.e. text the base model was pretrained on "
        "(0: no such domain).")

    @field_validator("domain_ratios", "general_ratios", mode="before")
    @classmethod
    def _check_ratios(cls, value):
        return _ratios(value)

    @field_validator("registers")
    @classmethod
    def _check_registers(cls, value: list[str]) -> list[str]:
        problems = []
        for name in value:
            if name in GENERAL_SOURCES:
                problems.append(f"{name!r} feeds the general corpus; hold parts of it out with "
                                "heldout_topics / heldout_era instead")
            elif name not in SOURCES:
                problems.append(unknown_name_message("source", name, SOURCES.names()))
        if len(set(value)) != len(value):
            problems.append("a register is listed twice")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("heldout_topics")
    @classmethod
    def _unique_topics(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a topic is listed twice")
        return value

    @model_validator(mode="after")
    def _check_era(self) -> WorldConfig:
        lo, hi = self.heldout_era
        if lo > hi:
            raise ValueError(f"heldout_era starts after it ends ({lo} > {hi})")
        return self


# -- planning: which documents go where --------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _nbytes(doc: dict) -> int:
    return len(doc["text"].encode("utf-8"))


def _digest(doc: dict) -> str:
    return sha256_text(normalize_text(doc["text"]))  # as the builder hashes (after NFC)


def _sample(docs: list[dict], max_bytes: int | None, rng: random.Random) -> list[dict]:
    """A seeded sample of ``docs`` with about ``max_bytes`` of text (the last one
    picked may go over), in their original order; all of them if they fit."""
    if max_bytes is None or sum(map(_nbytes, docs)) <= max_bytes:
        return list(docs)
    order = list(range(len(docs)))
    rng.shuffle(order)
    chosen, total = [], 0
    for i in order:
        if total >= max_bytes:
            break
        chosen.append(i)
        total += _nbytes(docs[i])
    return [docs[i] for i in sorted(chosen)]


def _plan(name: str, kind: str, path: str, description: str, docs: list[dict],
          provs: list[Provenance], ratios: dict[str, float]) -> dict:
    """A corpus to build; each source's provenance lists only the files its chosen
    documents came from."""
    used: dict[str, set[str]] = {p.source.name: set() for p in provs}
    for d in docs:
        source = d["id"].split(":", 1)[0]
        if source in used and d["meta"].get("file"):
            used[source].add(d["meta"]["file"])
    sources = [p.as_dict(used=used[p.source.name]) for p in provs]
    return {"name": name, "kind": kind, "path": path, "description": description,
            "documents": docs, "sources": sources, "ratios": ratios}


def _domain(name: str, kind: str, description: str, docs: list[dict], prov: Provenance,
            config: WorldConfig, claimed: set[str]) -> dict:
    """Chunk, drop text an earlier domain has, sample to the cap; claim what is chosen."""
    pieces, seen = [], set()
    for doc in chunk_documents(docs, config.domain_chunk_bytes):
        digest = _digest(doc)
        if doc["text"].strip() and digest not in claimed and digest not in seen:
            seen.add(digest)
            pieces.append(doc)
    chosen = _sample(pieces, config.domain_max_bytes, random.Random(f"{config.seed}:{name}"))
    if not chosen:
        raise DataError(f"domain {name!r} has no text", "check the source packages and the world config")
    claimed.update(_digest(d) for d in chosen)
    return _plan(name, kind, f"domains/{name}", description, chosen, [prov], config.domain_ratios)


def _check_topics(topics: list[str], wiki: list[dict]) -> None:
    known = sorted({d["meta"]["topic"] for d in wiki})
    problems = [unknown_name_message("Wikipedia topic", t, known) for t in topics if t not in known]
    if problems:
        raise ConfigError("; ".join(problems), f"topics: {', '.join(known)}")


def _general_pool(config: WorldConfig, wiki: tuple[list[dict], Provenance],
                  sotu: tuple[list[dict], Provenance], claimed: set[str]) -> list[dict]:
    """The documents the general corpus is made of: Wikipedia outside the held-out
    topics + addresses outside the held-out era (chunked), minus every text a domain
    has claimed."""
    (wiki_docs, _), (sotu_docs, _) = wiki, sotu
    held, (lo, hi) = set(config.heldout_topics), config.heldout_era
    docs = [d for d in wiki_docs if d["meta"]["topic"] not in held]
    docs += chunk_documents((d for d in sotu_docs if not lo <= d["meta"]["year"] <= hi),
                            config.general_chunk_bytes)
    return [d for d in docs if d["text"].strip() and _digest(d) not in claimed]


def _general_description(config: WorldConfig, wiki_docs: list[dict]) -> str:
    held, (lo, hi) = set(config.heldout_topics), config.heldout_era
    topics = ", ".join(sorted({d["meta"]["topic"] for d in wiki_docs} - held))
    return (f"Wikipedia lead paragraphs of the topics {topics}; State of the Union "
            f"addresses outside {lo}-{hi}")


def _general(config: WorldConfig, wiki: tuple[list[dict], Provenance],
             sotu: tuple[list[dict], Provenance], claimed: set[str]) -> dict:
    """The general pool, sampled to ``general_max_bytes``."""
    docs = _sample(_general_pool(config, wiki, sotu, claimed), config.general_max_bytes,
                   random.Random(f"{config.seed}:general"))
    return _plan("general", "general", "general", _general_description(config, wiki[0]), docs,
                 [wiki[1], sotu[1]], config.general_ratios)


def _unseen_control(name: str, max_bytes: int, config: WorldConfig, wiki, sotu, claimed: set[str]) -> list[dict]:
    """A seeded sample of the general pool, claimed so that the general corpus never has it."""
    chosen = _sample(_general_pool(config, wiki, sotu, claimed), max_bytes,
                     random.Random(f"{config.seed}:{name}"))
    if not chosen:
        raise DataError(f"control domain {name!r} has no text", "check the source packages and the world config")
    claimed.update(_digest(d) for d in chosen)
    return chosen


def _seen_plan(config: WorldConfig, unseen: list[dict], general_dir: Path, wiki, sotu) -> dict:
    """``general-seen``: ``unseen`` documents split into train/valid, and a test split
    sampled from the general corpus's *train* split (text the base was pretrained on).
    The splits are fixed in each document's ``meta["split"]``."""
    ratios = config.domain_ratios
    test_bytes = round(config.seen_bytes * ratios["test"])
    seen_pool = list(iter_split(general_dir, "train"))
    test = _sample(seen_pool, max(test_bytes, 1), random.Random(f"{config.seed}:{SEEN}:test"))
    kept = ratios["train"] + ratios["valid"]
    own = split_documents(unseen, {"train": ratios["train"] / kept, "valid": ratios["valid"] / kept,
                                   "test": 0.0}, config.seed)
    docs = [{**d, "meta": {**d["meta"], "split": split}} for split in ("train", "valid") for d in own[split]]
    docs += [{**d, "meta": {**d["meta"], "split": "test", "seen_in_pretraining": True}} for d in test]
    description = ("control: train/valid are unseen documents of the general corpus's sources; the test "
                   "documents are in the general train split, i.e. the base model was pretrained on them")
    plan = _plan(SEEN, "seen", f"domains/{SEEN}", description, docs, [wiki[1], sotu[1]], ratios)
    plan["split_field"] = "split"
    plan["seen_in_pretraining"] = {"split": "test", "from": "general:train", "documents": len(test)}
    return plan


def world_steps(config: WorldConfig, out: Path) -> list[tuple[str, Callable[[], dict | None]]]:
    """The corpora of the world in build order, as ``(name, plan)`` pairs; calling
    ``plan()`` reads what it needs and returns the corpus's documents, sources and
    ratios (or None for a step that only claims documents). Domains come first (in
    config order: topics, era, registers, the in-distribution control, the seen
    control's unseen documents) because the general corpus excludes their texts; the
    seen control is built last, from the built general corpus's train split in ``out``."""
    read_once: dict[str, tuple[list[dict], Provenance]] = {}

    def source(name: str) -> tuple[list[dict], Provenance]:
        if name not in read_once:
            read_once[name] = get_source(name).documents()
        return read_once[name]

    _check_topics(config.heldout_topics, source("wikipedia")[0])  # before anything is built

    claimed: set[str] = set()
    steps: list[tuple[str, Callable[[], dict]]] = []
    for topic in config.heldout_topics:
        def wiki_topic(topic=topic, name=f"wiki-{_slug(topic)}"):
            docs, prov = source("wikipedia")
            return _domain(name, "wikipedia-topic",
                           f"Wikipedia lead paragraphs of the topic {topic!r}, held out of the general corpus",
                           [d for d in docs if d["meta"]["topic"] == topic], prov, config, claimed)
        steps.append((f"wiki-{_slug(topic)}", wiki_topic))

    lo, hi = config.heldout_era

    def era(name=f"sotu-{lo}-{hi}"):
        docs, prov = source("sotu")
        return _domain(name, "register", f"State of the Union addresses {lo}-{hi}, held out of the "
                       "general corpus", [d for d in docs if lo <= d["meta"]["year"] <= hi],
                       prov, config, claimed)
    steps.append((f"sotu-{lo}-{hi}", era))

    for name in config.registers:
        def register(name=name):
            docs, prov = source(name)
            return _domain(name, "register", prov.source.description, docs, prov, config, claimed)
        steps.append((name, register))

    wiki, sotu = (lambda: source("wikipedia")), (lambda: source("sotu"))
    if config.in_distribution_bytes:
        def in_distribution():
            docs = _unseen_control(IN_DISTRIBUTION, config.in_distribution_bytes, config, wiki(), sotu(), claimed)
            return _plan(IN_DISTRIBUTION, "in-distribution", f"domains/{IN_DISTRIBUTION}",
                         "control: unseen documents of the general corpus's sources and topics, held out of it",
                         docs, [wiki()[1], sotu()[1]], config.domain_ratios)
        steps.append((IN_DISTRIBUTION, in_distribution))
    seen_unseen: list[dict] = []
    if config.seen_bytes:
        def seen_part():  # claimed before the general corpus is made; built after it
            own = config.seen_bytes - round(config.seen_bytes * config.domain_ratios["test"])
            seen_unseen.extend(_unseen_control(SEEN, max(own, 1), config, wiki(), sotu(), claimed))
            return None
        steps.append((f"{SEEN} (unseen part)", seen_part))
    steps.append(("general", lambda: _general(config, wiki(), sotu(), claimed)))
    if config.seen_bytes:
        steps.append((SEEN, lambda: _seen_plan(config, seen_unseen, out / "general", wiki(), sotu())))
    names = [n for n, _ in steps]
    if len(set(names)) != len(names):
        raise ConfigError(f"two domains would have the same name: {names}",
                          "give topics that differ in more than case and punctuation")
    return steps


# -- building ----------------------------------------------------------------------------
def _inputs() -> dict[str, str]:
    """The version of every package the world reads: a changed one means a changed world."""
    return {name: SOURCES.get(name).version() for name in SOURCES.names()}


def build_world(
    out_dir: str | os.PathLike | None = None,
    config: WorldConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Build the default world into ``out_dir`` (default :func:`default_world_dir`)
    and return what :func:`load_world` returns: the content of ``world.json`` plus
    ``root`` and each corpus's absolute ``dir``.

    If ``world.json`` is there, was built from the same config and package versions
    and its corpora are all there, nothing is done. A world built otherwise is
    replaced only with ``overwrite`` (else :class:`WriteError`). ``world.json`` is
    written last and atomically, so an interrupted build is redone by the next call
    (it takes seconds).

    >>> world = build_world("/tmp/world", WorldConfig(domain_max_bytes=50_000))
    >>> world["general"]["splits"]["train"]["documents"]
    """
    config = config or WorldConfig()
    out = Path(out_dir) if out_dir is not None else default_world_dir()
    world_file = out / WORLD_FILE
    inputs = _inputs()
    if world_file.is_file():
        old = read_json(world_file)
        same = (old.get("config") == config.model_dump(mode="json") and old.get("inputs") == inputs
                and old.get("format") == WORLD_FORMAT)
        complete = same and all(is_corpus_dir(out / c["path"]) for c in [old["general"], *old["domains"]])
        if complete and not overwrite:
            return load_world(out)
        if same and not complete:
            overwrite = True  # corpora were deleted: rebuild them
        if not overwrite:
            raise WriteError(f"{out} holds a world built with another config or other package versions",
                             "pass --overwrite to rebuild it, or choose another --out")
        world_file.unlink()  # from now on the directory is not a finished world

    started = time.perf_counter()
    steps = world_steps(config, out)
    corpora: list[dict] = []
    with _progress(len(steps), progress) as report:
        for name, plan_fn in steps:
            report.start(name)
            plan = plan_fn()
            if plan is not None:
                corpora.append(_build_one(out, plan, config.seed, report.end))
    _remove_stale_domains(out, {c["name"] for c in corpora})
    general = next(c for c in corpora if c["kind"] == "general")
    domains = [c for c in corpora if c is not general]
    world = {
        "format": WORLD_FORMAT,
        "odyssey_version": __version__,
        "config": config.model_dump(mode="json"),
        "inputs": inputs,
        "content_sha256": content_hash([general, *domains]),
        "general": general,
        "domains": domains,
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    write_json(world_file, world)  # last: its presence marks a complete world
    return load_world(out)


def content_hash(corpora: list[dict]) -> str:
    """One sha256 over every corpus's name and split hashes: two worlds with the same
    content hash hold the same texts in the same splits."""
    lines = [f"{c['name']} {split} {c['splits'][split]['sha256']}\n"
             for c in sorted(corpora, key=lambda c: c["name"]) for split in sorted(c["splits"])]
    return sha256_text("".join(lines))


# -- the expected world ------------------------------------------------------------------------
EXPECTED_FILE = Path(__file__).resolve().parent.parent / "assets" / "world-expected.json"


def expected_record(world: dict) -> dict:
    """What a built world must match elsewhere: its config, the package versions it was
    read from, its content hash and each corpus's split hashes (``world-expected.json``)."""
    return {"config": world["config"], "inputs": world["inputs"], "content_sha256": world["content_sha256"],
            "corpora": {c["name"]: {s: v["sha256"] for s, v in c["splits"].items()}
                        for c in [world["general"], *world["domains"]]},
            "sources": {c["name"]: sorted(s["name"] for s in c["sources"]) for c in [world["general"], *world["domains"]]}}


def compare_with_expected(world: dict, expected: dict | None = None) -> list[str]:
    """Why a world built with the default config differs from the expected one: one line
    per corpus that differs, naming the package whose version differs (or saying that the
    same versions gave other text, which is a bug to report). Empty when it matches, or
    when the world was built with another config (only the default is pinned)."""
    if expected is None:
        if not EXPECTED_FILE.is_file():
            return []
        expected = read_json(EXPECTED_FILE)
    if world.get("config") != expected["config"]:
        return []
    lines = []
    built = {c["name"]: c for c in [world["general"], *world["domains"]]}
    for name, splits in expected["corpora"].items():
        corpus = built.get(name)
        if corpus is None:
            lines.append(f"{name}: missing from this world")
            continue
        differ = [s for s, h in splits.items() if corpus["splits"].get(s, {}).get("sha256") != h]
        if not differ:
            continue
        versions = [f"{src} {world['inputs'].get(src)} (expected {expected['inputs'].get(src)})"
                    for src in expected["sources"].get(name, []) if world["inputs"].get(src) != expected["inputs"].get(src)]
        why = ("built from " + ", ".join(versions) if versions else
               "from the same package versions: please report this as a bug")
        lines.append(f"{name}: {'/'.join(differ)} split{'s' if len(differ) > 1 else ''} differ{'' if len(differ) > 1 else 's'}, {why}")
    return lines


def _build_one(out: Path, plan: dict, seed: int, done: Callable[[str, int, int], None]) -> dict:
    extra = {"seen_in_pretraining": plan["seen_in_pretraining"]} if "seen_in_pretraining" in plan else {}
    config = CorpusConfig(ratios=plan["ratios"], seed=seed, split_field=plan.get("split_field"))
    result = build_corpus_from_documents(plan["name"], plan["documents"], out / plan["path"], config,
                                         sources=plan["sources"], overwrite=True, progress=False, extra=extra)
    manifest = result.manifest
    done(plan["name"], manifest["documents"], manifest["bytes"])
    return {**extra,
        "name": plan["name"],
        "kind": plan["kind"],
        "path": plan["path"],
        "description": plan["description"],
        "sources": [{k: s[k] for k in ("name", "package", "version", "license", "sha256")}
                    for s in plan["sources"]],
        "license": manifest["license"],
        "documents": manifest["documents"],
        "bytes": manifest["bytes"],
        "splits": {split: {k: info[k] for k in ("documents", "bytes", "sha256")}
                   for split, info in manifest["splits"].items()},
    }


def _remove_stale_domains(out: Path, names: set[str]) -> None:
    """Corpora left in ``OUT/domains`` by a world built with other domains."""
    domains = out / "domains"
    if not domains.is_dir():
        return
    for path in sorted(domains.iterdir()):
        if path.name not in names and is_corpus_dir(path):
            shutil.rmtree(path)


def load_world(out_dir: str | os.PathLike | None = None) -> dict:
    """The content of ``OUT/world.json`` with ``root`` (the world directory) and each
    corpus's absolute ``dir`` added.

    >>> world = load_world()
    >>> general_dir = world["general"]["dir"]
    """
    out = Path(out_dir) if out_dir is not None else default_world_dir()
    world_file = out / WORLD_FILE
    if not world_file.is_file():
        raise DataError(f"no default world at {out}", "run `odyssey world build`"
                        + (f" --out {out}" if out_dir is not None else ""))
    world = read_json(world_file)
    world["root"] = str(out.resolve())
    for corpus in [world["general"], *world["domains"]]:
        corpus["dir"] = str((out / corpus["path"]).resolve())
    return world


# -- progress ----------------------------------------------------------------------------
class _Report:
    def __init__(self, bar=None, task=None):
        self.bar, self.task, self.t0 = bar, task, 0.0

    def start(self, name: str) -> None:
        self.t0 = time.perf_counter()
        if self.bar is not None:
            self.bar.update(self.task, description=f"building {name}")

    def end(self, name: str, documents: int, nbytes: int) -> None:
        if self.bar is not None:
            self.bar.console.print(f"  {name:<34} {documents:>7,} documents {nbytes / 1e6:>7.2f} MB "
                                   f"{time.perf_counter() - self.t0:>6.1f} s", highlight=False)
            self.bar.advance(self.task)


@contextmanager
def _progress(total: int, enabled: bool):
    if not enabled:
        yield _Report()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TextColumn("corpora"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Report(bar, bar.add_task("world", total=total))
