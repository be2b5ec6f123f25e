"""Rephrasing: rewrites made once and reused from the cache (or from the run on resume), the
chosen mix of original and rephrased text, the generator's chat template, exact resume."""

import shutil

import pytest
import torch
from test_mitigations_config import make_cfg, weights

from odyssey.adapt.loop import adapt, setup
from odyssey.adapt.mitigations import rephrase as rp
from odyssey.adapt.mitigations.rephrase import build_prompt, choose_documents, chunk_text
from odyssey.corpora.store import iter_split
from odyssey.energy import read_energy
from odyssey.errors import ConfigError
from odyssey.io import odyssey_home, read_json, read_jsonl
from odyssey.models.presets import build_model, llama_config
from odyssey.report.model_card import write_model_card

TEMPLATE = ("{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}{% endfor %}"
            "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory, tiny_llama_dir):
    """A tiny instruction model: the tiny BPE with a chat template, a Llama with room for prompts."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("generator")
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = TEMPLATE
    tok.model_max_length = 1024
    build_model(llama_config("tiny", len(tok), eos_token_id=tok.eos_token_id, max_position_embeddings=1024),
                seed=1).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def rephrase_over(generator, **more):
    return {"mitigation.methods": "[rephrase]", "mitigation.rephrase.generator": str(generator),
            "mitigation.rephrase.max_documents": 3, "mitigation.rephrase.chunk_words": 12,
            "mitigation.rephrase.max_new_tokens": 6, "mitigation.rephrase.styles": "[encyclopedic,qa]",
            # sampled: the random tiny generator's greedy choice is a newline, again and again
            "mitigation.rephrase.temperature": 1.0, **more}


def setup_docs(tmp_path, name, model_dir, corpus, **over):
    run = setup(make_cfg(model_dir, corpus, tmp_path / name, **over))
    run.log.close()
    return run


def test_rewrites_are_cached_and_reused(tmp_path, tiny_llama_dir, tiny_corpus_dir, generator_dir, monkeypatch):
    first = setup_docs(tmp_path, "a", tiny_llama_dir, tiny_corpus_dir, **rephrase_over(generator_dir))
    stats = first.mit.info["rephrase"]
    assert stats["documents"] == 3 and stats["styles"] == ["encyclopedic", "qa"]
    assert stats["chunks"] == stats["generated_chunks"] > 3 and stats["cached_chunks"] == 0
    assert stats["generated_tokens"] > 0 and stats["tokens_per_second"] > 0
    cached = list((odyssey_home() / "cache" / "rephrase").rglob("*.json"))
    assert len(cached) == stats["chunks"]
    calls, real = [], rp.Generator.rewrite

    def stand_in(self, items):
        calls.append(items)
        return [("x", 1, 0.1)] * len(items)

    monkeypatch.setattr(rp.Generator, "rewrite", stand_in)
    second = setup_docs(tmp_path, "b", tiny_llama_dir, tiny_corpus_dir, **rephrase_over(generator_dir))
    assert calls == [] and second.mit.info["rephrase"]["cached_chunks"] == stats["chunks"]
    # the generation is an energy phase of the run that generated, not of the one that reused
    assert [r["phase"] for r in read_energy(tmp_path / "a")] == ["rephrase"]
    assert read_energy(tmp_path / "b") == []
    assert list(read_jsonl(tmp_path / "a" / "rephrased.jsonl")) == list(read_jsonl(tmp_path / "b" / "rephrased.jsonl"))
    assert (first.blocks == second.blocks).all()
    monkeypatch.setattr(rp.Generator, "rewrite", real)
    shutil.rmtree(odyssey_home() / "cache" / "rephrase")  # generated again: the same text from the seed
    setup_docs(tmp_path, "d", tiny_llama_dir, tiny_corpus_dir, **rephrase_over(generator_dir))
    assert list(read_jsonl(tmp_path / "a" / "rephrased.jsonl")) == list(read_jsonl(tmp_path / "d" / "rephrased.jsonl"))
    monkeypatch.setattr(rp.Generator, "rewrite", stand_in)
    # Another generation setting is another key: every chunk generated afresh.
    third = setup_docs(tmp_path, "c", tiny_llama_dir, tiny_corpus_dir,
                       **rephrase_over(generator_dir, **{"mitigation.rephrase.max_new_tokens": 5}))
    assert len(calls) == stats["chunks"] == third.mit.info["rephrase"]["generated_chunks"]


def test_the_mix_keeps_or_replaces_the_originals(tmp_path, tiny_llama_dir, tiny_corpus_dir, generator_dir):
    originals = list(iter_split(tiny_corpus_dir, "train"))
    keep = setup_docs(tmp_path, "keep", tiny_llama_dir, tiny_corpus_dir, **rephrase_over(generator_dir))
    rows = list(read_jsonl(tmp_path / "keep" / "rephrased.jsonl"))
    assert {r["meta"]["style"] for r in rows} == {"encyclopedic", "qa"}
    sources = {r["meta"]["rephrased_from"] for r in rows}
    assert len(sources) == 3 and sources <= {d["id"] for d in originals}
    assert read_json(tmp_path / "keep" / "rephrase.json")["keep_original"] is True
    swap = setup_docs(tmp_path, "swap", tiny_llama_dir, tiny_corpus_dir,
                      **rephrase_over(generator_dir, **{"mitigation.rephrase.keep_original": "false"}))
    # originals + rewrites, against originals - the rewritten ones + rewrites
    assert len(keep.blocks) > len(swap.blocks)
    assert swap.mit.info["rephrase"]["cached_chunks"] == keep.mit.info["rephrase"]["chunks"]


def test_resume_reads_the_runs_own_rewrites_when_the_cache_is_gone(tmp_path, tiny_llama_dir, tiny_corpus_dir,
                                                                   generator_dir):
    over = dict(save_every=2, keep_checkpoints=5, **rephrase_over(generator_dir))
    full, cut = tmp_path / "full", tmp_path / "cut"
    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, full, **over), progress=False)
    shutil.copytree(full, cut)
    for name in ("model", "result.json", "checkpoint/step-000006"):
        path = cut / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(odyssey_home() / "cache" / "rephrase")
    resumed = adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, cut, resume=True, **over), progress=False)
    assert resumed.mitigation["rephrase"]["generated_chunks"] == 0
    a, b = weights(full), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
    card = write_model_card(full).read_text()  # the synthetic text is named in the training data
    assert "rewrites of training documents | training: synthetic text" in card and "generator0" in card


def test_chunks_prompts_and_the_document_sample():
    text = "One two three. Four five six seven.\n\nEight nine ten eleven twelve thirteen fourteen. " + "w " * 30
    chunks = chunk_text(text, chunk_words=8, max_chunks=3)
    assert chunks[0] == "One two three. Four five six seven."  # whole sentences while they fit
    assert len(chunks) == 3 and all(len(c.split()) <= 8 for c in chunks)
    assert chunk_text("", 8, 2) == []

    class Plain:
        chat_template = None

    assert build_prompt(Plain(), "qa", "Some text.").endswith("Some text.\n\nRewritten:\n")
    assert choose_documents(10, 4, seed=0) == choose_documents(10, 4, seed=0) != choose_documents(10, 4, seed=1)
    assert choose_documents(3, 4, seed=0) == [0, 1, 2]


def test_a_generator_too_short_for_its_prompts_is_a_config_error(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    with pytest.raises(ConfigError, match="generator's context of 128"):
        setup_docs(tmp_path, "short", tiny_llama_dir, tiny_corpus_dir, **rephrase_over(
            tiny_llama_dir, **{"mitigation.rephrase.chunk_words": 100, "mitigation.rephrase.max_new_tokens": 100}))
