"""The package's structure as docs/architecture.md draws it: no import cycle, no import against
the pipeline order, and the drawn module graph is the one the code has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_module_graph_has_no_cycle_no_back_edge_and_is_drawn_as_it_is() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "module_graph.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
