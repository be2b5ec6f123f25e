"""Blocks: tokenization and packing of documents into fixed-length training blocks."""

from odyssey.blocks.pack import pack_documents, pack_token_lists, tokenize_texts

__all__ = ["pack_documents", "pack_token_lists", "tokenize_texts"]
