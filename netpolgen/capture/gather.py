"""Integer gathers at arbitrary byte offsets of a block, in one numpy indexing operation each.

A block is viewed as overlapping fixed-width integers (stride one byte), so ``u32be[offs]``
reads the 4 bytes at every offset in ``offs`` at once, unaligned and in either byte order, with
no per-packet Python. Callers guarantee ``offs`` lie inside the block: batches carry ``PAD``
spare bytes, and the decoder clamps offsets it has not validated yet.
"""

from __future__ import annotations

import numpy as np

_NATIVE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class Gather:
    """Fixed-width reads at many offsets of one uint8 buffer."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self._views: dict[str, np.ndarray] = {}
        self.limit = len(buf) - 8  # largest offset any read may start at

    def _view(self, code: str) -> np.ndarray:
        v = self._views.get(code)
        if v is None:
            dt = np.dtype(code)
            n = len(self.buf) - dt.itemsize + 1
            v = np.ndarray((n,), dtype=dt, buffer=self.buf, offset=0, strides=(1,))
            self._views[code] = v
        return v

    def clamp(self, offs: np.ndarray, span: int = 0) -> np.ndarray:
        """Offsets forced into the range where reads up to ``span`` bytes past them (plus one
        8-byte read) stay in the buffer: for speculative reads whose results are masked later.
        Offsets are never negative."""
        return np.minimum(offs, self.limit - span)

    def struct(self, offs: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Records of a structured ``dtype`` (a header layout) starting at each offset, in one
        gather: copying whole headers as opaque byte strings is several times faster than a
        gather per field. Fields are then read from the result (``h["src"]``)."""
        code = f"V{dtype.itemsize}"
        v = self._views.get(code)
        if v is None:
            n = len(self.buf) - dtype.itemsize + 1
            v = np.ndarray((n,), dtype=np.dtype(code), buffer=self.buf, offset=0, strides=(1,))
            self._views[code] = v
        return v[offs].view(dtype)

    def u8(self, offs: np.ndarray) -> np.ndarray:
        return self.buf[offs]

    def u16(self, offs: np.ndarray, order: str = ">") -> np.ndarray:
        return self._view(order + "u2")[offs].astype(np.uint16, copy=False)

    def u32(self, offs: np.ndarray, order: str = ">") -> np.ndarray:
        return self._view(order + "u4")[offs].astype(np.uint32, copy=False)

    def u64(self, offs: np.ndarray, order: str = ">") -> np.ndarray:
        return self._view(order + "u8")[offs].astype(np.uint64, copy=False)
