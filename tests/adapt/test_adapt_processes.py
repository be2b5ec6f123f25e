"""Training as users run it: killed with SIGKILL and resumed, and on two processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def adapt_args(model_dir, corpus, out, *extra):
    return ["adapt", "--model", str(model_dir), "--data", str(corpus), "--out", str(out), "--block-size", "32",
            "--lr", "3e-3", "eval.max_tokens=200", *extra]


def odyssey(*args, check=True, **kw):
    proc = subprocess.run([sys.executable, "-m", "odyssey", *args], env=ENV, capture_output=True, text=True, **kw)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_same_weights(a_dir, b_dir, **tol):
    a = load_file(str(a_dir / "model" / "model.safetensors"))
    b = load_file(str(b_dir / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        if tol:
            torch.testing.assert_close(a[k], b[k], **tol)
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    steps = ["--max-steps", "150", "--save-every", "10", "--batch-size", "4", "keep_checkpoints=3"]
    odyssey(*adapt_args(tiny_llama_dir, tiny_corpus_dir, tmp_path / "whole", *steps))

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "odyssey", *adapt_args(tiny_llama_dir, tiny_corpus_dir, killed, *steps)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoint" / "step-000030").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model").exists()

    odyssey(*adapt_args(tiny_llama_dir, tiny_corpus_dir, killed, *steps, "--resume"))
    assert_same_weights(tmp_path / "whole", killed)


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    common = ["--max-steps", "4", "eval_every=0"]
    odyssey(*adapt_args(tiny_llama_dir, tiny_corpus_dir, tmp_path / "one", *common, "--batch-size", "4"))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(REPO / "configs" / "accelerate" / "cpu-2proc.yaml"), "-m", "odyssey",
              *adapt_args(tiny_llama_dir, tiny_corpus_dir, tmp_path / "two", *common, "--batch-size", "2")]
    proc = subprocess.run(launch, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "two" / "checkpoint" / "step-000004" / "rng-rank1.pt").is_file()
    assert_same_weights(tmp_path / "one", tmp_path / "two", rtol=1e-4, atol=1e-5)
