"""Models: load any Hugging Face causal LM and tokenizer safely."""

from odyssey.models.load import check_tokenizer_fits, load_model, load_tokenizer, max_context

__all__ = ["check_tokenizer_fits", "load_model", "load_tokenizer", "max_context"]
