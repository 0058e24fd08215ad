"""Bytes of a stream, read by a thread so the main loop can keep time while input is quiet.

``StdinFeed`` reads a pipe (or any file descriptor) to its end. ``FollowFeed`` reads a file
as ``tail -f`` does: from the start, then whatever is appended, and when the file is replaced
(rotation: another inode at the path) or cut short (truncation) it starts again at the top of
the new content, after a ``RESTART`` so the segmenter sniffs and reads its header afresh.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import BinaryIO

EOF = object()  # the stream ended
RESTART = object()  # a new file begins (rotation or truncation): new header, new format


class Feed:
    """A daemon thread putting ``bytes``, ``RESTART``, ``EOF`` or an ``OSError`` on ``items``.
    The queue is bounded: a reader faster than the parser waits instead of filling memory."""

    piece = 1 << 20

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._guarded, daemon=True, name=type(self).__name__)

    def start(self) -> "Feed":
        self._thread.start()
        return self

    def _guarded(self) -> None:
        try:
            self.run()
        except OSError as e:
            self.items.put(e)
        self.items.put(EOF)

    def run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class StdinFeed(Feed):
    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def run(self) -> None:
        while True:
            data = os.read(self.fd, self.piece)  # returns what the pipe holds, without waiting for more
            if not data:
                return
            self.items.put(data)


class FollowFeed(Feed):
    """``tail -F``: never ends by itself; the main loop stops on a signal."""

    def __init__(self, path: str, poll: float = 0.25) -> None:
        super().__init__()
        self.path = path
        self.poll = poll

    def run(self) -> None:
        f = self._open()
        while True:
            data = f.read(self.piece) if f is not None else b""
            if data:
                self.items.put(data)
                continue
            time.sleep(self.poll)
            try:
                st = os.stat(self.path)
            except FileNotFoundError:  # between the rename and the new file
                continue
            if f is None:
                f = self._open()
                if f is not None:
                    self.items.put(RESTART)
                continue
            here = os.fstat(f.fileno())
            if st.st_ino != here.st_ino or st.st_dev != here.st_dev:
                rest = f.read()  # what the old file got before it was renamed away
                if rest:
                    self.items.put(rest)
                f.close()
                f = self._open()
                self.items.put(RESTART)
            elif st.st_size < f.tell():
                f.seek(0)
                self.items.put(RESTART)

    def _open(self) -> BinaryIO | None:
        try:
            return open(self.path, "rb", buffering=0)
        except FileNotFoundError:
            return None


__all__ = ["EOF", "RESTART", "Feed", "FollowFeed", "StdinFeed"]
