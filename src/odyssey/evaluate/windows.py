"""Sliding windows for scoring a long document with a model of limited context.

A document of ``N`` token ids is scored as ``seq = [eos] + ids``: the EOS token is a
context for the first real token, so every one of the ``N`` ids is a *target*. The
logits at position ``p`` of ``seq`` predict ``seq[p + 1] = ids[p]``, so *input
position p and target index p coincide*: a window whose input is ``seq[b:e]`` can
score targets ``b .. e-1``.

With context length ``L`` and stride ``S``, window ``i`` ends at
``e_i = min(N, L + i*S)``, starts at ``b_i = max(0, e_i - L)`` and scores only the
targets no earlier window scored, ``[e_{i-1}, e_i)`` (with ``e_{-1} = 0``)::

    N = 10, L = 4, S = 2                  S = scored target, c = context only
    target / input position   0 1 2 3 4 5 6 7 8 9
    window 0  seq[0:4]       [S S S S]               scores [0, 4)  (input: eos t0 t1 t2)
    window 1  seq[2:6]           [c c S S]           scores [4, 6)
    window 2  seq[4:8]               [c c S S]       scores [6, 8)
    window 3  seq[6:10]                  [c c S S]   scores [8, 10)

Every window is ``L`` inputs long except the only window of a document shorter than
``L``. Each target after the first window is scored with at least ``L - S`` tokens of
context. ``S = L`` gives disjoint windows (cheapest, least context); ``S = 1`` gives
every target a full window (most expensive, exact "sliding" perplexity).

This is lm-evaluation-harness's
``get_rolling_token_windows(ids, prefix_token=eos, max_seq_len=L, context_len=L-S+1)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One forward pass: input ``seq[input_start:input_end]`` (``seq = [eos] + ids``),
    scoring targets ``ids[score_start:score_end]``.

    ``score_end == input_end`` always (the last input predicts the last scored
    target); the scored targets are the last ``n_scored`` input positions.
    """

    input_start: int
    input_end: int
    score_start: int
    score_end: int

    @property
    def n_inputs(self) -> int:
        return self.input_end - self.input_start

    @property
    def n_scored(self) -> int:
        return self.score_end - self.score_start


def forward_tokens(result) -> int:
    """Tokens an evaluation ``result`` (an :class:`~odyssey.evaluate.run.EvalResult`) forwarded
    through the model: its windows' inputs, with a stride below the context length more
    than the tokens it scored. The energy estimate counts these."""
    return sum(w.n_inputs for doc in result.per_document
               for w in rolling_windows(doc["tokens"], result.context_length, result.stride))


def rolling_windows(n_targets: int, context_length: int, stride: int) -> list[Window]:
    """The windows that score ``n_targets`` tokens with context ``context_length`` and
    stride ``stride`` (see the module docstring for the drawing).

    >>> rolling_windows(10, 4, 2)[1]
    Window(input_start=2, input_end=6, score_start=4, score_end=6)
    >>> rolling_windows(0, 4, 2)
    []
    """
    if context_length < 1:
        raise ValueError(f"context_length must be >= 1, got {context_length}")
    if not 1 <= stride <= context_length:
        raise ValueError(f"stride must be in [1, context_length={context_length}], got {stride}")
    windows: list[Window] = []
    prev_end = 0
    i = 0
    while prev_end < n_targets:
        end = min(n_targets, context_length + i * stride)
        windows.append(Window(max(0, end - context_length), end, prev_end, end))
        prev_end = end
        i += 1
    return windows
