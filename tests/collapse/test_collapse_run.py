"""The generation loop on a tiny model: data of each generation, resumption after a
kill between generations, results, report and the `odyssey collapse` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import make_documents
from odyssey.cli import run
from odyssey.collapse import run as collapse_run
from odyssey.collapse.config import STATISTICS, CollapseConfig
from odyssey.collapse.generate import block_documents, prompt_blocks
from odyssey.collapse.report import render_report
from odyssey.collapse.run import Experiment, real_positions, run_collapse, write_corpus
from odyssey.config import resolve
from odyssey.corpora.store import iter_split
from odyssey.errors import ConfigError
from odyssey.models import load_tokenizer

SETTINGS = ["generations=2", "keep_real=0,0.5", "generation.prompt_tokens=12", "generation.new_tokens=12",
            "generation.num_beams=2", "generation.batch_size=16", "recipe.train.epochs=2",
            "recipe.train.block_size=32", "recipe.train.batch_size=4", "recipe.optim.lr=0.01",
            "max_blocks=24", "max_test_blocks=16", "detect_fpr=0.1"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("collapse") / "domain"
    texts = make_documents(30, seed=7, min_words=40, max_words=60)
    docs = [{"text": t, "id": f"d{i}", "meta": {}} for i, t in enumerate(texts)]
    write_corpus(path, "domain", {"train": docs[:18], "valid": docs[18:24], "test": docs[24:]}, {})
    return path


def config(tiny_llama_dir, corpus_dir, out, *extra) -> CollapseConfig:
    return resolve(CollapseConfig, overrides=[f"model={tiny_llama_dir}", f"data={corpus_dir}", f"out={out}",
                                              "device=cpu", *SETTINGS, *extra])


def test_real_positions_are_a_fresh_seeded_share():
    a1, a2 = real_positions(200, 0.1, 1, seed=0), real_positions(200, 0.1, 2, seed=0)
    assert len(a1) == len(a2) == 20 and len(set(a1.tolist())) == 20
    assert not np.array_equal(a1, a2)  # sampled anew each generation
    assert np.array_equal(a1, real_positions(200, 0.1, 1, seed=0))  # and reproducibly
    assert len(real_positions(200, 0.0, 1, seed=0)) == 0


def test_blocks_and_their_documents(tiny_llama_dir):
    tok = load_tokenizer(tiny_llama_dir)
    docs = [{"text": t} for t in make_documents(5, seed=2)]
    blocks = prompt_blocks(docs, tok, 10)
    stream = [tok.eos_token_id]
    for d in docs:
        stream += tok(d["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n = (len(stream) - 1) // 10  # the stream has no trailing EOS
    assert blocks.shape == (n, 10) and blocks.ravel().tolist() == stream[:n * 10]
    out = block_documents(blocks, tok, "b")
    assert out[0]["id"] == "b0" and out[0]["meta"]["block"] == 0
    # The first block opens with EOS (not kept); a block across a document boundary is split there.
    joined = "".join(d["text"] for d in out)
    assert tok.eos_token not in joined
    assert len(out) > len(blocks)


def test_collapse_resumes_after_a_kill_between_generations(tiny_llama_dir, corpus_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "exp"
    cfg = config(tiny_llama_dir, corpus_dir, out)
    original = Experiment.generation

    def killed_before_generation_2(self, fraction, generation, position):
        if generation == 2:
            raise KeyboardInterrupt  # as if killed once generation 1 was recorded
        return original(self, fraction, generation, position)

    monkeypatch.setattr(Experiment, "generation", killed_before_generation_2)
    with pytest.raises(KeyboardInterrupt):
        run_collapse(cfg, progress=False)
    monkeypatch.setattr(Experiment, "generation", original)
    first = {name: (out / name / "model" / "model.safetensors").stat().st_mtime_ns
             for name in ("gen-00", "keep-0/gen-01")}
    assert not (out / "keep-0" / "gen-02").exists()

    adapted = []
    real_adapt = collapse_run.Experiment.train

    def counting_train(self, fraction, generation):
        adapted.append(collapse_run.run_name(fraction, generation))
        return real_adapt(self, fraction, generation)

    monkeypatch.setattr(Experiment, "train", counting_train)
    code = run(["collapse", "--model", str(tiny_llama_dir), "--data", str(corpus_dir), "--out", str(out),
                "--no-progress", "device=cpu", *SETTINGS])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # The finished generations were skipped, the rest run once.
    assert adapted == ["keep-0/gen-02", "keep-0.5/gen-01", "keep-0.5/gen-02"]
    assert "gen-00: done earlier" in captured.out and "keep-0/gen-01: done earlier" in captured.out
    for name, mtime in first.items():
        assert (out / name / "model" / "model.safetensors").stat().st_mtime_ns == mtime

    results = json.loads((out / "results.json").read_text())
    assert [s["keep_real"] for s in results["series"]] == [0.0, 0.5]
    for s in results["series"]:
        gens = s["generations"]
        assert [g["generation"] for g in gens] == [0, 1, 2]
        assert gens[0]["ppl_change_pct"] == 0.0
        assert all(len(g["seq_ppl"]) == 16 for g in gens)
        assert gens[0]["tail_mass"] <= 0.15  # generation 0 against its own 95th percentile
    assert results["series"][1]["generations"][1]["real_blocks"] == 12  # half of 24 blocks kept real
    assert set(results["detection"]) == {"keep-0", "keep-0.5"}
    assert 0 <= results["detection"]["keep-0"]["statistics"]["binoculars"]["auroc"] <= 1
    for det in results["detection"].values():  # the last generation by default; a detector fitted on valid
        assert set(det["by_generation"]) == {"2"} and det["generation"] == 2
        assert det["auto"]["statistic"] in STATISTICS and det["auto"]["fit_on"] == "valid"
        assert 0 <= det["auto"]["fpr"] <= 1 and 0 <= det["auto"]["tpr"] <= 1
        assert det["auto"]["real"] == det["auto"]["generated"] == 16  # measured on the test blocks
        stats = det["statistics"]
        assert all(v["auroc_higher"] + v["auroc_lower"] == pytest.approx(1) for v in stats.values())
    html = (out / "report.html").read_text()
    assert "<svg" in html and "keep-0.5" in html and "Fitted on the valid blocks" in html
    assert (out / "perplexity.png").read_bytes()[:4] == b"\x89PNG" and (out / "histograms.png").is_file()

    # The training data of a generation: 24 blocks, half of them real in the 0.5 series.
    train = list(iter_split(out / "keep-0.5" / "gen-01" / "data", "train"))
    sources = {d["meta"]["source"] for d in train}
    assert sources == {"real", "generation 0"}
    real_blocks = {d["meta"]["block"] for d in train if d["meta"]["source"] == "real"}
    generated = {d["meta"]["block"] for d in train if d["meta"]["source"] != "real"}
    assert real_blocks == set(real_positions(24, 0.5, 1, seed=0).tolist())
    assert generated <= set(range(24)) - real_blocks and len(generated) >= 10  # blank continuations are skipped
    assert not (out / "keep-0" / "gen-02" / "run" / "checkpoint").exists()  # cleaned up

    # Changing a setting that shaped the finished generations is refused.
    with pytest.raises(ConfigError, match="seed"):
        run_collapse(config(tiny_llama_dir, corpus_dir, out, "seed=3"), progress=False)


def test_report_escapes_generated_text(tmp_path):
    row = {"name": "gen-00", "generation": 0, "keep_real": None, "test_ppl": 10.0, "ppl_change_pct": 0.0,
           "seq_ppl": [5.0, 6.0, 9.0], "seq_ppl_median": 6.0, "tail_mass": 0.05, "distinct_2": 0.5,
           "vocab_size": 30, "repetition_rate": 0.1, "valid_ppl": 9.0, "seconds": 3.0,
           "samples": ["<script>alert(1)</script> & more"]}
    later = {**row, "generation": 1, "test_ppl": 12.0, "ppl_change_pct": 20.0, "seq_ppl": [3.0, 3.5, 40.0]}
    results = {"experiment": {"model": "m<b>", "data": "d", "config": {"generation": {"strategy": "beam"}}},
               "real": {"distinct_2": 0.7}, "series": [{"name": "keep-0", "keep_real": 0.0,
                                                        "generations": [row, later]}], "detection": {}}
    html = render_report(results, tmp_path / "r.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "m&lt;b&gt;" in html
    assert "+20.0%" in html


def test_bad_input_is_one_line(tiny_llama_dir, corpus_dir, tmp_path, capsys):
    code = run(["collapse", "--model", str(tiny_llama_dir), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "not a corpus directory" in err and "Traceback" not in err
    code = run(["collapse", "--model", str(tiny_llama_dir), "--data", str(corpus_dir), "--out", str(tmp_path / "o"),
                "--detect-model", "/nowhere/model"])
    err = capsys.readouterr().err
    assert code == 2 and "model not found: /nowhere/model" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "gen-00").exists()  # refused before any generation
    code = run(["collapse", "--data", str(tmp_path), "--keep-real", "0,1.5"])
    err = capsys.readouterr().err
    assert code == 2 and "keep_real" in err and "Traceback" not in err


def test_sampling_is_an_option_and_seeded(tiny_llama_dir):
    from odyssey.collapse.config import GenerationConfig
    from odyssey.collapse.generate import generate_continuations
    from odyssey.models import load_model

    tok, model = load_tokenizer(tiny_llama_dir), load_model(tiny_llama_dir)
    prompts = prompt_blocks([{"text": t} for t in make_documents(8, seed=4)], tok, 8)[:6]
    cfg = GenerationConfig(prompt_tokens=8, new_tokens=10, strategy="sample", temperature=1.5, top_p=0.9,
                           batch_size=4)
    a = generate_continuations(model, prompts, cfg, eos_id=tok.eos_token_id, seed=1, progress=False)
    b = generate_continuations(model, prompts, cfg, eos_id=tok.eos_token_id, seed=1, progress=False)
    c = generate_continuations(model, prompts, cfg, eos_id=tok.eos_token_id, seed=2, progress=False)
    assert a.shape == (6, 10) and np.array_equal(a, b) and not np.array_equal(a, c)
    beam = generate_continuations(model, prompts, GenerationConfig(prompt_tokens=8, new_tokens=10, num_beams=3),
                                  eos_id=tok.eos_token_id, progress=False)
    assert not np.array_equal(a, beam)


def test_detection_grid(tiny_llama_dir, corpus_dir, tmp_path):
    """Two decodings, generations 1 and 2: one experiment each, a row per detected generation."""
    from odyssey.collapse.grid import run_grid

    settings = [x for x in SETTINGS if not x.startswith(("generations=", "keep_real="))] + ["device=cpu"]
    grid = run_grid([str(corpus_dir)], tmp_path / "grid", decodings=["sample-t1.0", "top-p-0.9"],
                    generations=[1, 2], overrides=settings, model=str(tiny_llama_dir), progress=False)
    assert [(r["decoding"], r["generation"]) for r in grid["rows"]] == [
        ("sample-t1.0", 1), ("sample-t1.0", 2), ("top-p-0.9", 1), ("top-p-0.9", 2)]
    for r in grid["rows"]:
        assert set(r["auroc_higher"]) >= {"perplexity", "log_rank", "top1", "fast_detect", "binoculars"}
        assert r["fitted"]["statistic"] in STATISTICS and r["real"] == r["generated"] == 16
    exp = json.loads((tmp_path / "grid" / "domain" / "top-p-0.9" / "results.json").read_text())
    gen_cfg = exp["experiment"]["config"]["generation"]
    assert gen_cfg["strategy"] == "sample" and gen_cfg["top_p"] == 0.9 and exp["experiment"]["config"]["keep_real"] == [0.0]
    assert set(exp["detection"]["keep-0"]["by_generation"]) == {"1", "2"}
    table = (tmp_path / "grid" / "grid.md").read_text().splitlines()
    assert len(table) == 2 + 4 and "fast_detect" in table[0]


def test_detection_by_another_scoring_model(tiny_llama_dir, tiny_gpt2_dir, corpus_dir, tmp_path):
    """``detect_model`` (another tokenizer) scores the decoded text on its own, filed under
    its own name beside the default scorer's result; the generations are not redone."""
    from odyssey.collapse.calibrate import evaluate_detection
    from odyssey.collapse.config import DetectConfig
    from odyssey.collapse.detect import score_documents
    from odyssey.collapse.grid import run_grid

    settings = [x for x in SETTINGS if not x.startswith(("generations=", "keep_real="))] + ["device=cpu"]
    kw = dict(decodings=["sample-t1.0"], generations=[1], model=str(tiny_llama_dir), progress=False)
    run_grid([str(corpus_dir)], tmp_path / "grid", overrides=settings, **kw)
    exp_dir = tmp_path / "grid" / "domain" / "sample-t1.0"
    weights = exp_dir / "keep-0" / "gen-01" / "model" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    grid = run_grid([str(corpus_dir)], tmp_path / "grid", overrides=settings, detect_model=str(tiny_gpt2_dir), **kw)
    assert weights.stat().st_mtime_ns == stamp  # only the detection step ran again
    assert [r["scorer"] for r in grid["rows"]] == [tiny_llama_dir.name, tiny_gpt2_dir.name]
    assert tiny_gpt2_dir.name in (tmp_path / "grid" / "grid.md").read_text()
    det = json.loads((exp_dir / "results.json").read_text())["detection"]
    assert set(det) == {"keep-0", f"keep-0 @ {tiny_gpt2_dir}"}
    entry = det[f"keep-0 @ {tiny_gpt2_dir}"]
    assert entry["scorer"] == str(tiny_gpt2_dir) and entry["reference"] is None
    assert "binoculars" not in entry["statistics"] and "binoculars" in det["keep-0"]["statistics"]

    # Independently: decode the real test blocks and generation 1's continuations, score
    # the text with the other model through the public detect API.
    tok = load_tokenizer(tiny_llama_dir)
    eos = tok.eos_token_id
    cfg = resolve(CollapseConfig, overrides=[f"model={tiny_llama_dir}", f"data={corpus_dir}", f"out={exp_dir}",
                                             *settings, "generations=1", "keep_real=0"])
    real = Experiment(cfg, progress=False).real.blocks["test"]
    gen = np.load(exp_dir / "keep-0" / "gen-01" / "generated-test.npy")

    def as_docs(rows):
        return [{"text": tok.decode(r[r != eos].tolist(), skip_special_tokens=True)} for r in rows]

    dcfg = DetectConfig(model=str(tiny_gpt2_dir), device="cpu")
    expected = evaluate_detection(score_documents(as_docs(real), dcfg, progress=False),
                                  score_documents(as_docs(gen), dcfg, progress=False), 0.1)
    assert set(expected) == set(entry["statistics"])
    for stat, v in expected.items():
        assert entry["statistics"][stat]["auroc_higher"] == pytest.approx(v["auroc_higher"], abs=1e-9)
