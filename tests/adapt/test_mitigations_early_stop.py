"""Early stopping: stops after `patience` evaluations without gain, OUT/model is the best step."""

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file
from test_mitigations_config import make_cfg

import odyssey.adapt.loop as loop
from odyssey.adapt.loop import adapt


class ScriptedValidLoss:
    """Stands in for evaluation: the valid loss at each step comes from a script."""

    def __init__(self, monkeypatch, losses: dict[int, float]):
        import odyssey.evaluate.run as ev

        self.losses, self.run, real_evaluate = losses, None, ev.evaluate_documents
        real_setup = loop.setup

        def setup(cfg, accelerator=None):
            self.run = real_setup(cfg, accelerator)
            return self.run

        def evaluate(model, tokenizer, docs, cfg):
            result = real_evaluate(model, tokenizer, docs, cfg)
            loss = self.losses[self.run.state.step]  # the scripted loss replaces the measured one
            result.nll_sum, result.perplexity = loss * result.tokens, math.exp(loss)
            return result

        monkeypatch.setattr(loop, "setup", setup)
        monkeypatch.setattr(ev, "evaluate_documents", evaluate)


def weights_of(path):
    return load_file(str(path / "model.safetensors"))


def test_stops_after_patience_and_keeps_the_best_step(tmp_path, monkeypatch, tiny_llama_dir, tiny_corpus_dir):
    losses = {0: 5.0, 2: 4.0, 4: 3.5, 6: 3.6, 8: 3.49, 10: 3.7, 12: 3.8, 14: 3.9}
    ScriptedValidLoss(monkeypatch, losses)
    out = tmp_path / "es"
    over = {"mitigation.methods": "[early-stop]", "mitigation.early_stop.patience": 2,
            "mitigation.early_stop.min_delta": 0.05, "train.max_steps": 20, "eval_every": 2, "save_every": 2,
            "keep_checkpoints": 20}
    result = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, **over), progress=False)
    # 3.49 at step 8 is better than 3.5 but not by min_delta: steps 6 and 8 bring no gain.
    assert (result.best_step, result.stopped_at, result.steps) == (4, 8, 8)
    assert json.loads((out / "result.json").read_text())["best_step"] == 4
    assert result.evals["valid"]["after"]["perplexity"] == pytest.approx(math.exp(3.5))
    saved = weights_of(out / "model")
    step4 = weights_of(out / "checkpoint" / "step-000004")
    step8 = weights_of(out / "checkpoint" / "step-000008")
    assert all(torch.equal(saved[k], step4[k]) for k in saved)
    assert any(not torch.equal(saved[k], step8[k]) for k in saved)
    train_steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
                   if json.loads(x)["kind"] == "train"]
    assert max(train_steps) == 8

    # Killed after step 6 and resumed: it stops at the same step with the same best weights.
    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    for name in ("model", "result.json", "checkpoint/step-000008"):
        shutil.rmtree(cut / name) if (cut / name).is_dir() else (cut / name).unlink()
    again = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, cut, resume=True, **over), progress=False)
    assert (again.best_step, again.stopped_at) == (4, 8)
    resumed = weights_of(cut / "model")
    assert all(torch.equal(saved[k], resumed[k]) for k in saved)


@pytest.mark.parametrize("methods", ["[early-stop]", "[early-stop,lora]"])
def test_a_run_that_only_gets_worse_keeps_the_base(tmp_path, monkeypatch, tiny_llama_dir, tiny_corpus_dir, methods):
    ScriptedValidLoss(monkeypatch, {0: 3.0, 1: 3.2, 2: 3.4, 3: 3.6})
    out = tmp_path / "worse"
    result = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, eval_every=1,
                            **{"mitigation.methods": methods, "mitigation.early_stop.patience": 2}), progress=False)
    assert (result.best_step, result.stopped_at) == (0, 2)
    base, saved = weights_of(tiny_llama_dir), weights_of(out / "model")
    assert saved.keys() == base.keys()
    for k in base:
        torch.testing.assert_close(saved[k], base[k], rtol=0, atol=1e-6 if "lora" in methods else 0)


def test_a_real_run_with_early_stop_runs_to_the_end_while_it_improves(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    result = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "real", eval_every=2,
                            **{"mitigation.methods": "[early-stop]"}), progress=False)
    assert result.steps == 6 and result.stopped_at is None and result.best_step == 6
    assert (tmp_path / "real" / "checkpoint" / "best" / "trained.safetensors").is_file()
