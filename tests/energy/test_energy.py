"""Energy of runs: RAPL on a fake powercap tree (wrap-around included), NVML through a fake
module, the FLOP estimate by hand, the CSV columns, and energy.csv from real adapt and
evaluate runs."""

import csv
import sys
import types

import pytest
import torch

from odyssey.energy import (
    COLUMNS,
    EnergyConfig,
    EnergyMeter,
    EnergyReading,
    find_rapl_zones,
    rapl_delta,
    read_energy,
    record,
    run_energy,
    summarize_energy,
)
from odyssey.energy.meter import RaplReader, energy_row, estimate_cpu_joules

# CodeCarbon's emissions.csv header (codecarbon 2.x), in order
CODECARBON_HEADER = (
    "timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,"
    "cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,cloud_provider,"
    "cloud_region,os,python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,"
    "latitude,ram_total_size,tracking_mode,on_cloud,pue"
).split(",")


def make_zone(root, name, zone_name, energy, max_range=1_000_000):
    path = root / name
    path.mkdir(parents=True)
    (path / "name").write_text(zone_name + "\n")
    (path / "energy_uj").write_text(f"{energy}\n")
    (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    return path


@pytest.fixture
def powercap(tmp_path):
    """package-0 with core and dram sub-zones, package-1, and psys (skipped: platform-wide)."""
    root = tmp_path / "powercap"
    make_zone(root, "intel-rapl:0", "package-0", 900_000)
    make_zone(root, "intel-rapl:0:0", "core", 5)
    make_zone(root, "intel-rapl:0:2", "dram", 10_000)
    make_zone(root, "intel-rapl:1", "package-1", 0)
    make_zone(root, "intel-rapl:2", "psys", 0)
    return root


def set_energy(root, name, value):
    (root / name / "energy_uj").write_text(f"{value}\n")


def test_rapl_delta_handles_wrap_around():
    assert rapl_delta(100, 250, 1000) == 150
    assert rapl_delta(900, 50, 1000) == 150  # 100 to the wrap, 50 after it
    assert rapl_delta(0, 0, 1000) == 0


def test_rapl_zones_are_packages_and_dram_only(powercap):
    zones = find_rapl_zones(powercap)
    assert sorted((z.path.name, z.kind) for z in zones) == [
        ("intel-rapl:0", "cpu"), ("intel-rapl:0:2", "ram"), ("intel-rapl:1", "cpu")]
    assert find_rapl_zones(powercap / "absent") == []


def test_rapl_reader_accumulates_across_wraps(powercap):
    reader = RaplReader(find_rapl_zones(powercap))
    set_energy(powercap, "intel-rapl:0", 100_000)  # wrapped: 100_000 to the wrap + 100_000
    set_energy(powercap, "intel-rapl:1", 300_000)
    set_energy(powercap, "intel-rapl:0:2", 60_000)
    reader.sample()
    set_energy(powercap, "intel-rapl:0", 400_000)  # +300_000
    reader.sample()
    assert reader.joules("cpu") == pytest.approx((200_000 + 300_000 + 300_000) / 1e6)
    assert reader.joules("ram") == pytest.approx(50_000 / 1e6)


def test_unreadable_rapl_is_skipped(powercap):
    (powercap / "intel-rapl:1" / "energy_uj").unlink()  # as if root-only
    assert [z.path.name for z in find_rapl_zones(powercap)] == ["intel-rapl:0", "intel-rapl:0:2"]


def test_meter_reads_rapl_when_readable(powercap):
    cfg = EnergyConfig(rapl_root=str(powercap), poll_seconds=0.01)
    meter = EnergyMeter("cpu", config=cfg).start()
    set_energy(powercap, "intel-rapl:0", 950_000)
    set_energy(powercap, "intel-rapl:0:2", 12_000)
    reading = meter.stop()
    assert reading.method == "rapl"
    assert reading.cpu_j == pytest.approx(0.05) and reading.ram_j == pytest.approx(0.002)


def test_estimate_matches_a_hand_computation(tmp_path):
    cfg = EnergyConfig(rapl_root=str(tmp_path / "none"), cpu_flops_per_joule=2e9)
    model = torch.nn.Linear(10, 10)  # N = 110 parameters
    meter = EnergyMeter("cpu", config=cfg).start()
    meter.add_tokens(model, 1000, training=True)   # 6 * 110 * 1000 = 660_000 FLOPs
    meter.add_tokens(model, 500, training=False)   # 2 * 110 * 500  = 110_000 FLOPs
    reading = meter.stop()
    assert reading.method == "estimated" and reading.flops == 770_000
    assert reading.cpu_j == pytest.approx(770_000 / 2e9)
    # nothing counted: watts per core x threads x seconds
    assert estimate_cpu_joules(0, 2.0, EnergyConfig(cpu_watts_per_core=5)) == pytest.approx(
        5 * torch.get_num_threads() * 2.0)
    # method=estimated ignores readable counters
    assert EnergyMeter("cpu", config=EnergyConfig(method="estimated")).start().stop().method == "estimated"


def test_gpu_energy_from_nvml(monkeypatch, tmp_path):
    counters = {0: 1_000_000}  # millijoules
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByUUID=lambda u: (_ for _ in ()).throw(RuntimeError("no uuid")),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: "Fake GPU",
        nvmlDeviceGetTotalEnergyConsumption=lambda h: counters[h],
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = EnergyMeter("cuda:0", config=EnergyConfig(rapl_root=str(tmp_path / "none"))).start()
    counters[0] += 123_456
    reading = meter.stop()
    assert reading.method == "nvml" and reading.gpu_j == pytest.approx(123.456)
    assert reading.gpu_model == "Fake GPU" and reading.gpu_count == 1 and reading.cpu_j == 0
    # without NVML the GPU part is estimated from FLOPs
    monkeypatch.setitem(sys.modules, "pynvml", None)
    meter = EnergyMeter("cuda:0", config=EnergyConfig(rapl_root=str(tmp_path / "none"), gpu_flops_per_joule=1e9))
    meter.start().add_flops(5e9)
    reading = meter.stop()
    assert reading.method == "estimated" and reading.gpu_j == pytest.approx(5.0)


def test_csv_columns_units_and_atomic_append(tmp_path):
    cfg = EnergyConfig(grid_intensity_g_per_kwh=400, pue=1.5, project_name="p")
    reading = EnergyReading(duration=10.0, cpu_j=3.6e6, gpu_j=7.2e6, ram_j=0.0, method="rapl", flops=1e12)
    row = record(tmp_path, "train", reading, config=cfg)
    record(tmp_path, "adapt", EnergyReading(duration=1.0, cpu_j=3.6e6), config=cfg)
    with open(tmp_path / "energy.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:len(CODECARBON_HEADER)] == CODECARBON_HEADER
    assert header == list(COLUMNS) and header[-4:] == ["phase", "parent_phase", "method", "flops"]
    assert row["cpu_energy"] == pytest.approx(1.5) and row["gpu_energy"] == pytest.approx(3.0)  # kWh x PUE
    assert row["energy_consumed"] == pytest.approx(4.5)
    assert row["emissions"] == pytest.approx(4.5 * 400 / 1000)  # kg CO2eq
    assert row["emissions_rate"] == pytest.approx(4.5 * 0.4 / 10.0)
    assert row["cpu_power"] == pytest.approx(3.6e5) and row["gpu_power"] == pytest.approx(7.2e5)  # W
    assert row["tracking_mode"] == "machine" and row["project_name"] == "p"
    rows = read_energy(tmp_path)
    assert [r["phase"] for r in rows] == ["train", "adapt"] and rows[1]["method"] == "estimated"
    assert not list(tmp_path.glob(".energy.csv.*"))  # no temporary left behind
    assert energy_row("x", reading, cfg)["pue"] == 1.5


def test_summary_skips_nested_phases(tmp_path):
    cfg = EnergyConfig()
    record(tmp_path, "train", EnergyReading(duration=1, cpu_j=3.6e6, method="rapl"), parent="adapt", config=cfg)
    record(tmp_path, "adapt", EnergyReading(duration=1, cpu_j=7.2e6, method="rapl"), config=cfg)
    record(tmp_path / "evals" / "a", "evaluate", EnergyReading(duration=1, cpu_j=3.6e6), config=cfg)
    assert run_energy(tmp_path) == {"energy_kwh": pytest.approx(3.0), "energy_method": "estimated+rapl"}
    assert summarize_energy([tmp_path / "nothing"]) == {"energy_kwh": None, "energy_method": None}


def test_adapt_and_evaluate_write_energy_csv(tmp_path, tiny_llama_dir, tiny_corpus_dir, monkeypatch):
    from odyssey.adapt.config import AdaptConfig
    from odyssey.adapt.loop import adapt
    from odyssey.config import resolve
    from odyssey.evaluate.config import EvalConfig
    from odyssey.evaluate.run import evaluate

    monkeypatch.setenv("ODYSSEY_HOME", str(tmp_path / "home"))  # no user energy.yaml
    out = tmp_path / "run"
    cfg = resolve(AdaptConfig, overrides=[
        f"model={tiny_llama_dir}", f"data={tiny_corpus_dir}", f"out={out}", "train.block_size=32",
        "train.batch_size=2", "train.max_steps=2", "eval.batch_size=4", "eval.max_tokens=200"])
    adapt(cfg, progress=False)
    rows = read_energy(out)
    assert [(r["phase"], r["parent_phase"]) for r in rows] == [("train", "adapt"), ("adapt", "")]
    assert all(r["method"] in ("estimated", "rapl") for r in rows)
    from odyssey.models import load_model

    n_params = sum(p.numel() for p in load_model(tiny_llama_dir).parameters())
    train, whole = (float(r["flops"]) for r in rows)
    assert train == 6 * n_params * (2 * 2 * 32)  # 2 steps of 2 x 32 tokens, no evaluation inside
    assert whole > train  # adapt adds the evaluations before and after (2 N per forwarded token)
    assert (whole - train) % (2 * n_params) == 0
    assert all(float(r["energy_consumed"]) > 0 and float(r["duration"]) > 0 for r in rows)
    ev = tmp_path / "eval"
    evaluate(str(tiny_llama_dir), f"{tiny_corpus_dir}:test", EvalConfig(max_tokens=100, progress=False), out_dir=ev)
    (row,) = read_energy(ev)
    assert row["phase"] == "evaluate" and float(row["flops"]) > 0
    assert run_energy(out)["energy_kwh"] == pytest.approx(float(rows[1]["energy_consumed"]))


def test_study_domain_record_has_energy(tmp_path, tiny_corpus_dir):
    from odyssey.adapt.loop import AdaptResult
    from odyssey.study.config import DomainSpec
    from odyssey.study.runner import domain_record

    run_dir = tmp_path / "runs" / "d"
    cfg = EnergyConfig()
    record(run_dir, "train", EnergyReading(duration=1, cpu_j=1.8e6), parent="adapt", config=cfg)
    record(run_dir, "adapt", EnergyReading(duration=2, cpu_j=3.6e6), config=cfg)
    record(run_dir / "evals" / "base-test", "evaluate", EnergyReading(duration=1, cpu_j=0.36e6), config=cfg)
    summary = {"perplexity": 10.0, "bits_per_byte": 1.0, "tokens": 5, "bytes": 20}
    result = AdaptResult(str(run_dir), steps=1, tokens=64, seconds=1.0, block_size=32)
    rec = domain_record(DomainSpec(name="d", path=str(tiny_corpus_dir)), summary, summary, summary, summary,
                        result, seconds=3.0)
    assert rec["energy_kwh"] == pytest.approx(1.1) and rec["energy_method"] == "estimated"
    assert rec["delta_ppl_pct"] == 0.0  # the existing keys are kept


def test_energy_settings_are_read_at_the_edge_and_recorded_in_the_run(tmp_path, monkeypatch, tiny_llama_dir,
                                                                        tiny_corpus_dir):
    from odyssey.cli import run as cli_run
    from odyssey.config import load_yaml

    named = tmp_path / "energy.yaml"
    named.write_text("pue: 1.5\ngrid_intensity_g_per_kwh: 56\n")
    monkeypatch.setenv("ODYSSEY_ENERGY_CONFIG", str(named))
    assert EnergyMeter("cpu").config == EnergyConfig()  # the meter reads no environment
    out = tmp_path / "run"
    common = ["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out", str(out),
              "--block-size", "32", "--batch-size", "2", "--max-steps", "2", "--save-every", "1", "--json",
              "eval.max_tokens=100"]
    assert cli_run([*common, "energy.country_iso_code=FRA"]) == 0
    saved = load_yaml(out / "config.yaml")["energy"]  # the file's settings, then the command line's
    assert (saved["pue"], saved["grid_intensity_g_per_kwh"], saved["country_iso_code"]) == (1.5, 56, "FRA")
    (row, *_) = read_energy(out)
    assert float(row["pue"]) == 1.5 and row["country_iso_code"] == "FRA"
    # how a run is metered may change when it resumes (another machine, another grid)
    import shutil

    monkeypatch.delenv("ODYSSEY_ENERGY_CONFIG")
    (out / "result.json").unlink()
    shutil.rmtree(out / "checkpoint" / "step-000002")
    assert cli_run([*common, "--resume"]) == 0
    assert load_yaml(out / "config.yaml")["energy"]["pue"] == 1.0
