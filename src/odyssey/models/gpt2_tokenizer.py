"""GPT-2's real BPE tokenizer, built offline from the vocabulary file that the
``openai-whisper`` package carries (``whisper/assets/gpt2.tiktoken``).

This lets the test suite exercise the tokenizer that hub GPT-2 models use with no
hub access. The ``whisper`` package is never imported (it needs heavy extras).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from odyssey.errors import ModelError

# GPT-2's pre-tokenization pattern (the one tiktoken's "gpt2" encoding uses).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def whisper_gpt2_vocab_path() -> Path:
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("openai-whisper is not installed",
                         "pip install --no-deps openai-whisper (it carries GPT-2's vocabulary)")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "gpt2.tiktoken"
    if not path.is_file():
        raise ModelError(f"GPT-2 vocabulary not found at {path}")
    return path


def gpt2_tokenizer():
    """GPT-2's tokenizer as a ``PreTrainedTokenizerFast``: "Hello world" -> [15496, 995].

    >>> tok = gpt2_tokenizer(); tok("Hello world").input_ids
    [15496, 995]
    """
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    eos = "<|endoftext|>"
    converter = TikTokenConverter(vocab_file=str(whisper_gpt2_vocab_path()), pattern=GPT2_PATTERN,
                                  extra_special_tokens=[eos])
    backend = converter.converted()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, bos_token=eos,
                                   unk_token=eos, pad_token=eos, model_max_length=1024)
