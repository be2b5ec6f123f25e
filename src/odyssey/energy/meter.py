"""Energy of a run: measured where the hardware lets us read it, estimated (and labelled so) elsewhere.

Sources, in order of preference (``method`` column of ``energy.csv``):

- ``nvml``: a GPU's cumulative energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
  millijoules since the driver loaded; Volta and later), read at start and stop, for the
  CUDA devices the run uses. Needs ``nvidia-ml-py``; its import is guarded.
- ``rapl``: Intel/AMD RAPL counters under ``/sys/class/powercap/intel-rapl*``: the
  ``package-N`` zones for the CPU and their ``dram`` sub-zones for memory
  (``energy_uj``, microjoules). A counter wraps to 0 after ``max_energy_range_uj``, so a
  background thread reads it every ``poll_seconds`` and adds the wrap-corrected deltas
  (:func:`rapl_delta`). RAPL measures the whole package, other processes included
  (``tracking_mode`` "machine"). Most Linux systems make ``energy_uj`` readable by root
  only; then RAPL is skipped.
- ``estimated``: no counter readable: energy = counted FLOPs / FLOP-per-joule (CPU or
  GPU figure of :class:`odyssey.energy.config.EnergyConfig`), with FLOPs counted as
  ``6 N`` per trained token and ``2 N`` per forwarded token (N = parameters; Kaplan et
  al. 2020), or, when nothing was counted, ``cpu_watts_per_core x threads x duration``.

A GPU run without NVML estimates only the GPU part; a GPU run without RAPL leaves the
CPU part out (``method`` names what was measured, e.g. ``nvml+rapl``).

``energy.csv`` has CodeCarbon's ``emissions.csv`` columns (units: seconds, kg CO2eq,
kg/s, W, kWh, GB), then odyssey's: ``phase``, ``parent_phase`` (a phase measured inside
another, e.g. ``train`` inside ``adapt``: not to be added to it), ``method``, ``flops``.
Each :func:`record` call rewrites the file atomically with one more row.

>>> with measure_phase("runs/x", "evaluate") as meter:
...     meter.add_tokens(model, 4096, training=False)
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import platform
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from odyssey.energy.config import EnergyConfig
from odyssey.io import atomic_write

ENERGY_CSV = "energy.csv"
CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "duration", "emissions", "emissions_rate", "cpu_power",
    "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "country_name",
    "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "on_cloud", "pue",
)
COLUMNS = CODECARBON_COLUMNS + ("phase", "parent_phase", "method", "flops")
J_PER_KWH = 3.6e6


# --- RAPL ---------------------------------------------------------------------------

def rapl_delta(previous: int, current: int, max_range: int) -> int:
    """Microjoules between two readings of a counter that wraps to 0 after ``max_range``
    (at most one wrap between readings).

    >>> rapl_delta(100, 250, 1000), rapl_delta(900, 50, 1000)
    (150, 150)
    """
    return current - previous if current >= previous else current + max_range - previous


@dataclass
class RaplZone:
    path: Path
    name: str
    kind: str  # "cpu" (a package) or "ram" (its dram sub-zone)
    max_range: int

    def read(self) -> int:
        return int((self.path / "energy_uj").read_text())


def find_rapl_zones(root: str | os.PathLike = "/sys/class/powercap") -> list[RaplZone]:
    """The readable package and DRAM zones under ``root`` (none if it is absent or unreadable).
    Core/uncore sub-zones are parts of their package and ``psys`` spans the platform: both
    are skipped so that nothing is counted twice."""
    zones = []
    root = Path(root)
    if not root.is_dir():
        return zones
    for path in sorted(root.glob("intel-rapl*")):
        try:
            name = (path / "name").read_text().strip()
            kind = "cpu" if name.startswith("package") else "ram" if name == "dram" else None
            if kind is None:
                continue
            zone = RaplZone(path, name, kind, int((path / "max_energy_range_uj").read_text()))
            zone.read()
        except (OSError, ValueError):  # absent or root-only counters
            continue
        zones.append(zone)
    # a dram zone may appear both as intel-rapl:0:2 and as a link elsewhere: keep one per path
    seen, unique = set(), []
    for z in zones:
        key = z.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(z)
    return unique


class RaplReader:
    """Accumulates wrap-corrected energy of RAPL zones; :meth:`sample` must run more often
    than the fastest counter wraps (a background thread does it, see :class:`EnergyMeter`)."""

    def __init__(self, zones: list[RaplZone]):
        self.zones = zones
        self.last = [z.read() for z in zones]
        self.total_uj = [0] * len(zones)
        self._lock = threading.Lock()

    def sample(self) -> None:
        with self._lock:
            for i, zone in enumerate(self.zones):
                try:
                    current = zone.read()
                except (OSError, ValueError):
                    continue
                self.total_uj[i] += rapl_delta(self.last[i], current, zone.max_range)
                self.last[i] = current

    def joules(self, kind: str) -> float:
        return sum(t for t, z in zip(self.total_uj, self.zones, strict=True) if z.kind == kind) / 1e6


# --- NVML ---------------------------------------------------------------------------

class NvmlReader:
    """Energy of CUDA devices from NVML's cumulative counter (millijoules)."""

    def __init__(self, cuda_indices: list[int]):
        import pynvml  # nvidia-ml-py; guarded by the caller

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [self._handle(i) for i in cuda_indices]
        self.model = pynvml.nvmlDeviceGetName(self.handles[0]) if self.handles else ""
        self.start_mj = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]

    def _handle(self, index: int):
        """NVML's handle of torch's CUDA device ``index`` (by UUID: CUDA_VISIBLE_DEVICES
        may renumber devices), else by index."""
        with contextlib.suppress(Exception):
            import torch

            uuid_ = str(torch.cuda.get_device_properties(index).uuid)
            return self.nvml.nvmlDeviceGetHandleByUUID(uuid_ if uuid_.startswith("GPU-") else f"GPU-{uuid_}")
        return self.nvml.nvmlDeviceGetHandleByIndex(index)

    def joules(self) -> float:
        now = [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]
        return sum(b - a for a, b in zip(self.start_mj, now, strict=True)) / 1e3


def _nvml_reader(cuda_indices: list[int]) -> NvmlReader | None:
    try:
        return NvmlReader(cuda_indices)
    except Exception:  # no nvidia-ml-py, no driver, or a GPU without the energy counter
        return None


# --- the meter ----------------------------------------------------------------------

@dataclass
class EnergyReading:
    """The energy of one measured phase, in joules."""

    duration: float
    cpu_j: float = 0.0
    gpu_j: float = 0.0
    ram_j: float = 0.0
    method: str = "estimated"  # "nvml", "rapl", "nvml+rapl", "estimated", "nvml+estimated", ...
    flops: float = 0.0
    gpu_count: int = 0
    gpu_model: str = ""
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))

    @property
    def total_j(self) -> float:
        return self.cpu_j + self.gpu_j + self.ram_j


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


class EnergyMeter:
    """Measures the energy between :meth:`start` and :meth:`stop` (or a ``with`` block).

    ``device`` is the torch device the work runs on; ``gpus`` the CUDA indices to read
    (default: that device's). Count the work with :meth:`add_tokens` or :meth:`add_flops`:
    the estimate needs it, measurements record it.

    >>> meter = EnergyMeter("cpu").start()
    >>> meter.add_tokens(model, tokens=8192, training=True)
    >>> reading = meter.stop()
    >>> reading.total_j, reading.method
    """

    def __init__(self, device="cpu", *, gpus: list[int] | None = None, config: EnergyConfig | None = None,
                 phase: str = ""):
        self.config = config or EnergyConfig()
        self.device = str(device)
        self.phase = phase
        self.cuda = self.device.startswith("cuda")
        if gpus is None and self.cuda:
            gpus = [int(self.device.split(":")[1]) if ":" in self.device else _current_cuda_device()]
        self.gpus = list(gpus or [])
        self.flops = 0.0
        self._params: dict[int, int] = {}
        self._t0: float | None = None
        self._rapl: RaplReader | None = None
        self._nvml: NvmlReader | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_flops(self, flops: float) -> None:
        self.flops += flops

    def add_tokens(self, model, tokens: int, training: bool) -> None:
        """Count ``6 N`` FLOPs per trained token or ``2 N`` per forwarded token."""
        n = self._params.get(id(model))
        if n is None:
            n = self._params[id(model)] = count_parameters(model)
        self.flops += (6 if training else 2) * n * tokens

    def start(self) -> EnergyMeter:
        if self.config.method == "auto":
            zones = find_rapl_zones(self.config.rapl_root)
            self._rapl = RaplReader(zones) if zones else None
            self._nvml = _nvml_reader(self.gpus) if self.cuda and self.gpus else None
        if self._rapl is not None:
            self._thread = threading.Thread(target=self._poll, name="odyssey-rapl", daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            self._rapl.sample()

    def stop(self) -> EnergyReading:
        if self._t0 is None:
            raise RuntimeError("EnergyMeter.stop() before start()")
        duration = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        reading = EnergyReading(duration=duration, flops=self.flops, gpu_count=len(self.gpus))
        methods = []
        if self._nvml is not None:
            reading.gpu_j = self._nvml.joules()
            reading.gpu_model = self._nvml.model
            methods.append("nvml")
        elif self.cuda:
            reading.gpu_j = (self.flops / self.config.gpu_flops_per_joule if self.flops else 0.0)
            methods.append("estimated")
        if self._rapl is not None:
            self._rapl.sample()
            reading.cpu_j, reading.ram_j = self._rapl.joules("cpu"), self._rapl.joules("ram")
            methods.append("rapl")
        elif not self.cuda:
            reading.cpu_j = estimate_cpu_joules(self.flops, duration, self.config)
            methods.append("estimated")
        reading.method = "+".join(dict.fromkeys(methods))
        self._t0 = None
        return reading

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.reading = self.stop()


def estimate_cpu_joules(flops: float, duration: float, config: EnergyConfig) -> float:
    """CPU energy from counted FLOPs, or from time when nothing was counted.

    >>> estimate_cpu_joules(4e10, 10.0, EnergyConfig())     # 40 GFLOP at 10 GFLOP/J
    4.0
    """
    if flops > 0:
        return flops / config.cpu_flops_per_joule
    import torch

    return config.cpu_watts_per_core * torch.get_num_threads() * duration


def _current_cuda_device() -> int:
    import torch

    return torch.cuda.current_device() if torch.cuda.is_available() else 0


# --- energy.csv -----------------------------------------------------------------------

def _machine() -> dict:
    cpu_model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    ram_gb = ""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {"os": platform.platform(), "python_version": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model, "ram_total_size": ram_gb}


def energy_row(phase: str, reading: EnergyReading, config: EnergyConfig | None = None, parent: str = "") -> dict:
    """One ``energy.csv`` row (CodeCarbon's columns and units, then odyssey's)."""
    config = config or EnergyConfig()
    pue, d = config.pue, max(reading.duration, 1e-9)
    cpu, gpu, ram = (j * pue / J_PER_KWH for j in (reading.cpu_j, reading.gpu_j, reading.ram_j))
    total = cpu + gpu + ram
    emissions = total * config.grid_intensity_g_per_kwh / 1000.0  # kg CO2eq
    return {
        "timestamp": reading.timestamp, "project_name": config.project_name, "run_id": reading.run_id,
        "duration": reading.duration, "emissions": emissions, "emissions_rate": emissions / d,
        "cpu_power": reading.cpu_j / d, "gpu_power": reading.gpu_j / d, "ram_power": reading.ram_j / d,
        "cpu_energy": cpu, "gpu_energy": gpu, "ram_energy": ram, "energy_consumed": total,
        "country_name": config.country_name, "country_iso_code": config.country_iso_code,
        "region": config.region, "cloud_provider": "", "cloud_region": "", "codecarbon_version": "",
        **_machine(), "gpu_count": reading.gpu_count, "gpu_model": reading.gpu_model,
        "longitude": "", "latitude": "",
        "tracking_mode": "process" if reading.method == "estimated" else "machine", "on_cloud": "N",
        "pue": pue, "phase": phase, "parent_phase": parent, "method": reading.method, "flops": reading.flops,
    }


def read_energy(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of ``run_dir/energy.csv`` (empty if there is none)."""
    path = Path(run_dir) / ENERGY_CSV
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def record(run_dir: str | os.PathLike, phase: str, reading: EnergyReading, *, parent: str = "",
           config: EnergyConfig | None = None) -> dict:
    """Append the row of ``reading`` to ``run_dir/energy.csv`` (rewritten atomically)."""
    rows = read_energy(run_dir) + [energy_row(phase, reading, config, parent)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(Path(run_dir) / ENERGY_CSV) as f:
        f.write(buf.getvalue())
    return rows[-1]


def summarize_energy(run_dirs: Iterable[str | os.PathLike]) -> dict:
    """Total energy (kWh) of the top-level phases recorded in ``run_dirs`` (phases
    measured inside another are part of it) and the methods behind it, e.g.
    ``{"energy_kwh": 0.0123, "energy_method": "estimated"}``; ``None``s if nothing was
    recorded."""
    total, methods = 0.0, set()
    for run_dir in run_dirs:
        for row in read_energy(run_dir):
            if row.get("parent_phase"):
                continue
            total += float(row["energy_consumed"] or 0.0)
            methods.update((row.get("method") or "estimated").split("+"))
    if not methods:
        return {"energy_kwh": None, "energy_method": None}
    return {"energy_kwh": total, "energy_method": "+".join(sorted(methods))}


def run_energy(run_dir: str | os.PathLike) -> dict:
    """:func:`summarize_energy` of an adapt run directory and its ``evals/*`` evaluations."""
    run_dir = Path(run_dir)
    evals = sorted(p for p in (run_dir / "evals").glob("*") if p.is_dir()) if (run_dir / "evals").is_dir() else []
    return summarize_energy([run_dir, *evals])


@contextlib.contextmanager
def measure_phase(run_dir: str | os.PathLike, phase: str, *, device="cpu", accelerator=None,
                  active: list | None = None, config: EnergyConfig | None = None):
    """Measure the block and append its row to ``run_dir/energy.csv``.

    With an ``accelerator`` (accelerate), only the main process measures and records, on
    the accelerator's device (all visible GPUs when there are several processes).
    ``config``: the run's energy settings (default: :class:`EnergyConfig`'s defaults).
    ``active`` is a list of the meters currently running: the new meter joins it for the
    block (so work counted into every active meter reaches it too), and a meter started
    while another runs records that one's phase as its ``parent_phase``. The row is
    written when the block ends, also when it raises (energy was spent) if ``run_dir``
    exists by then.
    """
    gpus = None
    if accelerator is not None:
        device = accelerator.device
        if not accelerator.is_main_process:
            yield EnergyMeter(device, config=config or EnergyConfig(), phase=phase)  # counts, records nothing
            return
        if accelerator.num_processes > 1 and str(device).startswith("cuda"):
            import torch

            gpus = list(range(torch.cuda.device_count()))
    active = [] if active is None else active
    parent = active[-1].phase if active else ""
    meter = EnergyMeter(device, gpus=gpus, config=config, phase=phase).start()
    active.append(meter)
    ok = False
    try:
        yield meter
        ok = True
    finally:
        active.remove(meter)
        reading = meter.stop()
        if ok or Path(run_dir).is_dir():
            try:
                record(run_dir, phase, reading, parent=parent, config=meter.config)
            except Exception:
                if ok:
                    raise  # else keep the error that ended the block
