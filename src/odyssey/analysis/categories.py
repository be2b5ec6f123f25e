"""Token categories: which kind of text a token is, decided from its decoded string.

The Adaptation Odyssey found that a change in loss after additional pretraining is
carried by tokens that say nothing about the domain. To measure that, every token of
an evaluation gets one of these categories (in this order of precedence):

============  ===========================================================  ==============
category      rule (``s`` = the token's decoded string, ``core`` =          examples
              ``s.strip()``)
============  ===========================================================  ==============
other         ``s`` is empty or holds U+FFFD (a partial UTF-8 byte           ``"\\ufffd"``, ``""``
              sequence of a byte-level BPE) or a control character other
              than whitespace; the tokenizer's special tokens (eos, pad)
              are other too (by id, in :mod:`odyssey.analysis.tokens`);
              and whatever no rule below takes (a lone combining mark)
newline       no letter or digit and at least one line break                ``"\\n"``, ``"\\n\\n"``,
              (``\\n``, ``\\r``, U+2028/2029): line breaks win over the      ``".\\n"``, ``"  \\n  "``
              punctuation glued to them
whitespace    ``core`` is empty (spaces, tabs, no line break)               ``" "``, ``"\\t"``
punctuation   every character of ``core`` is punctuation or a symbol        ``","``, ``" ("``, ``"--"``,
              (Unicode categories P* and S*)                                ``"$"``, ``'."'``
digits        ``core`` has a digit and no letter (separators allowed)       ``" 1990"``, ``"3.14"``
function      the *word* (below) is in :data:`STOP_WORDS`, a fixed          ``" the"``, ``"The"``,
              English list of function words and contraction suffixes       ``" of"``, ``"'s"``
domain        the word is one of the domain terms given (log-odds of        ``" plaintiff"``
              its frequency in the evaluated text against a reference;
              see :mod:`odyssey.analysis.tokens`)
content       any other token with a letter                                 ``" river"``, ``"ory"``
============  ===========================================================  ==============

The *word* of a token is ``core`` lowercased, with punctuation stripped from both
ends (``" (The"`` -> ``"the"``) and the curly apostrophe made straight; a token
whose word is not letters (with inner apostrophes) is content (``"mp3"``, ``"a_b"``).

Word pieces: a BPE often splits a word (``" the" + "ory"`` for " theory"). In a
sequence, a token that starts with a letter (no leading space) right after a token
that ends with a letter continues the same word; all letter tokens of that word take
the category of the whole word (function, domain or content). So ``" the"`` before
``"ory"`` is content, not a function word. :func:`classify` is the rule for one
token alone; :func:`categorize` applies it to a sequence with that word rule.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported by the one function that needs it: the mitigation
    import numpy as np  # config reads CATEGORIES, and the CLI imports that config for --help

CATEGORIES = ("newline", "whitespace", "punctuation", "digits", "function", "content", "domain",
              "other")
CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}

LINE_BREAKS = frozenset("\n\r\u2028\u2029\x0b\x0c\x85")

# Function words of English: articles, determiners, pronouns, prepositions,
# conjunctions, auxiliaries and modals, common adverbs of degree, negation and the
# suffixes of contractions as BPEs split them ("'s", "'t", "n't").
STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren't as at
be because been before being below between both but by
can can't cannot could couldn't
did didn't do does doesn't doing don't down during
each either
few for from further
had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's
i i'd i'll i'm i've if in into is isn't it it's its itself
let's
may me might more most must mustn't my myself
neither no nor not
of off on once only or other ought our ours ourselves out over own
same shall shan't she she'd she'll she's should shouldn't so some such
than that that's the their theirs them themselves then there there's these they they'd
they'll they're they've this those though through thus to too
under until up upon us
very
was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
whether which while who who's whom whose why why's will with within without won't would
wouldn't
yet you you'd you'll you're you've your yours yourself yourselves
also just now then there's whereas whereby wherein hence however
's 't 're 've 'll 'd 'm n't s t
""".split())


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and not ch.isspace()


def word_of(s: str) -> str | None:
    """The word a token string spells, lowercased, or ``None`` if it is not letters
    (with inner apostrophes) once surrounding whitespace and punctuation are gone.

    >>> word_of(" (The"), word_of("'s"), word_of("mp3")
    ('the', "'s", None)
    """
    raw = s.strip().replace("\u2019", "'").lower()
    w = raw.strip("".join(ch for ch in set(raw) if _is_punct(ch)))
    if raw.startswith("'") and "'" + w in STOP_WORDS:  # a contraction suffix: "'s", "'ll"
        return "'" + w
    return w if w and all(ch.isalpha() or ch == "'" for ch in w) else None


def classify(s: str, domain_terms: frozenset[str] | set[str] = frozenset()) -> str:
    """The category of one token string on its own (see the module docstring).

    >>> classify("\\n\\n"), classify(" the"), classify(","), classify(" 1990")
    ('newline', 'function', 'punctuation', 'digits')
    """
    if not s or "\ufffd" in s or any(_is_control(ch) for ch in s):
        return "other"
    has_alnum = any(ch.isalnum() for ch in s)
    if not has_alnum and any(ch in LINE_BREAKS for ch in s):
        return "newline"
    core = s.strip()
    if not core:
        return "whitespace"
    if all(_is_punct(ch) for ch in core):
        return "punctuation"
    if not any(ch.isalpha() for ch in core):
        return "digits" if any(ch.isdigit() for ch in core) else "other"
    return _word_category(word_of(s), domain_terms)


def _word_category(word: str | None, domain_terms) -> str:
    if word is None:
        return "content"
    if word in STOP_WORDS:
        return "function"
    return "domain" if word in domain_terms else "content"


def _starts_letter(s: str) -> bool:
    return bool(s) and s[0].isalpha()


def _ends_letter(s: str) -> bool:
    return bool(s) and s[-1].isalpha()


def categorize(strings: Sequence[str], domain_terms: Iterable[str] = (),
               doc_starts: Iterable[int] = (0,)) -> list[str]:
    """Categories of a sequence of token strings, with the word-piece rule: a token
    starting with a letter right after one ending with a letter continues its word,
    and the letter tokens of a multi-token word take the whole word's category.
    ``doc_starts`` lists positions where a new document begins (no gluing across).

    >>> categorize([" the", "ory", " of", " the", " river"])
    ['content', 'content', 'function', 'function', 'content']
    """
    terms = frozenset(domain_terms)
    cats = [classify(s, terms) for s in strings]
    starts = set(doc_starts)
    i, n = 0, len(strings)
    while i < n:
        j = i + 1
        while (j < n and j not in starts and _starts_letter(strings[j])
               and _ends_letter(strings[j - 1])):
            j += 1
        if j - i > 1:
            word = word_of("".join(strings[i:j]))
            cat = _word_category(word, terms)
            for k in range(i, j):
                if cats[k] in ("function", "content", "domain"):
                    cats[k] = cat
        i = j
    return cats


def categorize_ids(ids: np.ndarray, strings: dict[int, str], domain_terms: Iterable[str] = (),
                   doc_offsets: np.ndarray | None = None) -> np.ndarray:
    """:func:`categorize` for a flat array of token ids (``strings`` maps id -> decoded
    string); returns category indices into :data:`CATEGORIES` (int8, shape ``(N,)``).

    Vectorized: per-type categories first, then only the multi-token words (runs of
    glued letter pieces) are looked at one by one.
    """
    import numpy as np

    ids = np.asarray(ids, dtype=np.int64)
    terms = frozenset(domain_terms)
    uniq, inverse = np.unique(ids, return_inverse=True)
    type_cat = np.array([CATEGORY_INDEX[classify(strings[int(t)], terms)] for t in uniq],
                        dtype=np.int8)
    starts_l = np.array([_starts_letter(strings[int(t)]) for t in uniq], dtype=bool)[inverse]
    ends_l = np.array([_ends_letter(strings[int(t)]) for t in uniq], dtype=bool)[inverse]
    cats = type_cat[inverse]
    n = len(ids)
    if n < 2:
        return cats
    glued = np.zeros(n, dtype=bool)
    glued[1:] = starts_l[1:] & ends_l[:-1]
    if doc_offsets is not None:
        bounds = np.asarray(doc_offsets, dtype=np.int64)
        glued[bounds[(bounds > 0) & (bounds < n)]] = False
    if not glued.any():
        return cats
    word_idx = {CATEGORY_INDEX[c] for c in ("function", "content", "domain")}
    cache: dict[tuple[int, ...], int] = {}
    # Runs: a run starts at i where glued[i] is False and glued[i+1] is True.
    run_id = np.cumsum(~glued)
    heads = np.flatnonzero(~glued[:-1] & glued[1:])
    for h in heads:
        r = run_id[h]
        end = h + 1
        while end < n and run_id[end] == r:
            end += 1
        key = tuple(int(t) for t in ids[h:end])
        cat = cache.get(key)
        if cat is None:
            word = word_of("".join(strings[t] for t in key))
            cat = cache[key] = CATEGORY_INDEX[_word_category(word, terms)]
        for k in range(h, end):
            if cats[k] in word_idx:
                cats[k] = cat
    return cats
