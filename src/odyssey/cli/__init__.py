"""The ``odyssey`` command: thin Typer commands over the library.

Each command group lives in its own module and registers itself with
:func:`build_app`. Commands parse options, resolve a config, call one library
function and render its result; they hold no logic of their own.

Errors a user can cause (:class:`odyssey.errors.OdysseyError`) are printed as one
line with a hint and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import sys

import typer
import typer.main
from rich.console import Console
from rich.text import Text

from odyssey.errors import OdysseyError


def make_console(stderr: bool = False) -> Console:
    """The console every command prints with. Markup is off: user text (paths such as
    ``corpora/legal[v2]`` or ``x[/y]``) is printed as it is, never read as Rich tags;
    styles are given as :class:`rich.text.Text` spans instead."""
    return Console(stderr=stderr, markup=False)


err_console = make_console(stderr=True)

# What to do after Ctrl-C, by command: how each one continues where it stopped.
AFTER_INTERRUPT = {
    "adapt": "rerun with --resume to continue from the newest checkpoint (--save-every N saves one every N steps)",
    "pretrain": "rerun with --resume to continue from the newest checkpoint",
    "study": "rerun the same command to continue: finished runs are kept",
    "collapse": "rerun the same command to continue: finished generations are kept",
    "world": "rerun the same command: it starts the unfinished build again",
}
AFTER_INTERRUPT_DEFAULT = "no output was left half-written; rerun the command to start again"

# Command-group modules, each with a ``register(app)`` function.
COMMAND_MODULES = ("corpus", "evaluate", "adapt", "world", "study", "analysis", "lmul", "diagnose", "collapse", "detect", "probe",
                   "models")


def build_app() -> typer.Typer:
    import importlib

    app = typer.Typer(
        name="odyssey",
        help="Will adapting a language model to your domain help, did it, why, and what to do about it.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"odyssey.cli.{name}").register(app)
    return app


def _fail(message: str, code: int) -> int:
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    return code


class _Interrupted(Exception):
    """Ctrl-C inside a command. Typer turns a KeyboardInterrupt into a silent exit 130;
    this passes through it to :func:`run`, which says how to continue."""


def _interrupt_as_error(callback):
    @functools.wraps(callback)
    def wrapped(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt as e:
            raise _Interrupted from e

    return wrapped


def _interrupted(argv: list[str]) -> int:
    words = [a for a in argv if not a.startswith("-")]
    advice = AFTER_INTERRUPT.get(words[0] if words else "", AFTER_INTERRUPT_DEFAULT)
    return _fail(f"interrupted; {advice}", 130)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv``; return the exit code instead of exiting."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    command = typer.main.get_command(build_app())
    _before_each_command(command, _quiet_libraries)
    for leaf in _leaf_commands(command):
        leaf.callback = _interrupt_as_error(leaf.callback)
    try:
        result = command.main(args=argv, prog_name="odyssey", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except OdysseyError as e:
        if debug:
            raise
        return _fail(str(e), 2)
    except (_Interrupted, KeyboardInterrupt):
        return _interrupted(argv)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        return _fail("aborted", 130)
    except Exception as e:
        # Usage errors (unknown option, bad value): typer raises its own vendored click
        # exceptions, so recognize them by their interface rather than their class.
        if debug or not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":  # `odyssey` alone: the help was shown
            return 0
        return _fail(e.format_message(), 2)


def _leaf_commands(command) -> list:
    """The commands that run code (a group's subcommands, recursively), with a callback."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        return [leaf for sub in subcommands.values() for leaf in _leaf_commands(sub)]
    return [command] if command.callback is not None else []


def _before_each_command(command, hook) -> None:
    """Run ``hook`` when a command's own code starts, after its options were parsed.

    Help and usage errors then import none of the heavy libraries the hook touches, so
    that ``odyssey ... --help`` answers at once.
    """
    for subcommand in getattr(command, "commands", {}).values():
        _before_each_command(subcommand, hook)
    callback = command.callback
    if callback is None:
        return

    @functools.wraps(callback)
    def with_hook(*args, **kwargs):
        # A group's callback also runs on the way to one of its subcommands (before that
        # one's options, --help included, are parsed): the hook waits for the command itself.
        if typer.main.get_current_context().invoked_subcommand is None:
            hook()
        return callback(*args, **kwargs)

    command.callback = with_hook


def _quiet_libraries() -> None:
    """odyssey shows its own progress; the libraries' per-file bars would bury it."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main() -> None:
    sys.exit(run())
