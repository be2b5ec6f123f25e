"""The model card of a real (tiny) adapt run: YAML metadata that parses and holds the
run's figures, data provenance from the manifests, energy, probes, and no corpus text."""

import json
import re

import pytest
import yaml

from helpers import make_documents
from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.loop import adapt
from odyssey.analysis.probes import (
    BiasProbeConfig,
    MemorizationProbeConfig,
    bias_probe,
    memorization_probe,
    save_probe,
)
from odyssey.cli import run as cli_run
from odyssey.config import resolve
from odyssey.errors import DataError
from odyssey.io import read_json, write_json, write_jsonl
from odyssey.report.model_card import write_model_card

NASTY = 'dom<script>alert(1)</script>|x: "y"\n---\nz'  # HTML, markdown and YAML breakers


def corpus(path, texts, name, license_):
    n = len(texts)
    splits = {"train": texts[:int(n * 0.7)], "valid": texts[int(n * 0.7):int(n * 0.85)], "test": texts[int(n * 0.85):]}
    for split, items in splits.items():
        write_jsonl(path / split / "shard-00000.jsonl",
                    ({"text": t, "id": f"{split}-{i}", "meta": {}} for i, t in enumerate(items)))
    write_json(path / "manifest.json", {
        "name": name, "documents": n, "license": license_,
        "splits": {s: {"documents": len(v), "sha256": f"{s}-hash"} for s, v in splits.items()},
        "sources": [{"name": "src", "package": "some-pkg", "version": "1.2", "license": license_,
                     "sha256": "ab" * 32}]})
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_llama_dir):
    tmp = tmp_path_factory.mktemp("card")
    texts = make_documents(40, seed=5)
    domain = corpus(tmp / "domain", texts, NASTY, "CC-BY-4.0")
    general = corpus(tmp / "general", make_documents(20, seed=6), "general", "public domain")
    out = tmp / "run"
    cfg = resolve(AdaptConfig, overrides=[
        f"model={tiny_llama_dir}", f"data={domain}", f"out={out}", f"general={general}", "train.block_size=32",
        "train.batch_size=4", "train.max_steps=3", "optim.lr=5e-3", "eval.batch_size=4"])
    adapt(cfg, progress=False)
    fast = {"n_boot": 200, "device": "cpu"}
    save_probe(bias_probe(str(out), against=str(tiny_llama_dir), config=BiasProbeConfig(categories=["age"], **fast)),
               out / "probes")
    save_probe(memorization_probe(str(out), domain, against=str(tiny_llama_dir), config=MemorizationProbeConfig(
        sequences=4, prefix_tokens=8, suffix_tokens=8, membership_documents=4, **fast)), out / "probes")
    return out, texts


def split_card(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_card_metadata_holds_the_run_figures(run_dir):
    out, _ = run_dir
    path = write_model_card(out, base_model="tiny-base")
    assert path == out / "model" / "README.md"
    meta, body = split_card(path.read_text(encoding="utf-8"))
    result = read_json(out / "result.json")
    assert meta["base_model"] == "tiny-base" and meta["library_name"] == "transformers"
    assert "odyssey" in meta["tags"] and "datasets" not in meta  # local corpora are no Hub datasets
    assert [s["corpus"] for s in meta["odyssey"]["data_sources"]] == [NASTY, "general"]
    res = meta["odyssey"]["results"]
    for role, split in (("in_domain", "valid"), ("general", "general")):
        for when in ("before", "after"):
            assert res[role][f"perplexity_{when}"] == result["evals"][split][when]["perplexity"]
            assert res[role][f"bits_per_byte_{when}"] == result["evals"][split][when]["bits_per_byte"]
    g = result["evals"]["general"]
    assert meta["odyssey"]["forgetting_pct"] == pytest.approx(
        100 * (g["after"]["perplexity"] / g["before"]["perplexity"] - 1))
    values = {m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert result["evals"]["valid"]["after"]["perplexity"] in values
    src = meta["odyssey"]["data_sources"][0]
    assert (src["license"], src["sha256"], src["split_sha256"]["train"]) == ("CC-BY-4.0", "ab" * 32, "train-hash")
    assert meta["odyssey"]["recipe"]["steps"] == 3 == result["steps"]
    assert meta["odyssey"]["recipe"]["lr"] == 5e-3
    assert meta["odyssey"]["architecture"]["parameters"] > 0
    energy = meta["odyssey"]["energy"]
    assert energy["kwh"] > 0 and energy["phases"]
    if energy["estimated"]:
        assert "**estimated**" in body
    probes = meta["odyssey"]["probes"]
    assert set(probes) == {"bias", "memorization"}
    bias = read_json(out / "probes" / "bias.json")
    assert probes["bias"]["categories"]["age"]["shift"] == bias["categories"]["age"]["shift"]
    for section in ("## Model description", "## Training data", "## Training recipe", "## Results", "## Energy",
                    "## Bias and memorization probes", "## Intended use", "## Limitations"):
        assert section in body


def test_card_has_no_corpus_text_and_escapes_names(run_dir):
    out, texts = run_dir
    text = write_model_card(out).read_text(encoding="utf-8")
    _, body = split_card(text)
    for t in texts:  # not even a sentence-sized piece of any document
        for i in range(0, max(1, len(t) - 40), 40):
            assert t[i:i + 40] not in text
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_card_without_probes_and_cli(tmp_path, run_dir, capsys):
    import shutil

    out, _ = run_dir
    bare = tmp_path / "bare"
    shutil.copytree(out, bare)
    shutil.rmtree(bare / "probes")
    _, body = split_card(write_model_card(bare).read_text(encoding="utf-8"))
    assert "No probes were run" in body
    assert cli_run(["model-card", str(bare), "--probes", str(out / "probes")]) == 0
    meta, _ = split_card((bare / "model" / "README.md").read_text(encoding="utf-8"))
    assert set(meta["odyssey"]["probes"]) == {"bias", "memorization"}
    assert cli_run(["model-card", str(tmp_path / "nope")]) == 2
    assert "has no config.yaml" in capsys.readouterr().err
    with pytest.raises(DataError):
        write_model_card(tmp_path)
    json.dumps(meta)  # plain data all the way down


def test_card_metadata_is_hub_valid_and_leaks_no_local_path(run_dir, tiny_llama_dir):
    import csv

    from huggingface_hub import ModelCard

    out, _ = run_dir
    text = write_model_card(out).read_text(encoding="utf-8")  # base model: the local tiny model directory
    meta, body = split_card(text)
    assert "base_model" not in meta  # a local path is nobody's base_model on the Hub
    assert str(tiny_llama_dir) not in text and str(out) not in text
    assert f"**{tiny_llama_dir.name}**" in body  # named by its directory
    # The Hub's client reads the card back: model-index, names with YAML breakers.
    card = ModelCard(text)
    results = card.data.eval_results
    assert {(r.dataset_name, r.metric_type) for r in results} >= {(NASTY, "perplexity"), (NASTY, "bits_per_byte")}
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", r.dataset_type) for r in results)
    assert meta["odyssey"]["data_sources"][0]["corpus"] == NASTY
    # co2_eq_emissions in grams: the energy.csv rows of the run and its evaluations, top level only.
    rows = [r for f in [out / "energy.csv", *sorted(out.glob("evals/*/energy.csv"))]
            for r in csv.DictReader(open(f, encoding="utf-8")) if not r["parent_phase"]]
    co2 = meta["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(1000 * sum(float(r["emissions"]) for r in rows), rel=1e-6)
    assert co2["emissions"] > 0 and co2["training_type"] == "fine-tuning" and "kWh" in co2["source"]
    # A Hub id given by the user is kept.
    meta, _ = split_card(write_model_card(out, base_model="openai-community/gpt2").read_text(encoding="utf-8"))
    assert meta["base_model"] == "openai-community/gpt2"


@pytest.mark.parametrize(("name", "hub"), [("gpt2", "gpt2"), ("openai-community/gpt2", "openai-community/gpt2"),
                                          ("/home/me/base", None), ("./base", None), ("runs/legal/model", None),
                                          ("a/b/c", None), ("bad name", None), ("", None)])
def test_hub_id(name, hub):
    from odyssey.report.model_card import hub_id

    assert hub_id(name) == hub


def test_no_metadata_line_can_close_the_front_matter(run_dir):
    out, _ = run_dir
    text = write_model_card(out).read_text(encoding="utf-8")
    head = text[4:text.index("\n---\n", 4)]
    assert all(line.strip() != "---" for line in head.splitlines())  # the corpus name's "---" stays escaped
    assert yaml.safe_load(head)["odyssey"]["data_sources"][0]["corpus"] == NASTY
