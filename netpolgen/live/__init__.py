"""Live traffic: standard input and followed files read as streams, the proposal kept current.

- ``segments``: a byte stream cut into self-contained segments at record boundaries;
- ``feed``: the thread that reads the stream (a pipe, or a file followed as ``tail -F``);
- ``accumulate``: the edge table and endpoint digest a stream keeps instead of its records;
- ``run``: the loop (timer, SIGHUP, SIGINT/SIGTERM) and the one-line change report;
- ``generate`` and ``diff``: the two commands over a stream.
"""

from __future__ import annotations


def wants_stream(sources: list[str], follow: bool) -> bool:
    """True when the command line asks for a stream: ``-`` among the sources, or ``--follow``."""
    return follow or "-" in sources
