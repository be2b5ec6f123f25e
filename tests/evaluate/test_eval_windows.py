"""The rolling windows: pinned by tables, and equal to lm-evaluation-harness's."""

import pytest
from lm_eval.utils import get_rolling_token_windows

from odyssey.evaluate.windows import Window, rolling_windows

W = Window

# (n_targets, L, S) -> windows as (input_start, input_end, score_start, score_end)
TABLE = [
    ((0, 4, 2), []),
    ((1, 4, 2), [W(0, 1, 0, 1)]),
    ((3, 4, 2), [W(0, 3, 0, 3)]),
    ((4, 4, 2), [W(0, 4, 0, 4)]),
    ((5, 4, 2), [W(0, 4, 0, 4), W(1, 5, 4, 5)]),
    ((10, 4, 2), [W(0, 4, 0, 4), W(2, 6, 4, 6), W(4, 8, 6, 8), W(6, 10, 8, 10)]),
    ((9, 4, 2), [W(0, 4, 0, 4), W(2, 6, 4, 6), W(4, 8, 6, 8), W(5, 9, 8, 9)]),
    ((10, 4, 4), [W(0, 4, 0, 4), W(4, 8, 4, 8), W(6, 10, 8, 10)]),
    ((6, 4, 1), [W(0, 4, 0, 4), W(1, 5, 4, 5), W(2, 6, 5, 6)]),
    ((3, 1, 1), [W(0, 1, 0, 1), W(1, 2, 1, 2), W(2, 3, 2, 3)]),
    ((7, 5, 3), [W(0, 5, 0, 5), W(2, 7, 5, 7)]),
]


@pytest.mark.parametrize(("args", "expected"), TABLE, ids=[str(a) for a, _ in TABLE])
def test_windows_table(args, expected):
    assert rolling_windows(*args) == expected


@pytest.mark.parametrize("n", [0, 1, 2, 7, 16, 17, 40, 101])
@pytest.mark.parametrize(("L", "S"), [(1, 1), (4, 1), (4, 2), (4, 4), (5, 3), (16, 8), (16, 16), (33, 1), (33, 16)])
def test_windows_equal_lm_eval(n, L, S):
    ids = list(range(100, 100 + n))
    eos = 7
    seq = [eos] + ids
    ours = rolling_windows(n, L, S)
    theirs = list(get_rolling_token_windows(ids, prefix_token=eos, max_seq_len=L, context_len=L - S + 1))
    assert len(ours) == len(theirs)
    for w, (inp, pred) in zip(ours, theirs, strict=True):
        assert seq[w.input_start:w.input_end] == inp
        assert ids[w.score_start:w.score_end] == pred


@pytest.mark.parametrize("n", [1, 5, 50])
@pytest.mark.parametrize(("L", "S"), [(4, 1), (8, 3), (8, 8)])
def test_windows_invariants(n, L, S):
    ws = rolling_windows(n, L, S)
    # every target scored exactly once, in order
    assert [t for w in ws for t in range(w.score_start, w.score_end)] == list(range(n))
    for i, w in enumerate(ws):
        assert w.score_end == w.input_end and w.input_start <= w.score_start
        assert w.n_inputs == min(L, n)  # full length unless the document is shorter
        if i:  # at least L - S tokens of context before each scored target
            assert w.score_start - w.input_start >= L - S


@pytest.mark.parametrize(("L", "S"), [(0, 1), (4, 0), (4, 5)])
def test_windows_reject_bad_arguments(L, S):
    with pytest.raises(ValueError):
        rolling_windows(10, L, S)


def test_batches_keep_a_token_budget():
    from odyssey.evaluate.nll import _batches

    jobs = [(0, W(0, n, 0, n)) for n in (8, 8, 8, 5, 4, 4, 2, 1, 1, 1)]
    sizes = [[w.n_inputs for _, w in b] for b in _batches(jobs, 16)]
    assert sizes == [[8, 8], [8, 5], [4, 4, 2, 1], [1, 1]]
    assert [len(b) for b in _batches(jobs, 3)] == [1] * 7 + [3]  # at least one window each
