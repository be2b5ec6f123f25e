"""Corpora: reading, cleaning, splitting and storing documents."""

from odyssey.corpora.store import iter_split, load_documents, parse_data_spec, read_manifest

__all__ = ["iter_split", "load_documents", "parse_data_spec", "read_manifest"]
