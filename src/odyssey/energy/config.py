"""Configuration of energy measurement: where the counters are, and the figures an estimate uses.

The defaults are documented assumptions; override them in ``$ODYSSEY_HOME/energy.yaml``
(or the YAML file ``$ODYSSEY_ENERGY_CONFIG`` names), e.g.::

    grid_intensity_g_per_kwh: 56     # France, 2023
    country_iso_code: FRA

or per run (``energy.pue=1.2`` on the ``odyssey adapt`` command line). The command line
reads that file once (:func:`load_energy_config`) and passes the settings down: an adapt
run records them in its ``config.yaml`` (``energy:``); the meter reads no environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from odyssey.config import StageConfig, resolve


class EnergyConfig(StageConfig):
    """How runs measure (or estimate) their energy, and how it converts to emissions."""

    method: Literal["auto", "estimated"] = Field(
        "auto", description="auto: NVML for GPUs and RAPL for CPU package + DRAM where readable, else an "
                            "estimate; estimated: always estimate")
    project_name: str = Field("odyssey", description="CodeCarbon's project_name column")
    grid_intensity_g_per_kwh: float = Field(
        475.0, ge=0, description="carbon intensity of the electricity (g CO2eq per kWh). Default: the "
                                 "world average CodeCarbon falls back to (475 g/kWh, IEA)")
    country_name: str = Field("", description="CodeCarbon's country_name column (informative)")
    country_iso_code: str = Field("", description="CodeCarbon's country_iso_code column (informative)")
    region: str = Field("", description="CodeCarbon's region column (informative)")
    pue: float = Field(1.0, ge=1.0, description="power usage effectiveness: measured energy is multiplied by it")
    cpu_flops_per_joule: float = Field(
        1e10, gt=0, description="estimate on CPU: FLOP per joule. Assumption: a current server core peaks near "
                                "100 GFLOP/s float32 (AVX2/AVX-512 FMA) at ~4-8 W under vector load (e.g. a "
                                "96-core, 360 W EPYC 9654), and PyTorch sustains about half of peak on dense "
                                "layers: ~10 GFLOP/J")
    gpu_flops_per_joule: float = Field(
        4e11, gt=0, description="estimate on GPU: FLOP per joule. Assumption: an H100-class GPU at ~40% of "
                                "its ~1 PFLOP/s bf16 peak near its 700 W board power")
    cpu_watts_per_core: float = Field(
        6.0, gt=0, description="estimate when no FLOPs were counted: watts per CPU thread in use (same "
                               "assumption: ~4-8 W per loaded core), times the duration")
    rapl_root: str = Field("/sys/class/powercap", description="where the RAPL powercap zones are")
    poll_seconds: float = Field(
        10.0, gt=0, description="RAPL counters are read this often (they wrap after max_energy_range_uj, "
                                "which at 100+ W can be under a minute)")


def load_energy_config(home: str | os.PathLike, file: str | os.PathLike | None = None) -> EnergyConfig:
    """The energy settings: defaults, then the YAML ``file`` if one is named (it must
    exist), else ``home/energy.yaml`` if it exists. The command line calls it once, with
    ``$ODYSSEY_HOME`` and ``$ODYSSEY_ENERGY_CONFIG``.

    >>> load_energy_config(odyssey_home(), os.environ.get("ODYSSEY_ENERGY_CONFIG")).pue
    1.0
    """
    path = Path(file) if file else Path(home) / "energy.yaml"
    return resolve(EnergyConfig, path) if file or path.is_file() else EnergyConfig()
