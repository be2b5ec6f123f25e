"""What machine a run is on, and how long it has taken: shared by the study and
collapse runners for their progress lines and the ``machine`` field of their results."""

from __future__ import annotations

import os
import platform
import time


def elapsed(t0: float) -> str:
    """``m:ss`` since ``t0`` (a ``time.perf_counter()`` value)."""
    s = int(time.perf_counter() - t0)
    return f"{s // 60}:{s % 60:02d}"


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"


def describe() -> str:
    """e.g. ``"x86_64, 2 CPUs, no GPU"``."""
    return f"{platform.machine()}, {cpu_count()} CPUs, {device_name()}"
