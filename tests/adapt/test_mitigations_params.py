"""LoRA and freezing: what trains, what stays bit-identical, what is saved."""

import pytest
import torch
from safetensors.torch import load_file
from test_mitigations_config import assert_resume_is_exact, make_cfg

from odyssey.adapt.loop import finish, fit, setup
from odyssey.adapt.mitigations.freeze import find_layers
from odyssey.models import load_model


def base_weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft's from_pretrained asks a deprecated question
def test_lora_trains_only_adapters_and_saves_adapter_and_merged_model(tmp_path, tiny_model_dir, tiny_corpus_dir):
    out = tmp_path / "lora"
    run = setup(make_cfg(tiny_model_dir, tiny_corpus_dir, out, **{"mitigation.methods": "[lora]",
                                                                   "mitigation.lora.r": 4}))
    peft_model = run.accelerator.unwrap_model(run.model)
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    try:
        fit(run, progress=False)
        after = dict(peft_model.named_parameters())
        lora = [n for n in before if "lora_" in n]
        assert lora and all(after[n].requires_grad == ("lora_" in n) for n in after)
        assert any(not torch.equal(before[n], after[n]) for n in lora), "the adapters did not train"
        for n in before:
            if "lora_" not in n:
                assert torch.equal(before[n], after[n]), f"base weight {n} changed"
        assert not peft_model.training  # the mode the model was loaded in, as in a plain run
        ids = torch.as_tensor(run.blocks[:2].copy(), dtype=torch.long)
        with torch.no_grad():
            peft_logits = peft_model(input_ids=ids).logits
        result = finish(run)
    finally:
        run.log.close()
    assert result.mitigation["lora"]["trainable_parameters"] < result.mitigation["lora"]["total_parameters"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = load_model(out / "model")  # a plain HF model: no peft names, the base's keys
    saved = load_file(str(out / "model" / "model.safetensors"))
    assert not any("lora" in k for k in saved)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, peft_logits, rtol=1e-4, atol=1e-4)
    # The saved adapter on a fresh base is the same model again.
    from peft import PeftModel

    reloaded = PeftModel.from_pretrained(load_model(tiny_model_dir), out / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, peft_logits, rtol=1e-4, atol=1e-4)


def test_lora_run_resumes_exactly_from_adapter_checkpoints(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    assert_resume_is_exact(tmp_path, tiny_llama_dir, tiny_corpus_dir, **{"mitigation.methods": "[lora]"})
    ckpt = tmp_path / "full" / "checkpoint" / "step-000004"
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()


@pytest.mark.parametrize("over,frozen_layers", [
    ({"mitigation.freeze.first_k": 1}, [0]),
    ({"mitigation.freeze.all_but_top_k": 1, "mitigation.freeze.embeddings": False}, [0]),
])
def test_frozen_parameters_stay_bit_identical(tmp_path, tiny_model_dir, tiny_corpus_dir, over, frozen_layers):
    out = tmp_path / "freeze"
    from odyssey.adapt.loop import adapt

    result = adapt(make_cfg(tiny_model_dir, tiny_corpus_dir, out, **{"mitigation.methods": "[freeze]"}, **over),
                   progress=False)
    assert result.mitigation["freeze"]["frozen_layers"] == frozen_layers
    model = load_model(tiny_model_dir)
    path, layers = find_layers(model)
    assert len(layers) == 2
    frozen = {f"{path}.{i}." for i in frozen_layers}
    embeddings = {n for n, p in model.named_parameters()
                  if any(p is q for q in model.get_input_embeddings().parameters()) or ".wpe." in n}
    base, trained = base_weights(tiny_model_dir), load_file(str(out / "model" / "model.safetensors"))
    changed = {k for k in base if not torch.equal(base[k], trained[k])}
    should_freeze = {k for k in base if k.startswith(tuple(frozen))}
    if over.get("mitigation.freeze.embeddings", True):
        should_freeze |= embeddings | {k for k in base if k.endswith(("wte.weight", "embed_tokens.weight", "lm_head.weight"))
                                       and model.config.tie_word_embeddings}
    assert should_freeze and not (changed & should_freeze)
    top = {k for k in base if k.startswith(f"{path}.1.") and k.endswith("weight")}
    assert top <= changed, "the unfrozen top layer did not train"


def test_lora_with_freeze_puts_adapters_on_the_top_layers_only(tmp_path, tiny_model_dir, tiny_corpus_dir):
    run = setup(make_cfg(tiny_model_dir, tiny_corpus_dir, tmp_path / "lf",
                         **{"mitigation.methods": "[lora,freeze]", "mitigation.freeze.first_k": 1}))
    run.log.close()
    names = [n for n, p in run.model.named_parameters() if p.requires_grad]
    path, _ = find_layers(load_model(tiny_model_dir))
    assert names and all(f"{path}.1." in n and "lora_" in n for n in names)


def test_resuming_a_lora_run_without_its_adapter_says_what_to_do(tmp_path, tiny_llama_dir, tiny_corpus_dir):
    import shutil

    from odyssey.adapt.loop import adapt
    from odyssey.errors import ConfigError

    over = {"mitigation.methods": "[lora]", "save_every": 1, "train.max_steps": 2, "eval.max_tokens": 100}
    out = tmp_path / "lora"
    adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, **over), progress=False)
    (out / "result.json").unlink()
    shutil.rmtree(out / "checkpoint" / "step-000002")
    (out / "checkpoint" / "step-000001" / "adapter_model.safetensors").unlink()
    with pytest.raises(ConfigError, match="holds no LoRA adapter") as err:
        adapt(make_cfg(tiny_llama_dir, tiny_corpus_dir, out, resume=True, **over), progress=False)
    assert "--overwrite" in err.value.hint
