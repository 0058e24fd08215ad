"""Standard input (and other streams) as a source's file.

A source opens its input by name (``open_binary(path)``) and may open it twice (once to sniff
the format, once to read). Standard input can be read only once, so the stream reader
(``netpolgen.live``) cuts it into self-contained segments of bytes and serves each segment
under a name while a source reads it: ``open_binary`` asks ``served`` before opening a file.
"""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from typing import BinaryIO, Iterator

STDIN_ARG = "-"  # what the user writes on the command line
STDIN_NAME = "<stdin>"  # what messages call it

_served: dict[str, bytes] = {}
_lock = threading.Lock()


@contextmanager
def serving(name: str, data: bytes) -> Iterator[None]:
    """While the block runs, ``open_binary(name)`` reads ``data`` instead of a file."""
    with _lock:
        _served[name] = data
    try:
        yield
    finally:
        with _lock:
            _served.pop(name, None)


def served(name: str) -> BinaryIO | None:
    """A fresh reader over the bytes served under ``name``, or None (read the file)."""
    with _lock:
        data = _served.get(name)
    if data is None:
        return None
    return io.BufferedReader(io.BytesIO(data), buffer_size=1 << 20)  # type: ignore[return-value]


def is_stdin(arg: str) -> bool:
    return arg == STDIN_ARG


__all__ = ["STDIN_ARG", "STDIN_NAME", "is_stdin", "served", "serving"]
