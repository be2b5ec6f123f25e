"""Start-up time of the ``odyssey`` command against importing torch alone.

Each command runs in a fresh interpreter (the installed ``odyssey`` entry point, then
``python -c "import torch"``), ``--repeats`` times after one warm-up run that fills the
file cache; prints the median and the range of wall times.

    python benchmarks/cli_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def wall_times(argv: list[str], repeats: int) -> list[float]:
    subprocess.run(argv, capture_output=True, check=True)  # warm-up: file cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    odyssey = shutil.which("odyssey") or sys.exit("odyssey is not installed in this environment")
    commands = {
        "odyssey --help": [odyssey, "--help"],
        "odyssey adapt --help": [odyssey, "adapt", "--help"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }
    for label, argv in commands.items():
        times = wall_times(argv, args.repeats)
        print(f"{label:28s} median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})")


if __name__ == "__main__":
    main()
