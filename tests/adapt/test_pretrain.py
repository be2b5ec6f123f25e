import json

from odyssey.adapt.pretrain import PretrainConfig, export_model, pretrain
from odyssey.config import resolve
from odyssey.models import load_model, load_tokenizer


def test_pretrain_tiny_builds_tokenizer_model_and_provenance(tmp_path, tiny_corpus_dir):
    out = tmp_path / "base"
    cfg = resolve(PretrainConfig, overrides=[f"data={tiny_corpus_dir}", f"out={out}", "preset=tiny",
                                             "vocab_size=300", "train.block_size=32", "train.batch_size=4",
                                             "train.max_steps=4", "optim.lr=3e-3", "eval_every=2"])
    result = pretrain(cfg, progress=False)
    assert result.steps == 4
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["tokens_seen"] == 4 * 4 * 32
    assert prov["final_valid"]["bits_per_byte"] == result.evals["valid"]["after"]["bits_per_byte"]
    assert prov["data"]["splits"]["train"]["documents"] > 0
    # the pretraining curve: the validation loss at step 0, every eval_every steps and at the end
    assert [p["step"] for p in prov["curve"]] == [0, 2, 4]
    assert [p["tokens_seen"] for p in prov["curve"]] == [0, 2 * 4 * 32, 4 * 4 * 32]
    assert prov["curve"][-1]["bits_per_byte"] == prov["final_valid"]["bits_per_byte"]
    tok = load_tokenizer(out / "model")
    assert 256 < len(tok) <= 300 and tok.eos_token == "<|endoftext|>"
    assert load_model(out / "model").config.num_hidden_layers == 2
    # Shipping in fp16 halves the file and keeps the model usable.
    shipped = export_model(out, tmp_path / "shipped")
    assert (shipped / "provenance.json").is_file()
    size32 = (out / "model" / "model.safetensors").stat().st_size
    assert (shipped / "model.safetensors").stat().st_size < 0.6 * size32
