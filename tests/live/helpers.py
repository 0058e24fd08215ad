"""Running netpolgen with a pipe on standard input, and reading what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO


def run_cli(*args: str, stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", *args], input=stdin, capture_output=True,
                          cwd=REPO, timeout=timeout)


def start_cli(*args: str) -> subprocess.Popen:
    """netpolgen with a pipe to write to on standard input; stderr to a pipe too."""
    return subprocess.Popen([sys.executable, "-m", "netpolgen", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)


def tree(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` (relative path -> bytes), hidden ones included."""
    files = {}
    for root, _dirs, names in os.walk(out):
        for name in names:
            p = Path(root, name)
            files[str(p.relative_to(out))] = p.read_bytes()
    return files


def wait_for(predicate, timeout: float = 120.0, poll: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (a generous bound, not a
    timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def leftovers(out: Path) -> list[str]:
    """Anything beside or inside ``out`` that is not netpolgen output: staging directories."""
    parent = out.parent
    beside = [p.name for p in parent.iterdir() if p.name != out.name and p.name.startswith(".")]
    inside = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.is_dir() else []
    return beside + inside


def catches(pid: int, signum: int) -> bool:
    """True once process ``pid`` has a handler for ``signum`` (Linux: the SigCgt mask of
    /proc/PID/status). Before that a SIGHUP would end it: the default action."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        return False
    return False
