"""The CLI is thin: every command maps to a library function, and errors are one line."""

from odyssey.cli import COMMAND_MODULES, build_app, run


def registered_commands():
    app = build_app()
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    return names


def test_every_command_module_registers_something():
    assert {"adapt", "pretrain", "evaluate", "study", "report", "corpus", "world"} <= registered_commands()
    assert len(COMMAND_MODULES) == len(set(COMMAND_MODULES))


def test_usage_errors_are_one_line_exit_2(capsys):
    assert run(["adapt", "--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert "No such option" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert run(["evaluate", "--model", "m", "--data", "d", "--stride", "abc"]) == 2
    assert run([]) == 0  # help


def test_bad_override_is_a_config_error(capsys, tmp_path):
    code = run(["adapt", "--model", "m", "--data", "d", "--out", str(tmp_path), "train.nonsense=3"])
    err = capsys.readouterr().err
    assert code == 2 and "nonsense" in err
