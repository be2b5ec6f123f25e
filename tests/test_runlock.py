"""One writer per directory: the lock holds across real processes, names its holder,
is taken over when its holder died, and falls back to exclusive creation without flock."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

import odyssey.runlock as runlock
from odyssey.errors import InUseError
from odyssey.runlock import LOCK_NAME, ExclusiveLock, Holder, run_lock

HOLD = textwrap.dedent("""
    import sys
    from odyssey.runlock import run_lock
    with run_lock(sys.argv[1], what="test run"):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes our stdin or kills us
""")


@pytest.fixture
def holder_process(tmp_path):
    """Start a process that holds the lock of ``tmp_path / 'run'``; yield it."""
    procs = []

    def start(directory):
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_second_process_is_refused_with_the_holder_named(tmp_path, holder_process):
    run = tmp_path / "run"
    p = holder_process(run)
    with pytest.raises(InUseError) as caught:
        run_lock(run, what="adapt run").acquire()
    message = str(caught.value)
    assert f"{run} is in use: test run held by pid {p.pid} on {socket.gethostname()} since " in message
    assert "\n" not in message
    p.stdin.close()  # the holder finishes and releases
    assert p.wait(timeout=30) == 0
    assert not (run / LOCK_NAME).exists()  # released: the file is gone
    with run_lock(run):
        pass


def test_lock_of_a_killed_process_is_taken_over(tmp_path, holder_process):
    run = tmp_path / "run"
    p = holder_process(run)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == p.pid  # left behind by kill -9
    with run_lock(run) as lock:
        assert lock.holder().pid == os.getpid()


def test_released_on_exception_and_reentrant(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError), run_lock(run):
        raise RuntimeError("boom")
    assert not (run / LOCK_NAME).exists()
    with run_lock(run), run_lock(run):  # pretrain holds it, adapt takes it again
        assert (run / LOCK_NAME).exists()
    assert not (run / LOCK_NAME).exists()


@pytest.fixture
def no_flock(monkeypatch):
    """A filesystem whose flock fails as Lustre's does without -o flock."""
    def refuse(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(runlock.fcntl, "flock", refuse)


def _write_holder(path, pid, host):
    holder = Holder(pid, host, "2025-01-01T00:00:00+00:00", "odyssey adapt", None, "t")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder.__dict__))


def test_fallback_without_flock(tmp_path, no_flock, holder_process):
    lock_file = tmp_path / "run" / LOCK_NAME
    # A holder that is alive on this host keeps it (the holder process itself uses flock,
    # which is fine: the file it wrote names it).
    p = holder_process(tmp_path / "run")
    with pytest.raises(InUseError, match=f"pid {p.pid}.*delete {lock_file}"):
        ExclusiveLock(lock_file).acquire()
    p.kill()
    p.wait()
    # Its pid is now dead on this host: the lock is stale and taken over, then released.
    with ExclusiveLock(lock_file) as lock:
        assert lock.holder().pid == os.getpid()
        with pytest.raises(InUseError):  # bypassing reentrancy: a live holder (us) keeps it
            ExclusiveLock(lock_file)._take()
    assert not lock_file.exists()
    # A holder on another host cannot be checked: refused, with the file to delete.
    _write_holder(lock_file, 1, "some-other-host")
    with pytest.raises(InUseError, match="pid 1 on some-other-host since 2025-01-01"):
        ExclusiveLock(lock_file).acquire()
