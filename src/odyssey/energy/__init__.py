"""Measured energy of runs: NVML for GPUs, RAPL for CPU and DRAM, else an estimate from
counted FLOPs, written as CodeCarbon-compatible ``energy.csv`` rows.

>>> from odyssey.energy import EnergyMeter, record
>>> with EnergyMeter("cpu") as meter:
...     meter.add_tokens(model, tokens=4096, training=False)
...     ...
>>> record("runs/x", "evaluate", meter.reading)
"""

from odyssey.energy.config import EnergyConfig, load_energy_config
from odyssey.energy.meter import (
    COLUMNS,
    ENERGY_CSV,
    EnergyMeter,
    EnergyReading,
    find_rapl_zones,
    measure_phase,
    rapl_delta,
    read_energy,
    record,
    run_energy,
    summarize_energy,
)

__all__ = [
    "COLUMNS", "ENERGY_CSV", "EnergyConfig", "EnergyMeter", "EnergyReading", "find_rapl_zones",
    "load_energy_config", "measure_phase", "rapl_delta", "read_energy", "record", "run_energy",
    "summarize_energy",
]
