"""One writer per directory: an exclusive lock that names its holder.

Two processes writing one run directory would both append their metrics and add up
their energy. So a process takes the directory's lock before it writes::

    with run_lock("runs/legal", what="adapt run"):   # InUseError names the holder
        ...

The lock is ``fcntl.flock`` on a lock file (``DIR/.odyssey.lock`` for a directory).
The kernel drops it when its holder exits, however it exits (``kill -9`` included),
so a lock file left by a dead process is simply taken over: stale locks cannot block.
The file holds the holder's pid, host, start time and command, for the one line the
next process prints.

On a filesystem without ``flock`` (Lustre mounted without ``-o flock``, NFS without a
lock daemon) the lock falls back to creating the file with ``O_CREAT | O_EXCL``; a file
whose holder ran on this host and is gone is stale and removed, one whose holder ran on
another host is left for the user to judge (the message says which file to delete).

Locks are reentrant within a process (``pretrain`` holds its run's lock and calls
``adapt``, which takes it again); released on exit from the ``with`` block, exceptions
included.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from odyssey.errors import InUseError, WriteError

LOCK_NAME = ".odyssey.lock"
# flock errors that mean "this filesystem cannot", not "someone holds it".
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
# An empty lock file (a holder killed between creating and writing it) is stale after this.
_EMPTY_STALE_S = 60.0


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: enough to find the process, and to tell a reused pid apart."""

    pid: int
    host: str
    since: str  # local time with offset, to the second
    command: str = ""
    started: str | None = None  # the process's start time in clock ticks since boot (Linux)
    token: str = ""  # unique per acquisition: a fallback lock is only removed by its taker
    what: str = ""  # what the holder is doing ("adapt run", "corpus build")

    @classmethod
    def me(cls, what: str) -> Holder:
        return cls(os.getpid(), socket.gethostname(), datetime.now().astimezone().isoformat(timespec="seconds"),
                   " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200],
                   _process_start(os.getpid()), uuid.uuid4().hex, what)

    def describe(self) -> str:
        text = f"pid {self.pid} on {self.host} since {self.since}"
        return f"{text} ({self.command})" if self.command else text

    def alive(self) -> bool:
        """False only when this holder surely is gone: it ran on this host and its pid is
        dead or now belongs to a process started later."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, another user's
        now = _process_start(self.pid)
        return not (self.started and now and now != self.started)


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _parse(raw: bytes) -> Holder | None:
    try:
        return Holder(**json.loads(raw.decode("utf-8")))
    except (ValueError, TypeError):
        return None


class _Held:
    """A lock this process holds: the open file (flock) or the token it wrote (fallback)."""

    def __init__(self, fd: int | None, holder: Holder):
        self.fd, self.holder, self.depth = fd, holder, 1


_held: dict[str, _Held] = {}  # lock file (real path) -> what this process holds there
_held_guard = threading.Lock()


class ExclusiveLock:
    """An exclusive, reentrant lock on the file ``path``; ``what`` names what it guards
    in the message a refused process prints.

    >>> with ExclusiveLock("corpora/.legal.building-1a2b.lock", what="corpus build"):
    ...     build()
    """

    def __init__(self, path: str | os.PathLike, what: str = "run"):
        self.path = Path(path)
        self.what = what
        self._key: str | None = None

    # -- public --------------------------------------------------------------------
    def acquire(self) -> ExclusiveLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WriteError(f"cannot create {self.path.parent}: {e.strerror}", "check the path and permissions") from e
        key = os.path.realpath(self.path)
        with _held_guard:
            if key in _held:
                _held[key].depth += 1
            else:
                _held[key] = self._take()
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        with _held_guard:
            held = _held[self._key]
            held.depth -= 1
            if held.depth == 0:
                del _held[self._key]
                self._give_back(held)
        self._key = None

    def __enter__(self) -> ExclusiveLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def holder(self) -> Holder | None:
        """Who holds this lock now, if anyone says so (read without locking)."""
        try:
            return _parse(self.path.read_bytes())
        except OSError:
            return None

    # -- flock, and the exclusive-create fallback ------------------------------------
    def _take(self) -> _Held:
        me = Holder.me(self.what)
        for _ in range(20):  # a holder that releases between our open and flock unlinks the file: retry
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = _parse(os.pread(fd, 1 << 16, 0))
                os.close(fd)
                raise self._in_use(other, stale_hint=False) from None
            except OSError as e:
                os.close(fd)
                if e.errno in _NO_FLOCK:
                    return self._take_by_creating(me)
                raise WriteError(f"cannot lock {self.path}: {e.strerror}") from e
            if _same_file(fd, self.path):
                data = json.dumps(asdict(me)).encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
                return _Held(fd, me)
            os.close(fd)
        raise WriteError(f"cannot lock {self.path}: it keeps being replaced", "try again")

    def _take_by_creating(self, me: Holder) -> _Held:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                other = self.holder()
                if other is None and _age(self.path) < _EMPTY_STALE_S:
                    raise self._in_use(None, stale_hint=True) from None
                if other is not None and other.alive():
                    raise self._in_use(other, stale_hint=True) from None
                with contextlib.suppress(FileNotFoundError):  # stale: its holder is gone
                    os.unlink(self.path)
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(asdict(me)).encode())
            return _Held(None, me)
        raise WriteError(f"cannot lock {self.path}: it keeps being replaced", "try again")

    def _give_back(self, held: _Held) -> None:
        if held.fd is not None:
            # Unlink before closing: whoever opened the old file re-checks and retries.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(held.fd)
        elif (now := self.holder()) is not None and now.token == held.holder.token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _in_use(self, other: Holder | None, *, stale_hint: bool) -> InUseError:
        where = self.path.parent if self.path.name == LOCK_NAME else self.path
        who = f"{other.what or self.what} held by {other.describe()}" if other else \
            f"{self.what} held by another process (starting)"
        hint = "wait for it to finish or stop it; two writers would mix their results"
        if stale_hint:
            hint += f"; if that process is gone, delete {self.path}"
        return InUseError(f"{where} is in use: {who}", hint)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def run_lock(directory: str | os.PathLike, what: str = "run") -> ExclusiveLock:
    """The lock of a run or study directory (``DIR/.odyssey.lock``), not yet taken.

    >>> with run_lock("runs/legal", what="adapt run"):
    ...     train()
    """
    return ExclusiveLock(Path(directory) / LOCK_NAME, what)

