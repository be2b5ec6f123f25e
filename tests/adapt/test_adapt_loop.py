"""The training loop end to end on tiny models: run layout, metrics, resume, errors."""

import json

import pytest
import torch
from safetensors.torch import load_file

from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.loop import adapt
from odyssey.cli import run as cli_run
from odyssey.config import resolve
from odyssey.errors import ConfigError, TrainingError


def make_cfg(model_dir, corpus, out, **over) -> AdaptConfig:
    items = [f"model={model_dir}", f"data={corpus}", f"out={out}", "train.block_size=32",
             "train.batch_size=4", "train.max_steps=6", "optim.lr=5e-3", "schedule.warmup_steps=1",
             "eval.batch_size=4", "log_every=1"]
    items += [f"{k}={v}" for k, v in over.items()]
    return resolve(AdaptConfig, overrides=items)


def weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_adapt_writes_a_complete_run(tmp_path, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir):
    out = tmp_path / "run"
    cfg = make_cfg(tiny_llama_dir, tiny_corpus_dir, out, general=general_corpus_dir, eval_every=3, save_every=2)
    result = adapt(cfg, progress=False)
    assert result.steps == 6 and result.tokens == 6 * 4 * 32
    for name in ("config.yaml", "metrics.jsonl", "result.json", "model/model.safetensors", "model/tokenizer.json"):
        assert (out / name).is_file(), name
    steps = sorted(p.name for p in (out / "checkpoint").iterdir())
    assert steps == ["step-000004", "step-000006"]  # keep_checkpoints=2
    assert {"optimizer.pt", "rng-rank0.pt", "state.json", "model.safetensors"} <= {
        p.name for p in (out / "checkpoint" / "step-000006").iterdir()}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = {(r["split"], r["step"]) for r in rows if r["kind"] == "eval"}
    assert evals == {(s, k) for s in ("valid", "general") for k in (0, 3, 6)}
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    # A high learning rate on a tiny domain must lower its validation perplexity.
    valid = result.evals["valid"]
    assert valid["after"]["perplexity"] < valid["before"]["perplexity"]


def test_gpt2_with_real_tokenizer_trains(tmp_path, tiny_gpt2_dir, tiny_corpus_dir):
    result = adapt(make_cfg(tiny_gpt2_dir, tiny_corpus_dir, tmp_path / "g", **{"train.max_steps": 2}), progress=False)
    assert result.steps == 2 and (tmp_path / "g" / "model" / "model.safetensors").is_file()


def test_resume_from_checkpoint_ends_with_the_same_weights(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    import shutil

    full = tmp_path / "full"
    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, full, save_every=2, keep_checkpoints=5), progress=False)
    # Make a copy that "died" after step 4: drop everything written later.
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    for name in ("model", "result.json", "checkpoint/step-000006"):
        shutil.rmtree(cut / name) if (cut / name).is_dir() else (cut / name).unlink()
    cfg = make_cfg(tiny_llama_dir, tiny_corpus_dir, cut, save_every=2, keep_checkpoints=5, resume=True)
    cfg.out = str(cut)
    adapt(cfg, progress=False)
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    train_steps = [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().splitlines()
                   if json.loads(x)["kind"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6]  # no duplicated lines after resume


def test_existing_run_needs_resume_or_overwrite(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    out = tmp_path / "r"
    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, **{"train.max_steps": 1}), progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, **{"train.max_steps": 1}), progress=False)
    with pytest.raises(ConfigError, match="differ"):
        cfg = make_cfg(tiny_llama_dir, tiny_corpus_dir, out, **{"train.max_steps": 1, "optim.lr": 1.0})
        (out / "result.json").unlink()
        cfg.resume = True
        adapt(cfg, progress=False)
    again = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, overwrite=True, **{"train.max_steps": 1}),
                  progress=False)
    assert again.steps == 1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_llama_dir, tiny_corpus_dir, monkeypatch):
    import odyssey.adapt.loop as loop

    real_step = loop._train_step.__wrapped__ if hasattr(loop._train_step, "__wrapped__") else loop._train_step
    calls = {"n": 0}

    def poisoned(run, step):
        calls["n"] += 1
        if step == 3:  # the loss of the 4th step is NaN, as after a divergence
            for p in run.model.parameters():
                p.data.fill_(float("nan"))
        return real_step(run, step)

    monkeypatch.setattr(loop, "_train_step", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match="nan") as caught:
        adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, save_every=1, keep_checkpoints=10), progress=False)
    last = sorted((out / "checkpoint").iterdir())[-1]
    assert last.name == "step-000003"
    assert "step-000003 is kept" in caught.value.hint
    assert all(torch.isfinite(t).all() for t in load_file(str(last / "model.safetensors")).values())


def test_cli_adapt_and_bad_input(tmp_path, tiny_llama_dir, tiny_corpus_dir, capsys):
    out = tmp_path / "cli"
    code = cli_run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out", str(out),
                    "--max-steps", "2", "--block-size", "32", "--batch-size", "2", "--json", "eval.batch_size=4"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["steps"] == 2 and "valid" in printed["evals"]
    code = cli_run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tmp_path / "missing"),
                    "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "data not found" in err and "Traceback" not in err
    code = cli_run(["adapt", "--model", str(tmp_path / "nomodel"), "--data", str(tiny_corpus_dir),
                    "--out", str(tmp_path / "y")])
    assert code == 2 and "not found" in capsys.readouterr().err


def test_report_to_tensorboard_writes_event_files(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb"
    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, report_to="[tensorboard]", **{"train.max_steps": 2}),
          progress=False)
    assert list(out.rglob("events.out.tfevents.*")), "no TensorBoard event file"


def test_max_tokens_caps_a_large_domain_and_leaves_a_small_one(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    """32-token blocks, 4 per step: a cap of 200 tokens is ceil(200 / 32) = 7 blocks, 2 steps;
    a cap above the domain's size trains the one epoch it would without a cap."""
    one_epoch = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "epoch", **{"train.max_steps": "null",
                                                                                       "eval_every": 0}),
                      progress=False)
    assert one_epoch.steps > 2
    capped = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "capped", **{
        "train.max_steps": "null", "train.max_tokens": 200, "eval_every": 0}), progress=False)
    assert capped.steps == 2
    roomy = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, tmp_path / "roomy", **{
        "train.max_steps": "null", "train.max_tokens": 10**9, "eval_every": 0}), progress=False)
    assert roomy.steps == one_epoch.steps
