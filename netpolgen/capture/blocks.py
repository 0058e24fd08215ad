"""A bounded read buffer over a capture stream.

Records straddle block boundaries; the feeder keeps the unconsumed tail of one block at the
start of the next, so a reader only ever walks whole records. Each block is a fresh array (a
batch handed out earlier stays valid), so memory is about three blocks, whatever the file size.

The next block is read ahead in a worker thread while the current one is walked and decoded:
a read releases the GIL, so on a spare core it costs no time, and with no spare core the
work is the same as reading in line (unlike walking records in another thread, which
contends for the GIL). The read-ahead block leaves room in front for the current block's
tail, so that tail is the only copy made.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

from netpolgen.capture.batch import PAD

# 8 MB: big enough that per-block Python overhead is noise, small enough that one block's
# per-packet arrays stay in cache (measured: 4-8 MB blocks beat 16-32 MB by 10-25%; with the
# read-ahead, 8 MB beats 4 MB by ~5% for ~10 MB more peak memory).
DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024

# Room in front of a read-ahead block for the tail of the one before (at most the block size):
# a classic pcap record of the largest sane length fits (a longer tail is joined by copying,
# as without read-ahead).
TAIL_ROOM = 256 * 1024 + 64


class BlockFeeder:
    """Blocks of a binary stream with carry-over of partial records."""

    def __init__(self, f: BinaryIO, block_bytes: int = DEFAULT_BLOCK_BYTES, start: bytes = b"",
                 read_ahead: bool = True) -> None:
        self._f = f
        self.block_bytes = max(int(block_bytes), 64)
        self.buf = np.zeros(PAD, dtype=np.uint8)
        self.fill = 0  # valid bytes in buf
        self.base = 0  # stream position of buf[0]
        self.eof = False
        self._start = start  # bytes already read from the stream (the sniffed head)
        self._pool = ThreadPoolExecutor(1, "netpolgen-read-ahead") if read_ahead else None
        self._room = min(TAIL_ROOM, self.block_bytes)
        self._ahead: tuple[np.ndarray, Future] | None = None

    def close(self) -> None:
        """Wait for a read in flight and stop the read-ahead thread (the stream is then the
        caller's alone again)."""
        if self._ahead is not None:
            _, pending = self._ahead
            self._ahead = None
            pending.exception()  # waits; what went wrong no longer matters
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def advance(self, consumed: int, need: int = 0) -> bool:
        """Drop ``consumed`` bytes from the front and read more: a block's worth, or as much as
        makes ``need`` bytes available (when the stream has them). False when nothing new came."""
        tail = self.fill - consumed
        want = max(self.block_bytes, need - tail)  # new bytes: the same whether read ahead or not
        ahead = None
        if self._ahead is not None:
            arr, pending = self._ahead
            self._ahead = None
            n, eof = pending.result()  # a failed read raises here, where it would have anyway
            ahead = (arr, n, eof)
        room = self._room
        if ahead is not None and tail <= room and want == self.block_bytes:
            arr, n, self.eof = ahead
            arr[room - tail : room] = self.buf[consumed : self.fill]
            new = arr[room - tail :]
            got = tail + n
        else:
            new = np.empty(tail + want + PAD, dtype=np.uint8)
            new[:tail] = self.buf[consumed : self.fill]
            got = tail
            if ahead is not None:
                arr, n, self.eof = ahead
                new[got : got + n] = arr[room : room + n]
                got += n
            if self._start:
                k = min(len(self._start), want)
                new[got : got + k] = np.frombuffer(self._start[:k], dtype=np.uint8)
                self._start = self._start[k:]
                got += k
            if got < tail + want and not self.eof:
                n, self.eof = _read_into(self._f, new.data[got : tail + want])
                got += n
        new[got : got + PAD] = 0
        fresh = got > tail
        self.base += consumed
        self.buf = new
        self.fill = got
        if self._pool is not None:
            if self.eof:
                self.close()
            else:
                arr = np.empty(room + self.block_bytes + PAD, dtype=np.uint8)
                view = arr.data[room : room + self.block_bytes]
                self._ahead = (arr, self._pool.submit(_read_into, self._f, view))
        return fresh


def _read_into(f: BinaryIO, view: memoryview) -> tuple[int, bool]:
    """Fill ``view`` from ``f``: bytes read, and whether the stream ended first."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return got, True
        got += n
    return got, False
