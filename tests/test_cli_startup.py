"""Start-up: the CLI module, `--help` and `--version` import none of the heavy libraries.

Each check runs in a fresh interpreter (this test process has long imported pandas), and reads
``sys.modules`` after the CLI has done its work: a module imported at the top of ``cli.py`` or of a
command module would show up there, whatever the timing of the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pandas", "numpy", "dask", "distributed", "kubernetes", "scapy", "pyarrow", "yaml", "dns")

_PROBE = """
import json, sys
import netpolgen.cli as cli
args = sys.argv[1:]
code = 0
if args:
    try:
        cli.main(args)
    except SystemExit as e:
        code = e.code or 0
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
sys.__stderr__.write(json.dumps({{"heavy": heavy, "code": code}}) + "\\n")
"""


def _probe(*args: str) -> tuple[dict, str]:
    code = _PROBE.format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


def test_importing_the_cli_imports_no_heavy_library():
    report, _ = _probe()
    assert report["heavy"] == []


@pytest.mark.parametrize("args", [["--help"], ["generate", "--help"], ["diff", "--help"], ["explain", "--help"]])
def test_help_imports_no_heavy_library(args):
    report, out = _probe(*args)
    assert report == {"heavy": [], "code": 0}
    assert "Usage: netpolgen" in out


def test_version_prints_the_package_version_without_heavy_imports():
    from netpolgen import __version__

    report, out = _probe("--version")
    assert report == {"heavy": [], "code": 0}
    assert out == f"netpolgen {__version__}\n"
