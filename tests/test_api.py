"""The Python API: odyssey.evaluate / adapt / study / diagnose / attribute take paths or loaded
objects and return typed results; the subpackages of the same names still work as packages."""

import types

import pytest

import odyssey
from odyssey.corpora.store import iter_split
from odyssey.errors import ConfigError
from odyssey.evaluate import EvalResult
from odyssey.models import load_model, load_tokenizer


def test_functions_are_also_the_subpackages():
    import odyssey.evaluate.run  # noqa: F401  (importing a submodule keeps the package callable)

    for name in ("evaluate", "adapt", "study"):
        pkg = getattr(odyssey, name)
        assert isinstance(pkg, types.ModuleType) and callable(pkg) and pkg.__name__ == f"odyssey.{name}"
    assert odyssey.evaluate.EvalConfig().stride is None  # package contents as before
    assert callable(odyssey.diagnose) and callable(odyssey.attribute)
    with pytest.raises(AttributeError):
        odyssey.no_such_thing  # noqa: B018


def test_evaluate_takes_paths_texts_and_loaded_models(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    by_path = odyssey.evaluate(str(tiny_llama_dir), f"{tiny_corpus_dir}:test", context_length=64)
    model, tok = load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)
    texts = [d["text"] for d in iter_split(tiny_corpus_dir, "test")]
    loaded = odyssey.evaluate(model, texts, tokenizer=tok, context_length=64, out=tmp_path / "ev")
    pair = odyssey.evaluate((model, tok), [{"text": t, "id": str(i)} for i, t in enumerate(texts)], context_length=64)
    assert isinstance(by_path, EvalResult) and isinstance(loaded, EvalResult)
    assert loaded.nll_sum == pytest.approx(by_path.nll_sum, rel=1e-6) == pytest.approx(pair.nll_sum, rel=1e-6)
    assert (loaded.tokens, loaded.documents) == (by_path.tokens, by_path.documents)
    assert (tmp_path / "ev" / "eval.json").is_file()
    with pytest.raises(ConfigError, match="needs its tokenizer"):
        odyssey.evaluate(model, texts)
    with pytest.raises(ConfigError, match="strid"):
        odyssey.evaluate(model, texts, tokenizer=tok, strid=3)


def test_adapt_a_loaded_model_and_attribute_results(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    from odyssey.adapt.loop import AdaptResult

    model, tok = load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)
    run = odyssey.adapt(model, tiny_corpus_dir, tmp_path / "run", tokenizer=tok, max_steps=2, batch_size=2,
                        block_size=32, lr=3e-3, overrides={"optim.weight_decay": 0.1})
    assert isinstance(run, AdaptResult) and run.steps == 2
    assert (tmp_path / "run" / "base-model" / "model.safetensors").is_file()  # the base, saved to resume from
    assert "weight_decay: 0.1" in (tmp_path / "run" / "config.yaml").read_text()
    assert (tmp_path / "run" / "model" / "README.md").is_file()  # the model card, as the CLI writes it
    before = odyssey.evaluate(model, f"{tiny_corpus_dir}:test", tokenizer=tok, context_length=64)
    after = odyssey.evaluate(str(tmp_path / "run"), f"{tiny_corpus_dir}:test", context_length=64)
    att = odyssey.attribute(before, after, tokenizer=tok)
    assert att.summary()["total_delta"] == pytest.approx(after.nll_sum - before.nll_sum, rel=1e-4)
    with pytest.raises(ConfigError, match="unknown setting"):
        odyssey.adapt(str(tiny_llama_dir), tiny_corpus_dir, tmp_path / "x", maxsteps=2)


def test_study_result_wraps_run_study(tmp_path, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir):
    s = odyssey.study(out=str(tmp_path / "s"), model=str(tiny_llama_dir), general=str(general_corpus_dir),
                      domains=[{"name": "alpha", "path": str(tiny_corpus_dir)}],
                      overrides={"recipe.train.max_steps": 2, "recipe.train.block_size": 32,
                                 "recipe.optim.lr": 1e-3, "recipe.eval_every": 0, "probes.run": []})
    assert isinstance(s, odyssey.api.StudyResult) and s.domain("alpha")["train_steps"] == 2
    assert s.report.is_file() and s.results["domains"] == s.domains
    with pytest.raises(KeyError, match="no domain 'beta'"):
        s.domain("beta")
