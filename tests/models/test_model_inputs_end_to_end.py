"""A .gguf file, a peft adapter directory and a short model name each go through
`odyssey evaluate`, `odyssey adapt` and `odyssey study` (tiny models made in the tests)."""

import json
import shutil

import pytest

from odyssey.cli import run
from odyssey.models import catalog


@pytest.fixture
def short_name(tmp_path, monkeypatch, tiny_gguf):
    """`tiny-test`: a catalog entry whose package folder (on sys.path, never imported) holds the tiny GGUF."""
    import importlib

    pkg = tmp_path / "site" / "odyssey_e2e_tiny_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(tiny_gguf, pkg / "tiny.Q4_1.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setitem(catalog.CATALOG, "tiny-test", catalog.PackagedModel(
        name="tiny-test", package="x", module="odyssey_e2e_tiny_pkg", file="tiny.Q4_1.gguf", description="",
        parameters="", quantization="Q4_1", license="", download_mb=0, install="pip install x"))
    return "tiny-test"


@pytest.fixture(params=["gguf", "adapter", "short-name"])
def model_spec(request, tiny_gguf, tiny_adapter_dir):
    if request.param == "gguf":
        return str(tiny_gguf), "Q4_1"
    if request.param == "adapter":
        return str(tiny_adapter_dir), None
    return request.getfixturevalue("short_name"), "Q4_1"


def test_evaluate(tmp_path, capsys, model_spec, tiny_corpus_dir):
    spec, quant = model_spec
    out = tmp_path / "ev"
    code = run(["evaluate", "--model", spec, "--data", f"{tiny_corpus_dir}:test", "--json", "--out", str(out),
                "--context-length", "64"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed, saved = json.loads(captured.out), json.loads((out / "eval.json").read_text())
    assert printed["perplexity"] == saved["perplexity"] > 1
    assert saved["word_perplexity"] > saved["perplexity"]  # fewer words than tokens
    assert (saved["model_source"] or {}).get("quantization") == quant


def test_adapt_saves_the_model_and_records_the_quantization(tmp_path, model_spec, tiny_corpus_dir,
                                                            general_corpus_dir):
    spec, quant = model_spec
    out = tmp_path / "run"
    code = run(["adapt", "--model", spec, "--data", str(tiny_corpus_dir), "--general", str(general_corpus_dir),
                "--out", str(out), "--max-steps", "2", "--batch-size", "2", "--block-size", "32", "--json"])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 2 and result["evals"]["valid"]["after"]["perplexity"] > 1
    assert (result["model_source"] or {}).get("quantization") == quant
    config = json.loads((out / "model" / "config.json").read_text())
    assert (config.get("dequantized_from") or {}).get("quantization") == quant
    card = (out / "model" / "README.md").read_text()
    assert ("dequantized from" in card) == (quant is not None)
    if quant:
        assert "Q4_1" in card


def test_study(tmp_path, model_spec, tiny_corpus_dir, general_corpus_dir):
    from odyssey.config import resolve
    from odyssey.study.config import StudyConfig
    from odyssey.study.runner import run_study

    spec, _ = model_spec
    cfg = resolve(StudyConfig, overrides=[
        f"out={tmp_path / 'study'}", f"model={spec}", f"general={general_corpus_dir}", "recipe.train.block_size=32",
        "recipe.train.batch_size=2", "recipe.train.max_steps=2", "recipe.optim.lr=1e-3", "recipe.eval_every=0",
        "probes.run=[]"])
    cfg.domains = [{"name": "alpha", "path": str(tiny_corpus_dir), "kind": "register"}]
    results = run_study(StudyConfig.model_validate(cfg.model_dump()), progress=False)
    (domain,) = results["domains"]
    assert domain["name"] == "alpha" and domain["train_steps"] == 2
    assert domain["ppl_before"] > 1 and domain["ppl_after"] > 1


def test_odysseys_own_lora_adapter_is_a_model(tmp_path, tiny_gguf, tiny_corpus_dir):
    """OUT/adapter of a LoRA run on a GGUF base loads as the same model as OUT/model."""
    import torch

    from odyssey.models import load_model, load_tokenizer, model_source, resolve_source

    out = tmp_path / "lora"
    code = run(["adapt", "--model", str(tiny_gguf), "--data", str(tiny_corpus_dir), "--out", str(out),
                "--mitigation", "lora", "--max-steps", "2", "--batch-size", "2", "--block-size", "32",
                "--lr", "1e-2", "--json"])
    assert code == 0
    src = resolve_source(out / "adapter")
    assert (src.kind, src.base.kind, src.base.path) == ("adapter", "gguf", str(tiny_gguf.resolve()))
    adapter_model, merged = load_model(out / "adapter"), load_model(out / "model")
    ids = torch.tensor([load_tokenizer(out / "adapter")("the river court").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(adapter_model(ids).logits, merged(ids).logits, rtol=1e-4, atol=1e-4)
    assert model_source(adapter_model)["quantization"] == "Q4_1"
