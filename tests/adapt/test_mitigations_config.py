"""Mitigation settings: parsing, the combinations refused with a clear message, the CLI."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from odyssey.adapt.config import AdaptConfig
from odyssey.adapt.loop import adapt
from odyssey.cli import run as cli_run
from odyssey.config import resolve
from odyssey.errors import ConfigError


def make_cfg(model_dir, corpus, out, **over) -> AdaptConfig:
    """A tiny, fast run (as in test_adapt_loop), with any dotted override."""
    items = [f"model={model_dir}", f"data={corpus}", f"out={out}", "train.block_size=32",
             "train.batch_size=4", "train.max_steps=6", "optim.lr=5e-3", "schedule.warmup_steps=1",
             "eval.batch_size=4", "eval.max_tokens=400", "log_every=1"]
    items += [f"{k}={v}" for k, v in over.items()]
    return resolve(AdaptConfig, overrides=items)


def weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def assert_resume_is_exact(tmp_path, model_dir, corpus, **over):
    """Run 6 steps; copy the run as if killed after step 4; resume; the weights must be equal."""
    common = dict(save_every=2, keep_checkpoints=5, **over)
    full, cut = tmp_path / "full", tmp_path / "cut"
    result = adapt(make_cfg(model_dir, corpus, full, **common), progress=False)
    shutil.copytree(full, cut)
    for name in ("model", "adapter", "result.json", "checkpoint/step-000006"):
        if (cut / name).is_dir():
            shutil.rmtree(cut / name)
        elif (cut / name).exists():
            (cut / name).unlink()
    resumed = adapt(make_cfg(model_dir, corpus, cut, resume=True, **common), progress=False)
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.evals["valid"]["after"]["perplexity"] == result.evals["valid"]["after"]["perplexity"]
    return result


BASE = ["model=m", "data=d", "out=o"]


def test_defaults_are_plain_adaptation_and_methods_parse():
    assert resolve(AdaptConfig, overrides=BASE).mitigation.methods == []
    cfg = resolve(AdaptConfig, overrides=[*BASE, "general=g", "mitigation.methods=replay,l2sp,replay",
                                          "mitigation.replay.ratio=0.4", "mitigation.early-stop.patience=5"])
    assert cfg.mitigation.methods == ["replay", "l2sp"]
    assert cfg.mitigation.replay.ratio == 0.4 and cfg.mitigation.early_stop.patience == 5
    assert "mitigation" not in AdaptConfig.RESUMABLE_CHANGES


@pytest.mark.parametrize("extra,message", [
    (["mitigation.methods=[replay]"], "replay needs general text"),
    (["mitigation.methods=[ewc]"], "ewc needs general text"),
    (["mitigation.methods=[early-stop]"], "eval_every>0"),
    (["general=g", "mitigation.methods=[lora,l2sp]"], "lora cannot be combined"),
    (["mitigation.methods=[lora,freeze]"], "set freeze.first_k or freeze.all_but_top_k"),
    (["mitigation.methods=[freeze]", "mitigation.freeze.embeddings=false"], "freezes nothing"),
    (["mitigation.freeze.first_k=1", "mitigation.freeze.all_but_top_k=1"], "not both"),
    (["mitigation.methods=[dropout]"], "unknown mitigation .dropout."),
    (["mitigation.replay.ratio=1.5"], "ratio"),
    (["mitigation.selective.categories=[domain]"], "domain terms"),
])
def test_bad_combinations_are_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(">", ">")):
        resolve(AdaptConfig, overrides=[*BASE, *extra])


def test_replay_data_replaces_the_general_corpus():
    cfg = resolve(AdaptConfig, overrides=[*BASE, "mitigation.methods=[replay]", "mitigation.replay.data=g2"])
    assert cfg.mitigation.replay.data == "g2"


def test_cli_mitigation_option(tmp_path, tiny_llama_dir, tiny_corpus_dir, general_corpus_dir, capsys):
    import json

    out = tmp_path / "cli"
    code = cli_run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out", str(out),
                    "--general", str(general_corpus_dir), "--max-steps", "2", "--block-size", "32",
                    "--batch-size", "2", "--json", "--mitigation", "replay, l2sp", "mitigation.replay.ratio=0.5",
                    "eval.max_tokens=200"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["mitigation"]["replay"]["ratio"] == 0.5
    assert "methods:\n  - replay\n  - l2sp" in (out / "config.yaml").read_text()
    assert "replay" in (out / "model" / "README.md").read_text()  # the command composes the model card
    code = cli_run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out",
                    str(tmp_path / "bad"), "--mitigation", "replay"])
    err = capsys.readouterr().err
    assert code == 2 and "replay needs general text" in err and "Traceback" not in err
    code = cli_run(["adapt", "--model", str(tiny_llama_dir), "--data", str(tiny_corpus_dir), "--out",
                    str(tmp_path / "bad2"), "--mitigation", "replay,nonsense", "--general", str(general_corpus_dir)])
    assert code == 2 and "nonsense" in capsys.readouterr().err


def test_runs_saved_before_mitigations_existed_still_resume(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    import yaml

    out = tmp_path / "old"
    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, save_every=2), progress=False)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    del saved["mitigation"]  # as an older odyssey wrote it
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    (out / "result.json").unlink()
    assert adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, save_every=2, resume=True), progress=False).steps == 6
    (out / "result.json").unlink()
    with pytest.raises(ConfigError, match=r"differ from its config.yaml \(mitigation\.methods: \[\] -> \['l2sp'\]\)"):
        adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, save_every=2, resume=True,
                       **{"mitigation.methods": "[l2sp]"}), progress=False)


def test_early_stop_needs_a_valid_split(tmp_path, tiny_llama_dir, text_corpus_file):
    with pytest.raises(ConfigError, match="needs a valid split"):
        adapt(make_cfg(tiny_llama_dir, text_corpus_file, tmp_path / "nv", eval_every=2,
                       **{"mitigation.methods": "[early-stop]"}), progress=False)
    assert not (tmp_path / "nv" / "config.yaml").exists()
