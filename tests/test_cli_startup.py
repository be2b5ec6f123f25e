"""The CLI answers ``--help`` and usage errors without importing the heavy libraries.

Those take seconds to import (torch alone several); a command imports them only once its
options are parsed and its own code runs. The commands are found in the Typer app itself,
so a new command is checked without being listed here.
"""

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "scipy", "accelerate", "datasets", "sentence_transformers",
         "matplotlib", "numba", "peft", "pyarrow", "tiktoken", "tqdm")

# Runs in a fresh interpreter: every command path's --help (and one usage error) in turn,
# printing after each, as one JSON line, the heavy libraries imported so far.
PROBE = r"""
import json, sys
import typer.main
from odyssey.cli import build_app, run

HEAVY = set(json.loads(sys.argv[1]))

def command_paths(command, prefix=()):
    yield prefix
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from command_paths(sub, prefix + (name,))

calls = [[*path, "--help"] for path in command_paths(typer.main.get_command(build_app()))]
calls.append(["adapt", "--no-such-flag"])
report = []
for argv in calls:
    code = run(argv)
    report.append({"argv": argv, "code": code, "heavy": sorted(HEAVY & set(sys.modules))})
print("\n" + json.dumps(report))
"""


def run_probe() -> list[dict]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_help_and_usage_errors_import_no_heavy_library():
    report = run_probe()
    paths = {" ".join(r["argv"][:-1]) for r in report}
    # The discovery really walked the tree: groups and their subcommands are there.
    assert {"", "adapt", "study", "corpus", "corpus build", "probe bias"} <= paths
    assert all(r["code"] == 0 for r in report if r["argv"][-1] == "--help")
    assert report[-1]["code"] == 2  # the usage error
    # sys.modules only grows, so the first call that shows a library is the one that imported it.
    first = next((r for r in report if r["heavy"]), None)
    assert first is None, f"`odyssey {' '.join(first['argv'])}` imported {first['heavy']}"


def test_libraries_are_quieted_when_a_command_runs_and_not_for_help(monkeypatch):
    import odyssey.cli

    calls = []
    monkeypatch.setattr(odyssey.cli, "_quiet_libraries", lambda: calls.append(1))
    assert odyssey.cli.run(["diagnose", "fit", "--help"]) == 0  # a group's callback on the way: no
    assert odyssey.cli.run(["corpus", "build", "--help"]) == 0
    assert calls == []
    assert odyssey.cli.run(["diagnose"]) == 2  # the group's own code (stops: --data required)
    assert odyssey.cli.run(["corpus", "build", "x", "--out", "o"]) == 2  # a subcommand's (no input)
    assert calls == [1, 1]
