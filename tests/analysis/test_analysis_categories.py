"""Token categories: the rules of odyssey.analysis.categories, pinned by a table."""

import numpy as np
import pytest

from odyssey.analysis.categories import CATEGORIES, categorize, categorize_ids, classify, word_of

TERMS = {"plaintiff", "river"}

CASES = [
    # (token string, category)
    ("\n", "newline"),
    ("\n\n", "newline"),
    ("\r\n", "newline"),
    ("  \n  ", "newline"),
    (".\n", "newline"),  # a line break wins over the punctuation glued to it
    (")\n\n", "newline"),
    (" ", "whitespace"),
    ("   ", "whitespace"),
    ("\t", "whitespace"),
    (",", "punctuation"),
    (" (", "punctuation"),
    ('."', "punctuation"),
    ("--", "punctuation"),
    (" $", "punctuation"),
    (" —", "punctuation"),
    (" 1990", "digits"),
    ("3.14", "digits"),
    ("0", "digits"),
    (" the", "function"),
    ("The", "function"),
    (" of", "function"),
    (" (The", "function"),
    ("'s", "function"),
    ("\u2019s", "function"),
    (" don't", "function"),
    (" plaintiff", "domain"),
    (" River", "domain"),
    (" court", "content"),
    ("ory", "content"),
    ("mp3", "content"),
    (" e.g.", "content"),
    ("", "other"),
    ("\ufffd", "other"),
    (" \ufffd", "other"),
    ("\x00", "other"),
]


@pytest.mark.parametrize("s, expected", CASES)
def test_classify_table(s, expected):
    assert classify(s, TERMS) == expected


def test_word_of():
    assert word_of(" (The") == "the"
    assert word_of("'ll") == "'ll"
    assert word_of("'hello'") == "hello"
    assert word_of("mp3") is None
    assert word_of(",") is None


def test_word_pieces_take_the_whole_words_category():
    # " the" + "ory" spells " theory": both pieces are content, not a function word.
    assert categorize([" the", "ory", " of", " the", " river"], TERMS) == [
        "content", "content", "function", "function", "domain"]
    # " plain" + "tiff": a domain term split in two.
    assert categorize([" plain", "tiff", ","], TERMS) == ["domain", "domain", "punctuation"]
    # " in" + "to" spells " into", a function word.
    assert categorize([" in", "to", " the"]) == ["function", "function", "function"]
    # no gluing across a space, punctuation or a document start
    assert categorize([" the", " ory"]) == ["function", "content"]
    assert categorize(["the", "-", "ory"]) == ["function", "punctuation", "content"]
    assert categorize([" the", "ory"], doc_starts=[0, 1]) == ["function", "content"]


def test_categorize_ids_matches_categorize():
    strings = {0: " the", 1: "ory", 2: " of", 3: "\n", 4: " river", 5: ",", 6: " plain", 7: "tiff", 8: "The"}
    ids = np.array([0, 1, 2, 0, 4, 5, 3, 6, 7, 8, 1, 2, 0, 3, 3, 8])
    offsets = np.array([0, 9, 16])
    expected = (categorize([strings[i] for i in ids[:9]], TERMS)
                + categorize([strings[i] for i in ids[9:]], TERMS))
    got = categorize_ids(ids, strings, TERMS, offsets)
    assert [CATEGORIES[c] for c in got] == expected
    # Without the document boundary, " plain" + "tiff" (end of doc 1) would glue to
    # "The" + "ory" (start of doc 2) into one content word.
    assert CATEGORIES[got[7]] == "domain"
    assert CATEGORIES[categorize_ids(ids, strings, TERMS, None)[7]] == "content"
