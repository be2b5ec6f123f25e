"""Deterministic text for tests: pseudo-English documents with the formatting tokens
(newlines, indentation, punctuation) that matter to the Adaptation Odyssey."""

from __future__ import annotations

import random

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "river court model data theory king market music energy protein law city war language system "
    "people water light number church film species island party school music network function"
).split()


def make_documents(n: int, seed: int = 0, min_words: int = 20, max_words: int = 120) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))]
        parts = []
        for i, w in enumerate(words):
            parts.append(w.capitalize() if i == 0 or parts[-1].endswith((".", "\n")) else w)
            r = rng.random()
            if r < 0.08:
                parts[-1] += "."
            elif r < 0.12:
                parts[-1] += ","
            elif r < 0.14:
                parts[-1] += ".\n"
        text = " ".join(parts).replace("\n ", "\n")
        docs.append(text.rstrip(" ,") + ".")
    return docs
