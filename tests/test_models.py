import pytest
import torch

from odyssey.errors import ModelError
from odyssey.models import check_tokenizer_fits, load_model, load_tokenizer, max_context
from odyssey.models.gpt2_tokenizer import gpt2_tokenizer


def test_gpt2_tokenizer_matches_gpt2():
    tok = gpt2_tokenizer()
    assert tok("Hello world").input_ids == [15496, 995]
    assert tok.eos_token_id == 50256
    text = "héllo  wörld\n\n\tdef f(x):\n    return x"
    assert tok.decode(tok(text).input_ids) == text


def test_load_both_architectures(tiny_model_dir):
    model = load_model(tiny_model_dir)
    tok = load_tokenizer(tiny_model_dir)
    check_tokenizer_fits(model, tok)
    assert max_context(model) == 128
    ids = torch.tensor([tok("the river court").input_ids])
    assert model(ids).logits.shape[:2] == ids.shape


def test_unknown_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope")


def test_pickle_weights_refused_unless_allowed(tmp_path, tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # a pickled checkpoint
    with pytest.raises(ModelError, match="safetensors"):
        load_model(tmp_path)
    assert load_model(tmp_path, allow_pickle=True) is not None


def test_tokenizer_that_does_not_fit(tiny_llama_dir):
    with pytest.raises(ModelError, match="embeds only"):
        check_tokenizer_fits(load_model(tiny_llama_dir), gpt2_tokenizer())
