"""The speed benchmarks: their FLOP counter against a hand count and torch's own counter,
and each script run in process at a tiny size on a tiny world (the shipped base model)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_corpus_dir
from helpers import make_documents

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_common as bc  # noqa: E402

# tiny Llama of conftest: hidden 32, 4 query heads and 2 key/value heads of 8, MLP 64, 2 layers, vocab 400
TINY_LAYER = 32 * 32 + 2 * (32 * 16) + 32 * 32 + 3 * 32 * 64  # q, k and v, o, gate/up/down = 9216
TINY_HEAD = 32 * 400


@pytest.fixture(scope="module")
def tiny_eager(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="eager").eval()


def test_model_shape_counts_the_decoders_matmul_weights(tiny_eager):
    shape = bc.model_shape(tiny_eager)
    assert (shape.layers, shape.d_model, shape.d_attn, shape.vocab, shape.d_ff) == (2, 32, 32, 400, 64)
    assert shape.decoder_matmul_params == 2 * TINY_LAYER


def test_forward_flops_match_a_hand_count(tiny_eager):
    shape = bc.model_shape(tiny_eager)
    # windows of 3 and 5 tokens: 6 + 15 causal (query, key) pairs; logits on all 8 positions
    hand = 2 * 2 * TINY_LAYER * 8 + 4 * 2 * 32 * (6 + 15) + 2 * TINY_HEAD * 8
    assert hand == 505_088
    assert bc.forward_flops(shape, [3, 5], 8) == hand
    assert bc.forward_flops(shape, [3, 5], 2) == hand - 2 * TINY_HEAD * 6  # head on 2 positions only
    assert bc.training_flops(shape, steps=2, batch_size=3, block_size=4) == 3 * bc.forward_flops(shape, [4] * 6, 24)


def test_forward_flops_agree_with_torchs_counter(tiny_eager):
    """torch's FlopCounterMode counts every matmul of a real forward; eager attention
    computes the full n x n scores, where the benchmark counts the causal triangle."""
    from torch.utils.flop_counter import FlopCounterMode

    n = 7
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        tiny_eager(input_ids=torch.arange(n)[None] % 400)
    shape = bc.model_shape(tiny_eager)
    full_square, triangle = 4 * 2 * 32 * n * n, 4 * 2 * 32 * n * (n + 1) // 2
    assert counter.get_total_flops() == bc.forward_flops(shape, [n], n) - triangle + full_square


@pytest.fixture(autouse=True)
def restored_environment(monkeypatch):
    """The scripts set ODYSSEY_HOME (a temporary folder they delete) and offline variables: undone after each test."""
    for key in ("ODYSSEY_HOME", "HF_DATASETS_CACHE", *bc.OFFLINE_ENV):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> Path:
    """A world with the layout the benchmarks read: short wiki-arts documents and long general ones."""
    world = tmp_path_factory.mktemp("world")
    write_corpus_dir(world / "domains" / "wiki-arts", make_documents(40, seed=1))
    write_corpus_dir(world / "general", make_documents(12, seed=2, min_words=200, max_words=400))
    return world


def check_speeds(speeds: dict, sides: tuple[str, str]) -> None:
    for side in sides:
        assert 0 < speeds[side]["fraction_of_rate"] < 1.5, (side, speeds[side])
        assert speeds[side]["median_s"] > 0


@pytest.mark.skipif(not __import__("importlib").util.find_spec("lm_eval"), reason="needs lm-eval")
def test_eval_benchmark_agrees_with_lm_eval_at_a_tiny_size(tiny_world, tmp_path):
    import eval_vs_lm_eval

    out = tmp_path / "eval.json"
    code = eval_vs_lm_eval.main(["--world", str(tiny_world), "--max-tokens", "600", "--repeats", "1",
                                 "--threads", "1", "--matmul-repeats", "1", "--in-process-only",
                                 "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["agree"]
    general = report["workloads"]["general"]
    assert general["windows"] > general["documents"]  # documents longer than a window
    assert general["tokens"] >= 600  # the leading documents up to --max-tokens
    for r in report["workloads"].values():
        assert r["bits_per_byte"]["relative_difference"] < 1e-6
        check_speeds(r["in_process"], ("odyssey", "lm-eval"))
    assert 0 < report["matmul"]["rate_gflops"] < 1e6


def test_train_benchmark_trains_the_same_steps_as_trainer(tiny_world, tmp_path):
    import train_vs_trainer

    out = tmp_path / "train.json"
    code = train_vs_trainer.main(["--world", str(tiny_world), "--train-tokens", "512", "--batch-size", "2",
                                  "--block-size", "128", "--repeats", "1", "--threads", "1",
                                  "--matmul-repeats", "1", "--in-process-only", "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["agree"]
    assert report["plan"]["steps"] == 2 and report["tokens"] == 512
    loss = report["in_process_final_loss"]
    assert loss["relative_difference"] < 1e-4 and 0 < loss["odyssey"] < 10
    check_speeds(report["in_process"], ("odyssey", "Trainer"))
