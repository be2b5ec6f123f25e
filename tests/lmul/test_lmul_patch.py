"""Patching a model's products with L-Mul, counting them, the energy table, the studies and the CLI."""

import json

import pytest
import torch

from odyssey.cli import run as cli_run
from odyssey.config import resolve
from odyssey.errors import ModelError
from odyssey.lmul.config import LMulEvalConfig, OpEnergy, PrecisionConfig
from odyssey.lmul.energy_model import OpCount, forward_energy
from odyssey.lmul.patch import ATTENTION_NAME, LMulLinear, count_forward, lmul_patched
from odyssey.models import load_model


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))


def logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids, use_cache=False).logits


@pytest.mark.parametrize("where", ["linear", "attention", "all"])
def test_patch_changes_logits_a_little_and_restores_the_model(tiny, ids, where):
    exact = logits(tiny, ids)
    attn_before = tiny.config._attn_implementation
    with lmul_patched(tiny, where=where, mantissa=4) as state:
        approx = logits(tiny, ids)
    assert not torch.equal(approx, exact)
    rel = (approx - exact).norm() / exact.norm()
    assert 0 < rel < 0.2, rel
    # same top prediction at most positions
    assert (approx.argmax(-1) == exact.argmax(-1)).float().mean() > 0.7
    assert torch.equal(logits(tiny, ids), exact)  # restored
    assert tiny.config._attn_implementation == attn_before
    assert all(type(m) is not LMulLinear for m in tiny.modules())
    n_linear = sum(type(m) is torch.nn.Linear for m in tiny.modules())
    n_layers = tiny.config.num_hidden_layers
    if where == "linear":  # only the Linear layers, every one of them, the head included
        assert state.linear_calls == n_linear and state.attention_calls == 0
    elif where == "attention":
        assert state.linear_calls == 0 and state.attention_calls == n_layers
    else:
        assert state.linear_calls == n_linear and state.attention_calls == n_layers


def test_linear_patch_is_exactly_the_lmul_matmul(tiny):
    from odyssey.lmul.kernels import lmul_matmul

    layer = tiny.model.layers[0].mlp.up_proj
    x = torch.randn(3, 5, layer.in_features)
    with lmul_patched(tiny, where="linear", mantissa=3), torch.no_grad():
        y = layer(x)
        assert type(layer) is LMulLinear and tiny.config._attn_implementation != ATTENTION_NAME
    want = lmul_matmul(x.reshape(-1, layer.in_features), layer.weight.detach().t(), 3).reshape(3, 5, -1)
    assert torch.equal(y, want)


def test_patched_model_refuses_gradients(tiny, ids):
    with lmul_patched(tiny, where="linear"), pytest.raises(ModelError, match="no gradient"):
        tiny(input_ids=ids).logits.sum()
    with pytest.raises(ModelError), lmul_patched(tiny, where="all", mantissa=30):
        pass
    with pytest.raises(ModelError), lmul_patched(tiny, where="everywhere"):
        pass


def test_counted_operations_match_the_shapes(tiny):
    T = 16
    ops = count_forward(tiny, T)
    cfg = tiny.config
    weights = sum(m.weight.numel() for m in tiny.modules() if type(m) is torch.nn.Linear)
    assert ops["linear"].mults == T * weights
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    # Q K^T and P V: 2 products of T x T x head_dim per head and layer
    assert ops["attention"].mults == 2 * cfg.num_hidden_layers * cfg.num_attention_heads * T * T * head_dim
    assert ops["attention"].adds == cfg.num_hidden_layers * cfg.num_attention_heads * T * (
        T * (head_dim - 1) + head_dim * (T - 1))


def test_energy_table_arithmetic():
    table = OpEnergy()
    ops = {"linear": OpCount(mults=1000, adds=900), "attention": OpCount(mults=100, adds=90)}
    e = forward_energy(ops, {"linear"}, table)
    assert e["exact_pj"] == pytest.approx(1100 * 3.7 + 990 * 0.9)
    assert e["lmul_pj"] == pytest.approx(1000 * 0.1 + 100 * 3.7 + 990 * 0.9)
    assert e["saving"] == pytest.approx(1 - e["lmul_pj"] / e["exact_pj"])
    half = forward_energy(ops, {"linear", "attention"}, table, precision="fp16")
    assert half["exact_pj"] == pytest.approx(1100 * 1.1 + 990 * 0.4)
    assert half["lmul_pj"] == pytest.approx(1100 * 0.1 + 990 * 0.4)
    c = OpCount()
    c.add_matmul(2, 3, 4, bias=True)
    assert (c.mults, c.adds) == (24, 2 * 2 * 4 + 8)


def test_config_overrides_keep_the_quick_defaults():
    cfg = resolve(LMulEvalConfig, overrides=["energy.fp32_mul=1.5", "eval.context_length=32", "where=linear"])
    assert cfg.energy.fp32_mul == 1.5 and cfg.energy.int32_add == 0.1
    assert cfg.eval.max_tokens == 2048 and cfg.eval.progress is False and cfg.eval.context_length == 32


def test_precision_study_and_verdict():
    from odyssey.lmul.studies import precision_study

    study = precision_study(PrecisionConfig(samples=4000, mantissas=[3, 4]))
    rows = study["distributions"]["normal"]
    assert set(rows) == {"L-Mul m=3", "L-Mul m=4", "L-Mul m=23", "fp8 e4m3", "fp8 e5m2"}
    assert rows["L-Mul m=3"]["mean"] > rows["L-Mul m=4"]["mean"] > 0
    assert rows["fp8 e5m2"]["mean"] > rows["fp8 e4m3"]["mean"]
    assert len(study["verdict"]) == 4 and all(isinstance(v["holds"], bool) for v in study["verdict"])


def test_cli_precision_and_evaluate(tiny_llama_dir, tiny_corpus_dir, capsys):
    assert cli_run(["lmul", "precision", "--samples", "2000", "--json", "mantissas=[3,4]"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {v["claim"] for v in out["verdict"]} == {"L-Mul m=4 is about as precise as fp8 e4m3",
                                                    "L-Mul m=3 is more precise than fp8 e5m2"}
    code = cli_run(["lmul", "evaluate", "--model", str(tiny_llama_dir), "--data", f"{tiny_corpus_dir}:test",
                    "--general", f"{tiny_corpus_dir}:valid", "--where", "all", "--mantissa", "3",
                    "--max-tokens", "60", "--context-length", "32", "--json"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert r["where"] == "all" and r["mantissa"] == 3 and r["seq_len"] == 32
    assert r["domain"]["exact"]["tokens"] == r["domain"]["lmul"]["tokens"] >= 60
    assert r["domain"]["lmul"]["perplexity"] != r["domain"]["exact"]["perplexity"]
    assert r["general"] is not None and 0 < r["energy"]["saving"] < 1
    assert cli_run(["lmul", "evaluate", "--data", "x"]) == 2
