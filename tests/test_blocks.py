import numpy as np
import pytest

from odyssey.blocks import pack_documents, pack_token_lists
from odyssey.errors import DataError
from odyssey.models import load_tokenizer


def test_pack_joins_with_eos_and_drops_remainder():
    blocks = pack_token_lists([[1, 2, 3], [4], [5, 6]], eos_id=0, block_size=4)
    assert blocks.tolist() == [[0, 1, 2, 3], [0, 4, 0, 5]]  # "6" is the dropped remainder


def test_too_little_text_is_a_clear_error():
    with pytest.raises(DataError, match="fewer than one block"):
        pack_token_lists([[1, 2]], eos_id=0, block_size=8)


def test_pack_documents_caches_and_matches_tokenizer(tmp_path, tiny_llama_dir, documents):
    tok = load_tokenizer(tiny_llama_dir)
    docs = [{"text": t} for t in documents[:10]]
    blocks = pack_documents(docs, tok, 16, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again = pack_documents(docs, tok, 16, cache_dir=tmp_path)
    assert np.array_equal(blocks, again)
    expected = []
    for t in documents[:10]:
        expected += [tok.eos_token_id] + tok(t, add_special_tokens=False).input_ids
    assert blocks.reshape(-1).tolist() == expected[: blocks.size]
