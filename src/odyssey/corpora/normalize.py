"""Text normalization and simple quality measures for training documents.

Formatting tokens (newlines, runs of spaces) carry much of the loss change when a
model is adapted (the Adaptation Odyssey), and scraped text is full of inconsistent
ones. These functions make formatting uniform and measure what the quality filters
of the ``normalize`` mitigation look at:

- :func:`normalize_whitespace`: trailing spaces/tabs of each line go; inside a line a
  run of spaces/tabs becomes one space; the leading indentation of a line is kept
  (it carries meaning in code and verse);
- :func:`normalize_newlines`: ``\\r\\n`` and ``\\r`` become ``\\n``, and three or more
  newlines in a row become two (one blank line);
- :func:`symbol_ratio`, :func:`duplicate_line_ratio`: the share of non-space
  characters that are neither letters nor digits, and the share of non-blank lines
  that repeat an earlier line of the same text.
"""

from __future__ import annotations

import re

_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_INNER_RUN = re.compile(r"(?<=\S)[ \t]{2,}|(?<=\S)\t")  # after a non-space: not indentation
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_whitespace(text: str) -> str:
    """Drop trailing spaces/tabs per line; collapse inner runs of spaces/tabs to one space.

    >>> normalize_whitespace("  x =  1\\t\\t# one  \\n")
    '  x = 1 # one\\n'
    """
    return _INNER_RUN.sub(" ", _TRAILING.sub("", text))


def normalize_newlines(text: str) -> str:
    """``\\r\\n``/``\\r`` -> ``\\n``; three or more newlines -> two.

    >>> normalize_newlines("a\\r\\n\\r\\n\\r\\n\\nb")
    'a\\n\\nb'
    """
    return _MANY_NEWLINES.sub("\n\n", text.replace("\r\n", "\n").replace("\r", "\n"))


def normalize(text: str, *, whitespace: bool = True, newlines: bool = True) -> str:
    """Both normalizations (newlines first, so a line of spaces between newlines,
    once stripped, counts toward a run of newlines too)."""
    if newlines:
        text = normalize_newlines(text)
    if whitespace:
        text = normalize_whitespace(text)
        if newlines:
            text = normalize_newlines(text)
    return text


def symbol_ratio(text: str) -> float:
    """Share of the non-whitespace characters that are neither letters nor digits (0 if none)."""
    chars = [c for c in text if not c.isspace()]
    return sum(1 for c in chars if not c.isalnum()) / len(chars) if chars else 0.0


def duplicate_line_ratio(text: str) -> float:
    """Share of the non-blank lines (compared stripped) that repeat an earlier one (0 if none)."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    return (len(lines) - len(set(lines))) / len(lines) if lines else 0.0
