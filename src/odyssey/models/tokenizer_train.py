"""Train a byte-level BPE tokenizer (HF ``tokenizers``) on a stream of texts."""

from __future__ import annotations

from collections.abc import Iterable

EOS = "<|endoftext|>"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2,
                        model_max_length: int = 1024):
    """Train a GPT-2-style byte-level BPE with one special token, ``<|endoftext|>``
    (used as EOS, BOS and padding), and return a ``PreTrainedTokenizerFast``.

    Byte-level means every string is encodable: no unknown tokens.

    >>> tok = train_bpe_tokenizer(["some text", "more text"], vocab_size=300)
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, bos_token=EOS,
                                   pad_token=EOS, unk_token=EOS, model_max_length=model_max_length)
