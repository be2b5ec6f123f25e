"""Read documents from the formats people keep text in.

Every reader yields documents ``{"text": str, "id": str, "meta": dict}``:

========================  ==============================================  ===========================
input                     one document per                                id (unless the row has one)
========================  ==============================================  ===========================
``.txt`` file             file                                            ``name.txt``
``.jsonl``/``.json``      line (field ``text``, or ``text_field``)        ``name.jsonl:LINE``
``.parquet``              row (column ``text_field``)                     ``name.parquet:ROW``
``datasets`` directory    row of every split (``save_to_disk``)           ``name/SPLIT:ROW``
folder                    any of the above found recursively (sorted)     ``folder/sub/name.txt...``
========================  ==============================================  ===========================

Ids are relative to the path given, so they do not change when the data moves; a
row's own ``id`` field wins. ``meta`` holds the provenance (``source`` file, and
``line``/``row``/``split``), merged over a ``meta`` object the row already had.

Bytes that are not UTF-8 follow ``encoding_errors``: ``strict`` raises
:class:`DataError` naming the file (and line), ``skip`` drops the document and counts
it under ``"undecodable"`` in :attr:`DocumentReader.dropped`, ``replace`` keeps it
with U+FFFD. Text is returned as read; cleaning is :mod:`odyssey.corpora.clean`'s job.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from odyssey.errors import ConfigError, DataError
from odyssey.io import sha256_file

ENCODING_ERRORS = ("strict", "skip", "replace")
TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
# Any of these marks a directory written by ``datasets`` ``save_to_disk``.
DATASETS_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
UNDECODABLE = "undecodable"

_HINT_ENCODING = "re-encode it as UTF-8, or set encoding_errors=skip (drop) or replace"


def is_datasets_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in DATASETS_MARKERS)


def file_format(path: Path) -> str | None:
    """``"txt"``, ``"jsonl"``, ``"parquet"`` or ``None`` (not a supported file)."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "txt"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return None


@dataclass(frozen=True)
class InputFile:
    """One unit to read: a file, or a ``datasets`` directory (``format == "datasets"``)."""

    path: Path
    format: str
    rel: str  # stable name used in ids: relative to the given path, prefixed by its name


def _describe_bad_bytes(e: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start})"


class DocumentReader:
    """Iterate the documents of ``paths``; after iterating, :attr:`dropped` counts the
    documents skipped as undecodable and :attr:`sources` describes every input (path,
    format, sha256 and size of each file read).

    Paths are checked when the reader is built, so a missing path fails before any work.

    >>> reader = DocumentReader(["data/legal"], text_field="body")
    >>> docs = list(reader); reader.dropped
    Counter()
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike],
        text_field: str = "text",
        encoding_errors: str = "strict",
        exclude: Iterable[str | os.PathLike] = (),
        on_file: Callable[[InputFile], None] | None = None,
    ):
        if encoding_errors not in ENCODING_ERRORS:
            raise ConfigError(f"encoding_errors={encoding_errors!r} is not one of {', '.join(ENCODING_ERRORS)}")
        if not text_field:
            raise ConfigError("text_field is empty", "name the field that holds the text, e.g. text")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise DataError("no input paths given", "pass one or more files or folders with --from")
        self.text_field = text_field
        self.encoding_errors = encoding_errors
        self.exclude = {Path(p).resolve() for p in exclude}
        self.on_file = on_file
        self.dropped: Counter[str] = Counter()
        self.sources: list[dict] = []
        self.inputs: list[tuple[Path, list[InputFile]]] = [(p, self._discover(p)) for p in self.paths]

    @property
    def files(self) -> list[InputFile]:
        return [f for _, files in self.inputs for f in files]

    # -- discovery -----------------------------------------------------------------
    def _discover(self, path: Path) -> list[InputFile]:
        if not path.exists():
            raise DataError(f"input not found: {path}", "check the path given to --from")
        name = path.resolve().name or str(path)
        if path.is_file():
            fmt = file_format(path)
            if fmt is None:
                raise DataError(f"unsupported input file: {path}",
                                f"give a folder or a {'/'.join(SUPPORTED_SUFFIXES)} file, or a datasets directory")
            return [InputFile(path, fmt, name)]
        if is_datasets_dir(path):
            return [InputFile(path, "datasets", name)]
        if (what := not_text_dir(path)) is not None:
            raise DataError(f"{path} is {what}, not text",
                            f"give text: a corpus directory (odyssey corpus build), a folder of "
                            f"{'/'.join(SUPPORTED_SUFFIXES)} files, or one such file")
        found = sorted(self._walk(path, path), key=lambda f: f.rel)
        if not found:
            raise DataError(f"no readable files under {path}",
                            f"it must hold {'/'.join(SUPPORTED_SUFFIXES)} files or a saved datasets directory")
        return [InputFile(f.path, f.format, f"{name}/{f.rel}") for f in found]

    def _walk(self, root: Path, folder: Path) -> Iterator[InputFile]:
        for entry in sorted(folder.iterdir()):
            # Hidden entries are skipped: they hold editors' and odyssey's own temporaries.
            if entry.name.startswith(".") or entry.resolve() in self.exclude:
                continue
            rel = entry.relative_to(root).as_posix()
            if entry.is_dir():
                if is_datasets_dir(entry):
                    yield InputFile(entry, "datasets", rel)
                else:
                    yield from self._walk(root, entry)
            elif entry.is_file() and (fmt := file_format(entry)) is not None:
                yield InputFile(entry, fmt, rel)

    # -- reading -------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        self.sources = []
        for given, files in self.inputs:
            fmt = "folder" if given.is_dir() and not is_datasets_dir(given) else files[0].format
            entries = []
            for f in files:
                yield from self._read(f)
                entries.extend(self._file_entries(f))
                if self.on_file:
                    self.on_file(f)
            self.sources.append(_source_entry(given, fmt, entries))

    def _read(self, f: InputFile) -> Iterator[dict]:
        if f.format == "txt":
            return self._read_txt(f)
        if f.format == "jsonl":
            return self._read_jsonl(f)
        if f.format == "parquet":
            return self._read_parquet(f)
        return self._read_datasets(f)

    def _decode(self, raw: bytes, where: str, encoding: str = "utf-8") -> str | None:
        """Decode per ``encoding_errors``; ``None`` means "skipped" (already counted)."""
        if b"\x00" in raw:
            # Binary data: keep it (with U+FFFD) so the binary filter drops and counts it,
            # rather than failing on the first invalid byte of, say, a PDF renamed .txt.
            return raw.decode(encoding, errors="replace")
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as e:
            if self.encoding_errors == "strict":
                raise DataError(f"{where}: {_describe_bad_bytes(e)}", _HINT_ENCODING) from e
            if self.encoding_errors == "skip":
                self.dropped[UNDECODABLE] += 1
                return None
            return raw.decode(encoding, errors="replace")

    def _read_txt(self, f: InputFile) -> Iterator[dict]:
        text = self._decode(f.path.read_bytes(), str(f.path), encoding="utf-8-sig")
        if text is not None:
            yield {"text": text, "id": f.rel, "meta": {"source": str(f.path)}}

    def _read_jsonl(self, f: InputFile) -> Iterator[dict]:
        with open(f.path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                where = f"{f.path}:{lineno}"
                line = self._decode(raw, where)
                if line is None or not line.strip():
                    continue
                try:
                    obj = json.loads(line.lstrip("\ufeff") if lineno == 1 else line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where}: malformed JSON line ({e.msg})", "fix or remove that line") from e
                if not isinstance(obj, dict):
                    raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}",
                                    "write one object per line, e.g. {\"text\": \"...\"}")
                doc = self._row_document(obj, where, f"{f.rel}:{lineno}",
                                         {"source": str(f.path), "line": lineno})
                if doc is not None:
                    yield doc

    def _row_document(self, row: dict, where: str, default_id: str, provenance: dict) -> dict | None:
        """The document of one record; ``None`` when its bytes were skipped as undecodable."""
        if self.text_field not in row:
            fields = ", ".join(sorted(map(str, row))[:10]) or "none"
            raise DataError(f"{where}: no field {self.text_field!r} (fields: {fields})",
                            "name the text field with --text-field (config text_field)")
        text = row[self.text_field]
        if text is None:
            text = ""  # a null text is an empty document, dropped and counted by the cleaner
        elif isinstance(text, bytes):
            text = self._decode(text, where)
            if text is None:
                return None
        elif not isinstance(text, str):
            raise DataError(f"{where}: field {self.text_field!r} is a {type(text).__name__}, not a string",
                            "point --text-field at the field that holds the text")
        given_id = row.get("id")
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        return {
            "text": text,
            "id": default_id if given_id is None or given_id == "" else str(given_id),
            "meta": {**meta, **provenance},
        }

    def _read_table_rows(self, table_batches, f: InputFile, where_prefix: str, id_prefix: str,
                         provenance: dict) -> Iterator[dict]:
        row = 0
        for batch in table_batches:
            for values in batch.to_pylist():
                doc = self._row_document(values, f"{where_prefix} row {row}", f"{id_prefix}:{row}",
                                         {**provenance, "row": row})
                if doc is not None:
                    yield doc
                row += 1

    def _check_column(self, columns: list[str], where: str) -> list[str]:
        if self.text_field not in columns:
            raise DataError(f"{where}: no column {self.text_field!r} (columns: {', '.join(columns) or 'none'})",
                            "name the text column with --text-field (config text_field)")
        return [self.text_field] + [c for c in ("id", "meta") if c in columns and c != self.text_field]

    def _read_parquet(self, f: InputFile) -> Iterator[dict]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(f.path)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{f.path}: not a readable parquet file ({e})") from e
        columns = self._check_column(pf.schema_arrow.names, str(f.path))
        batches = pf.iter_batches(batch_size=1024, columns=columns)
        yield from self._read_table_rows(batches, f, str(f.path), f.rel, {"source": str(f.path)})

    def _read_datasets(self, f: InputFile) -> Iterator[dict]:
        import datasets

        try:
            loaded = datasets.load_from_disk(str(f.path))
        except Exception as e:  # datasets raises several unrelated types for a bad directory
            raise DataError(f"{f.path}: cannot load the saved dataset ({e})",
                            "give a directory written by datasets' save_to_disk") from e
        splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
        for split, ds in splits:
            where = f"{f.path}" + (f" split {split!r}" if split else "")
            columns = self._check_column(list(ds.column_names), where)
            batches = ds.select_columns(columns).with_format("arrow").iter(batch_size=1024)
            provenance = {"source": str(f.path)} | ({"split": split} if split else {})
            id_prefix = f"{f.rel}/{split}" if split else f.rel
            yield from self._read_table_rows(batches, f, where, id_prefix, provenance)

    def _file_entries(self, f: InputFile) -> list[dict]:
        paths = [f.path] if f.format != "datasets" else sorted(p for p in f.path.rglob("*") if p.is_file())
        return [{"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in paths]


def _source_entry(given: Path, fmt: str, files: list[dict]) -> dict:
    """Provenance of one given path: for a single file its own sha256, else a digest
    over the (relative path, sha256) of every file read under it."""
    import hashlib

    if len(files) == 1 and Path(files[0]["path"]) == given:
        digest = files[0]["sha256"]
    else:
        h = hashlib.sha256()
        for entry in sorted(files, key=lambda e: e["path"]):
            rel = Path(entry["path"]).relative_to(given).as_posix()
            h.update(f"{rel}\t{entry['sha256']}\n".encode())
        digest = h.hexdigest()
    return {"path": str(given), "format": fmt, "sha256": digest,
            "bytes": sum(e["bytes"] for e in files), "files": files}


# Files that mark a folder as something other than text, and what to call it.
MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_config.json",
               "tokenizer.json", "generation_config.json")
RUN_FILES = ("result.json", "metrics.jsonl", "checkpoint")


def not_text_dir(folder: Path) -> str | None:
    """What ``folder`` is when it is a model or an odyssey run rather than text (its
    ``config.json`` would otherwise be read as a malformed JSONL file), else None.

    >>> not_text_dir(Path("runs/legal/model"))
    'a model directory (config.json, model.safetensors)'
    """
    if (folder / "config.yaml").is_file() and (found := [n for n in RUN_FILES if (folder / n).exists()]):
        return f"an odyssey run directory ({', '.join(['config.yaml', *found])})"
    if (folder / "config.json").is_file() and (found := [n for n in MODEL_FILES if (folder / n).exists()]):
        return f"a model directory ({', '.join(['config.json', *found])})"
    return None


def read_documents(
    paths: list[str | Path], text_field: str = "text", encoding_errors: str = "strict"
) -> Iterator[dict]:
    """Yield ``{"text", "id", "meta"}`` documents from files, folders (recursively:
    ``.txt``, ``.jsonl``/``.json``, ``.parquet`` and saved ``datasets`` directories,
    found by ``dataset_info.json``, ``state.json`` or ``dataset_dict.json``).

    Raises :class:`DataError` for a missing path, a malformed JSONL line or a missing
    text field (naming file:line), and for undecodable bytes when ``encoding_errors``
    is ``"strict"``. Use :class:`DocumentReader` to also get drop counts and sources.

    >>> docs = list(read_documents(["data/legal", "extra.jsonl"], text_field="body"))
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return iter(DocumentReader(paths, text_field=text_field, encoding_errors=encoding_errors))
