"""Start-up: `netpolgen --help` and `netpolgen --version` against `python -c "import typer"`.

    python benchmarks/bench_startup.py [--repeat 10]

Each command is a fresh process, timed from outside (interpreter start included), best of
``--repeat`` runs, all in the same run so that the ratio holds on a shared machine. Typer is the
floor: the CLI is a typer app, so no `--help` can start faster than importing typer. Figures
only, no assertions: speed is not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

# Both run as a user runs them: with their bytecode cached (some sandboxes turn that off).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
COMMANDS = (
    ("python -c 'import typer'", [sys.executable, "-c", "import typer"]),
    ("netpolgen --help", [sys.executable, "-m", "netpolgen", "--help"]),
    ("netpolgen --version", [sys.executable, "-m", "netpolgen", "--version"]),
    ("netpolgen generate --help", [sys.executable, "-m", "netpolgen", "generate", "--help"]),
)


def best_of(command: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    for _, command in COMMANDS:  # bytecode caches written, files in the page cache
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
    # interleaved rounds: a burst of load on the machine hits every command alike
    best = {label: float("inf") for label, _ in COMMANDS}
    for _ in range(args.repeat):
        for label, command in COMMANDS:
            best[label] = min(best[label], best_of(command, 1))
    floor = best[COMMANDS[0][0]]
    print(f"load average {os.getloadavg()[0]:.2f}, best of {args.repeat}")
    for label, _ in COMMANDS:
        print(f"  {label:<28} {best[label]:6.3f} s  {best[label] / floor:5.2f}x import typer")


if __name__ == "__main__":
    main()
