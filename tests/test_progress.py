"""Progress bars draw on an interactive stderr only, and never change what is iterated."""

from odyssey.progress import progress_bar, track


def test_silent_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    assert list(track(range(5), "docs")) == [0, 1, 2, 3, 4]
    with progress_bar(10, "evaluate", unit="tokens") as advance:
        advance(4)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def test_draws_on_a_terminal_and_disabled_means_silent(capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat stderr as a terminal
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert list(track(iter("abc"), "letters", unit="chars")) == ["a", "b", "c"]  # no len: a counter
    with progress_bar(3, "items", unit="items") as advance:
        advance(3)
    assert "items" in capsys.readouterr().err
    with progress_bar(3, "items", enabled=False) as advance:
        advance(3)
    assert list(track([1, 2], "x", enabled=False)) == [1, 2]
    assert capsys.readouterr().err == ""
