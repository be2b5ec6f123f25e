"""A flag that sets a config field shows that field's description as its help.

Walks every command of the Typer app (so new commands are checked without being listed),
reads the help click will print, and compares it with the pydantic field's description.
A flag named like a field of the command's config but written with a hand-typed help is
an error too, unless it is listed below with the reason it does not simply set the field.
"""

import inspect

import pytest
import typer.main
from pydantic import BaseModel, Field

from odyssey.cli import build_app
from odyssey.cli.options import config_field, field_default, field_help, option_for
from odyssey.config import StageConfig

# (command path, flag): why its help is its own.
OWN_HELP = {
    ("pretrain", "--preset"): "a recipe name, which sets more than the preset field",
    ("pretrain", "--data"): "defaults to the default world's general corpus",
    ("pretrain", "--out"): "defaults to $ODYSSEY_HOME/base",
    ("pretrain", "--vocab-size"): "PretrainConfig lives beside the training code (imports torch)",
    ("adapt", "--mitigation"): "a comma list on the command line",
    ("diagnose", "--progress"): "also decides the progress of the diagnosis itself",
    ("diagnose fit", "--progress"): "also decides the progress of the fit itself",
    ("collapse", "--progress"): "a run argument, off for --json",
    ("detect grid", "--progress"): "a run argument of every experiment of the grid",
}


def commands():
    """(path, click command) for every command that runs something."""
    def walk(command, path):
        subcommands = getattr(command, "commands", {})
        if command.callback is not None:
            yield " ".join(path), command
        for name, sub in sorted(subcommands.items()):
            yield from walk(sub, (*path, name))
    return list(walk(typer.main.get_command(build_app()), ()))


def field_options(command):
    """{parameter name: (config, dotted, more)} of the options made by option_for."""
    defaults = {name: p.default for name, p in inspect.signature(command.callback).parameters.items()}
    return {name: d.config_field for name, d in defaults.items() if hasattr(d, "config_field")}


def leaf_names(config: type[BaseModel]) -> set[str]:
    """Names of the fields that hold values, in every section (sections themselves are not)."""
    names = set()
    for name, field in config.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= leaf_names(field.annotation)
        else:
            names.add(name)
    return names


ALL = commands()


def test_commands_are_found():
    paths = {path for path, _ in ALL}
    assert {"adapt", "evaluate", "corpus build", "probe bias", "lmul evaluate", "collapse"} <= paths
    assert sum(len(field_options(c)) for _, c in ALL) >= 50


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p or "(top)" for p, _ in ALL])
def test_field_options_show_the_field_description(path, command):
    tagged = field_options(command)
    params = {p.name: p for p in command.params}
    for name, (config, dotted, more) in tagged.items():
        description = config_field(config, dotted).description
        assert description, f"{config.__name__}.{dotted} has no description"
        expected = description + (f" {more}" if more else "")
        assert params[name].help == expected, f"odyssey {path} {params[name].opts[0]}"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p or "(top)" for p, _ in ALL])
def test_no_hand_typed_help_for_a_config_field(path, command):
    tagged = field_options(command)
    configs = {config for config, _, _ in tagged.values()}
    fields = set().union(*(leaf_names(c) for c in configs)) if configs else set()
    hand_typed = []
    for param in command.params:
        if param.name in tagged or not param.opts or not param.opts[0].startswith("--"):
            continue
        flag = param.opts[0]
        if flag in ("--config", "--json", "--help") or (path, flag) in OWN_HELP:
            continue
        if flag[2:].replace("-", "_") in fields:
            hand_typed.append(flag)
    assert not hand_typed, f"odyssey {path}: use option_for for {hand_typed}"


def test_own_help_entries_still_exist():
    flags = {(path, opt) for path, command in ALL for p in command.params for opt in p.opts}
    assert set(OWN_HELP) <= flags


class Inner(StageConfig):
    size: int = Field(3, description="how big")
    rate: float = 0.5


class Outer(StageConfig):
    name: str = Field(..., description="required")
    inner: Inner = Field(default_factory=lambda: Inner(size=7))


def test_option_for_follows_sections_and_their_defaults():
    assert field_help(Outer, "inner.size") == "how big"
    assert field_default(Outer, "inner.size") == 7  # the section's default, not Inner's own 3
    assert field_default(Outer, "name") is None  # required: no default to show
    info = option_for(Outer, "inner.size", "--size", more="(a flag)")
    assert info.help == "how big (a flag)" and info.default is None and info.show_default == "7"
    with pytest.raises(ValueError, match="no description"):
        option_for(Outer, "inner.rate", "--rate")
    with pytest.raises(KeyError, match="no field"):
        field_help(Outer, "inner.nope")
    with pytest.raises(KeyError, match="not a config section"):
        field_help(Outer, "name.x")
