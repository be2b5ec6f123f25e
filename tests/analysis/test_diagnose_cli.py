"""`odyssey diagnose` end to end on a tiny model: real similarity measures, the probe,
and the features cache of `diagnose fit`."""

import json

import pytest

import odyssey.analysis.diagnose as diag
from odyssey.analysis.config import DiagnoseConfig, PredictorFitConfig
from odyssey.analysis.predictor import PROBE_FEATURE, fit_predictor
from odyssey.cli import run
from odyssey.io import read_json, write_json

FEATS = ["ngram_overlap", "js_divergence", "base_bits_per_byte"]
FAST = ["--set", "similarity.embeddings=false", "--set", "similarity.bloom_bits_log2=16"]


def make_fit(path, features=FEATS):
    rows = []
    for i in range(6):
        x = i / 5
        rows.append({"name": f"d{i}", "study": "s", "kind": "custom", "delta_ppl_pct": 20 * x - 12 + (-1) ** i,
                     "forgetting_pct": 3.0 + x,
                     "features": {"ngram_overlap": x, "js_divergence": 0.5 - 0.3 * x + 0.01 * i % 3,
                                  "base_bits_per_byte": 6.0 - x + 0.1 * (i % 2), PROBE_FEATURE: 10 * x - 5}})
    write_json(path, fit_predictor(rows, PredictorFitConfig(features=features)))
    return path


def test_diagnose_json(tmp_path, capsys, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir):
    fit = make_fit(tmp_path / "fit.json")
    code = run(["diagnose", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
                "--reference", str(general_corpus_dir), "--fit", str(fit), "--json", *FAST])
    assert code == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert {"recommendation", "predicted_delta_ppl_pct", "interval", "features"} <= set(out)
    assert out["recommendation"] in ("adapt", "rely", "mitigate")
    lo, hi = out["interval"]
    assert lo <= out["predicted_delta_ppl_pct"] <= hi
    assert [f["name"] for f in out["features"]] == FEATS
    assert all({"value", "z", "contribution_pct", "direction"} <= set(f) for f in out["features"])
    assert out["similarity"]["base_bits_per_byte"] > 0 and out["reference_kind"] == "corpus"
    assert out["fit"]["path"] == str(fit)
    # the table view
    assert run(["diagnose", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
                "--reference", str(general_corpus_dir), "--fit", str(fit), *FAST]) == 0
    assert "evidence" in capsys.readouterr().out


def test_diagnose_errors_are_one_line(tmp_path, capsys, tiny_llama_dir, tiny_corpus_dir):
    assert run(["diagnose"]) == 2
    assert "--data required" in capsys.readouterr().err
    assert run(["diagnose", "--data", str(tiny_corpus_dir), "--fit", str(tmp_path / "none.json")]) == 2
    assert "fit not found" in capsys.readouterr().err
    fit = make_fit(tmp_path / "probe-fit.json", [*FEATS, PROBE_FEATURE])
    assert run(["diagnose", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
                "--fit", str(fit), *FAST]) == 2
    assert "--probe" in capsys.readouterr().err


def test_diagnose_with_probe(tmp_path, capsys, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir):
    fit = make_fit(tmp_path / "fit.json", [*FEATS, PROBE_FEATURE])
    code = run(["diagnose", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
                "--reference", str(general_corpus_dir), "--fit", str(fit), "--probe", "--json", *FAST,
                "--set", "probe.steps=2", "--set", "probe.max_bytes=2000"])
    assert code == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    p = out["probe"]
    assert p["steps"] == 2 and p["valid_ppl_before"] > 0 and p["epoch_steps"] >= 1
    assert p["delta_ppl_pct"] == pytest.approx(100 * (p["valid_ppl_after"] / p["valid_ppl_before"] - 1))
    assert PROBE_FEATURE in [f["name"] for f in out["features"]]


def test_fit_measures_once_then_reads_the_cache(tmp_path, monkeypatch, capsys, tiny_llama_dir, tiny_corpus_dir,
                                                general_corpus_dir):
    study = tmp_path / "study"
    domains = [(f"d{i}", str(tiny_corpus_dir if i % 2 else general_corpus_dir), -5.0 + 3 * i) for i in range(4)]
    write_json(study / "results.json", {
        "study": {"name": "tiny", "model": str(tiny_llama_dir), "general": str(general_corpus_dir)},
        "domains": [{"name": n, "kind": "custom", "path": p, "delta_ppl_pct": y, "forgetting_pct": 1.0}
                    for n, p, y in domains]})
    args = ["diagnose", "fit", str(study), "--features", ",".join(FEATS), *FAST]
    assert run(args) == 0, capsys.readouterr().err
    cache = read_json(study / "features.json")
    assert set(cache["domains"]) == {"d0", "d1", "d2", "d3"}
    assert cache["domains"]["d1"]["features"]["base_bits_per_byte"] > 0
    assert read_json(study / "fit.json")["features"] == FEATS

    def boom(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(diag, "measure", boom)
    assert run(args) == 0  # a refit reads features.json
    # other settings are other features: measured again
    with pytest.raises(AssertionError, match="measured again"):
        run([*args, "--set", "data_max_bytes=5000"])
    assert diag.settings_hash(DiagnoseConfig()) != diag.settings_hash(DiagnoseConfig(data_max_bytes=5000))


def test_a_rate_fit_on_a_model_without_a_known_final_rate(tmp_path, capsys, tiny_llama_dir, tiny_corpus_dir,
                                                          general_corpus_dir):
    """The tiny model has no provenance: without --lr the prediction is for adapting at its
    (unknown) final rate, ratio 1, said in a note; --lr needs --base-final-lr."""
    rows = []
    for i in range(6):
        x = i / 5
        for q in (1.0, 10.0):
            rows.append({"name": f"d{i}", "study": "s", "kind": "custom", "lr": 1e-4 * q, "lr_ratio": q,
                         "delta_ppl_pct": 20 * x - 12 + 3 * (q > 1) + (-1) ** i, "forgetting_pct": 3.0,
                         "features": {"ngram_overlap": x, "js_divergence": 0.5 - 0.3 * x + 0.01 * i % 3,
                                      "base_bits_per_byte": 6.0 - x + 0.1 * (i % 2)}})
    fit = tmp_path / "rate-fit.json"
    write_json(fit, fit_predictor(rows, PredictorFitConfig(features=FEATS)))
    args = ["diagnose", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir),
            "--reference", str(general_corpus_dir), "--fit", str(fit), *FAST]
    assert run([*args, "--json"]) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["lr"] is None and out["lr_ratio"] == 1.0 and out["base_final_lr"] is None
    assert any("final pretraining learning rate is unknown" in n for n in out["notes"])
    assert out["safe_lr"]["lr"] is None
    assert run([*args, "--lr", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert "--base-final-lr" in err and len(err.strip().splitlines()) == 1
    assert run([*args, "--lr", "1e-3", "--base-final-lr", "1e-4"]) == 0
    assert "at lr 0.001 (10× the base's final rate)" in capsys.readouterr().out
