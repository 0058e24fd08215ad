"""Classic pcap: a 24-byte file header, then 16-byte record headers each followed by its bytes.

The record walk (where does each record start?) is a tight Python loop because every step
depends on the previous record's length; everything else about the records (times, lengths) is
gathered from the block with numpy afterwards.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import BinaryIO, Iterator

import numpy as np

from netpolgen.capture.base import MAX_CAPLEN, CaptureReader
from netpolgen.capture.batch import PacketBatch
from netpolgen.capture.blocks import DEFAULT_BLOCK_BYTES, BlockFeeder
from netpolgen.capture.gather import Gather

FILE_HEADER = 24
RECORD_HEADER = 16

# magic as stored -> (byte order, nanoseconds per fractional unit)
MAGICS: dict[bytes, tuple[str, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # microseconds, little-endian writer
    b"\xa1\xb2\xc3\xd4": (">", 1000),  # microseconds, big-endian writer
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}


def is_pcap(head: bytes) -> bool:
    return head[:4] in MAGICS


class ClassicPcapReader(CaptureReader):
    """Records of a classic pcap stream."""

    format_name = "pcap"

    def __init__(self, f: BinaryIO, name: str, head: bytes, block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        super().__init__(f, name, head, block_bytes)
        self.order, self.frac_ns = MAGICS[head[:4]]
        if len(head) < FILE_HEADER:
            raise self.error("file header", f"truncated: {len(head)} of {FILE_HEADER} bytes")
        _maj, _min, _zone, _sigfigs, snaplen, network = struct.unpack_from(self.order + "HHiIII", head, 4)
        # The top bits of the link-type field carry FCS information, not the link type.
        self.linktype = network & 0x0FFFFFFF
        self.snaplen = snaplen
        self.max_caplen = max(snaplen, MAX_CAPLEN)
        self.linktypes.add(self.linktype)
        u4 = self.order + "u4"
        self._header = np.dtype([("sec", u4), ("frac", u4), ("caplen", u4), ("origlen", u4)])

    def _batches(self, feeder: BlockFeeder) -> Iterator[PacketBatch]:
        feeder.advance(0)
        consumed = FILE_HEADER
        self.bytes_read = FILE_HEADER
        caplen_at = struct.Struct(self.order + "I").unpack_from
        native = self.order == ("<" if sys.byteorder == "little" else ">")
        while True:
            if native:
                offs, stop = _walk_native(feeder.buf, consumed, feeder.fill)
            else:
                offs, stop = _walk(feeder.buf.data, consumed, feeder.fill, caplen_at)
            if len(offs):
                yield self._batch(feeder, offs)
                self.bytes_read += stop - consumed
            consumed = stop
            # What is left is one partial record (or nothing): read on until it is whole.
            left = feeder.fill - consumed
            need = RECORD_HEADER
            if left >= RECORD_HEADER:
                caplen = caplen_at(feeder.buf.data, consumed + 8)[0]
                if caplen > self.max_caplen:
                    where = f"record {self.records + 1} at byte {feeder.base + consumed}"
                    raise self.error(where, f"captured length {caplen} is impossible (corrupt file?)")
                need = RECORD_HEADER + caplen
            if feeder.eof:
                if left:
                    self._truncated_at(self.records + 1, feeder.base + consumed, left,
                                       need if left >= RECORD_HEADER else None)
                return
            feeder.advance(consumed, need)
            consumed = 0

    def _batch(self, feeder: BlockFeeder, offs: np.ndarray) -> PacketBatch:
        h = Gather(feeder.buf).struct(offs, self._header)
        sec = h["sec"].astype(np.int64)
        frac = h["frac"].astype(np.int64)
        caplen = h["caplen"].astype(np.int64)
        origlen = h["origlen"].astype(np.int64)
        bad = np.flatnonzero(caplen > self.max_caplen)
        if len(bad):
            i = int(bad[0])
            where = f"record {self.records + i + 1} at byte {feeder.base + int(offs[i])}"
            raise self.error(where, f"captured length {int(caplen[i])} is impossible (corrupt file?)")
        n = len(offs)
        first = self.records + 1
        self.records += n
        return PacketBatch(
            buf=feeder.buf,
            data_off=offs + RECORD_HEADER,
            caplen=caplen,
            origlen=origlen,
            ts_ns=sec * 1_000_000_000 + frac * self.frac_ns,
            linktype=np.full(n, self.linktype, dtype=np.int32),
            record_no=np.arange(first, first + n, dtype=np.int64),
            file_pos=offs + feeder.base,
        )


def _walk_native(buf: np.ndarray, off: int, end: int) -> tuple[np.ndarray, int]:
    """``_walk`` for files in the machine's byte order: the captured length is read by indexing
    one of four uint32 views of the block (one per alignment), which costs less per record than
    a struct call. Positions tracked are those of the length field (record start + 8).

    One test per record: a record whose header is cut off (fewer than 16 bytes left) always
    seems to end past the block (q + 16 + any length > end + 8), and its length field, read
    from the last bytes and the zero padding, stays inside the buffer (PAD >= 16)."""
    views = tuple(buf[k : k + (len(buf) - k) // 4 * 4].data.cast("I") for k in range(4))
    offs = array("q")
    app = offs.append
    q = off + 8
    end_q = end + 8
    while True:
        nq = q + 16 + views[q & 3][q >> 2]  # 16: RECORD_HEADER, as a constant
        if nq > end_q:
            break
        app(q)
        q = nq
    out = np.frombuffer(offs, dtype=np.int64) - 8 if offs else np.empty(0, np.int64)
    return out, q - 8


def _walk(mv: memoryview, off: int, end: int, caplen_at) -> tuple[np.ndarray, int]:
    """Start offsets of the whole records in ``mv[off:end]``, and where the first partial one
    starts. The hot sequential loop: keep it minimal."""
    offs = array("q")
    app = offs.append
    last = end - RECORD_HEADER
    while off <= last:
        nxt = off + RECORD_HEADER + caplen_at(mv, off + 8)[0]
        if nxt > end:
            break
        app(off)
        off = nxt
    return np.frombuffer(offs, dtype=np.int64) if offs else np.empty(0, np.int64), off
