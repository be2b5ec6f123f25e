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

from odyssey.errors import OdysseyError

err_console = Console(stderr=True)

# Command-group modules, each with a ``register(app)`` function.
COMMAND_MODULES = ("corpus", "evaluate", "adapt", "world", "study", "analysis", "lmul", "diagnose", "collapse", "detect", "probe")


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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv``; return the exit code instead of exiting."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    command = typer.main.get_command(build_app())
    _before_each_command(command, _quiet_libraries)
    try:
        result = command.main(args=argv, prog_name="odyssey", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except OdysseyError as e:
        if debug:
            raise
        return _fail(str(e), 2)
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
    except KeyboardInterrupt:
        return _fail("interrupted; rerun with --resume to continue where it stopped", 130)


def _before_each_command(command, hook) -> None:
    """Run ``hook`` when a command's own code starts, after its options were parsed.

    Help and usage errors then import none of the heavy libraries the hook touches, so
    that ``odyssey ... --help`` answers at once.
    """
    subcommands = getattr(command, "commands", None)
    if subcommands:  # a group: wrap its commands, not the group's own callback
        for subcommand in subcommands.values():
            _before_each_command(subcommand, hook)
        return
    callback = command.callback
    if callback is None:
        return

    @functools.wraps(callback)
    def with_hook(*args, **kwargs):
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
