"""Shared fixtures: tiny random-initialized models (Llama with a BPE trained on the fly,
GPT-2 with GPT-2's real tokenizer) saved in HF layout, and small texts. Nothing is
downloaded."""

from __future__ import annotations

import pytest
import torch
import transformers

from helpers import make_documents
from odyssey.io import write_jsonl
from odyssey.models.presets import build_model, llama_config
from odyssey.models.tokenizer_train import train_bpe_tokenizer

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


@pytest.fixture(scope="session")
def documents() -> list[str]:
    return make_documents(60, seed=0)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, documents):
    """A 2-layer Llama (hidden 32) and a 400-token BPE, saved as safetensors."""
    out = tmp_path_factory.mktemp("tiny-llama")
    tok = train_bpe_tokenizer(documents, vocab_size=400, min_frequency=1, model_max_length=128)
    model = build_model(llama_config("tiny", len(tok), eos_token_id=tok.eos_token_id), seed=0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A 2-layer GPT-2 (n_embd 32) with GPT-2's real 50257-token tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from odyssey.models.gpt2_tokenizer import gpt2_tokenizer

    out = tmp_path_factory.mktemp("tiny-gpt2")
    tok = gpt2_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(params=["llama", "gpt2"])
def tiny_model_dir(request, tiny_llama_dir, tiny_gpt2_dir):
    """Both architectures, for contract tests that must hold for any causal LM."""
    return tiny_llama_dir if request.param == "llama" else tiny_gpt2_dir


@pytest.fixture
def text_corpus_file(tmp_path, documents):
    """A JSONL file of the sample documents."""
    path = tmp_path / "docs.jsonl"
    write_jsonl(path, ({"text": t, "id": f"d{i}"} for i, t in enumerate(documents)))
    return path


def write_corpus_dir(path, texts: list[str], ratios=(0.7, 0.15, 0.15)) -> None:
    """A corpus directory in the store layout, written directly (no cleaning)."""
    from odyssey.io import write_json

    n = len(texts)
    cut1, cut2 = int(n * ratios[0]), int(n * (ratios[0] + ratios[1]))
    splits = {"train": texts[:cut1], "valid": texts[cut1:cut2], "test": texts[cut2:]}
    for split, items in splits.items():
        write_jsonl(path / split / "shard-00000.jsonl",
                    ({"text": t, "id": f"{split}-{i}", "meta": {}} for i, t in enumerate(items)))
    write_json(path / "manifest.json", {"name": path.name, "splits": {s: {"documents": len(v)} for s, v in splits.items()}})


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory, documents):
    """A domain corpus (train/valid/test) of the sample documents."""
    path = tmp_path_factory.mktemp("corpus") / "domain"
    write_corpus_dir(path, documents)
    return path


@pytest.fixture(scope="session")
def general_corpus_dir(tmp_path_factory):
    """A second corpus, standing for general text."""
    path = tmp_path_factory.mktemp("corpus") / "general"
    write_corpus_dir(path, make_documents(30, seed=1))
    return path


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """Each test has its own $ODYSSEY_HOME (block and reference caches, energy.yaml), set where
    the command line reads it: nothing is read from or written to the user's ~/.cache/odyssey."""
    monkeypatch.setenv("ODYSSEY_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("ODYSSEY_JOBS", "1")  # studies run in the test's process (a test may ask for more)
    monkeypatch.delenv("ODYSSEY_ENERGY_CONFIG", raising=False)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory, tiny_llama_dir):
    """The tiny Llama as a Q4_1 GGUF file (llama.cpp's layout and metadata), alone in its folder."""
    from gguf_helpers import write_tiny_gguf

    return write_tiny_gguf(tiny_llama_dir, tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.Q4_1.gguf", "Q4_1")


@pytest.fixture(scope="session")
def tiny_adapter_dir(tmp_path_factory, tiny_llama_dir):
    """A LoRA adapter (peft layout, nonzero weights, no tokenizer) on the tiny Llama."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny-adapter")
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(out)  # adapter_config.json names tiny_llama_dir as the base
    return out
