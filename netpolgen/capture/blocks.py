"""A bounded read buffer over a capture stream.

Records straddle block boundaries; the feeder keeps the unconsumed tail of one block at the
start of the next, so a reader only ever walks whole records. Each block is a fresh array (a
batch handed out earlier stays valid), so memory is about two blocks, whatever the file size.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from netpolgen.capture.batch import PAD

# 4 MB: big enough that per-block Python overhead is noise, small enough that one block's
# per-packet arrays stay in cache (measured: 4-8 MB blocks beat 16-32 MB by 10-25%).
DEFAULT_BLOCK_BYTES = 4 * 1024 * 1024


class BlockFeeder:
    """Blocks of a binary stream with carry-over of partial records."""

    def __init__(self, f: BinaryIO, block_bytes: int = DEFAULT_BLOCK_BYTES, start: bytes = b"") -> None:
        self._f = f
        self.block_bytes = max(int(block_bytes), 64)
        self.buf = np.zeros(PAD, dtype=np.uint8)
        self.fill = 0  # valid bytes in buf
        self.base = 0  # stream position of buf[0]
        self.eof = False
        self._start = start  # bytes already read from the stream (the sniffed head)

    def advance(self, consumed: int, need: int = 0) -> bool:
        """Drop ``consumed`` bytes from the front and read more, so that at least ``need`` bytes
        (when the stream has them) or a full block are available. False when nothing new came."""
        tail = self.fill - consumed
        size = max(self.block_bytes, need, tail)
        new = np.empty(size + PAD, dtype=np.uint8)
        new[:tail] = self.buf[consumed : self.fill]
        got = tail
        if self._start:
            k = min(len(self._start), size - got)
            new[got : got + k] = np.frombuffer(self._start[:k], dtype=np.uint8)
            self._start = self._start[k:]
            got += k
        view = memoryview(new)
        while got < size and not self.eof:
            n = self._f.readinto(view[got:size])  # type: ignore[attr-defined]
            if not n:
                self.eof = True
                break
            got += n
        new[got : got + PAD] = 0
        fresh = got > tail
        self.base += consumed
        self.buf = new
        self.fill = got
        return fresh
