"""Small file helpers shared by every stage: atomic writes, hashing, JSONL.

Every output odyssey writes goes through :func:`atomic_write` (or a ``*_atomic``
helper) so that an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from odyssey.errors import DataError, WriteError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    On error the temporary file is removed and ``path`` is left as it was.

    >>> with atomic_write("out.txt") as f:
    ...     f.write("hello")
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror}", "check the path and permissions") from e
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise WriteError(f"cannot write {path}: {e.strerror}", "check free disk space and permissions") from e
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")


def json_safe(obj: Any, drop_private: bool = False) -> Any:
    """``obj`` with every NaN and infinity made ``None`` (JSON has neither: ``json.dumps``
    would write the invalid tokens ``NaN`` and ``Infinity``), through dicts, lists and
    tuples. ``drop_private`` also leaves out the keys that start with ``_`` (bookkeeping
    kept in memory only, such as a predictor fit's ``_path``).

    >>> json_safe({"ppl": float("nan"), "runs": [1.5, float("inf")]})
    {'ppl': None, 'runs': [1.5, None]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v, drop_private) for k, v in obj.items()
                if not (drop_private and str(k).startswith("_"))}
    if isinstance(obj, list | tuple):
        return [json_safe(v, drop_private) for v in obj]
    return obj


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(f"file not found: {path}") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows as JSON lines, atomically; return how many were written."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one line and flush it: a crash loses at most the line being written."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield the objects of a JSONL file; a malformed line raises ``DataError`` naming file:line."""
    path = Path(path)
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError as e:
        raise DataError(f"file not found: {path}") from e
    with f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, start=1):  # noqa: B007
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: malformed JSON line ({e.msg})",
                                    "fix or remove that line") from e
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield obj
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{lineno + 1}: not valid UTF-8 ({e.reason})",
                            "re-encode the file as UTF-8") from e


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def odyssey_home() -> Path:
    """Where odyssey keeps built worlds, caches and the base run: ``$ODYSSEY_HOME``,
    else ``~/.cache/odyssey``."""
    home = os.environ.get("ODYSSEY_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "odyssey"
