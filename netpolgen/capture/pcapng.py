"""pcapng: sections (SHB) holding interfaces (IDB, each with its own link type and timestamp
resolution) and packet blocks (EPB, SPB, and the obsolete PB), in either byte order.

Like classic pcap, the block walk is a small sequential loop; packet fields are gathered from
the block with numpy. A new section may change byte order and always resets the interfaces, so a
batch never spans two sections.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from netpolgen.capture.base import MAX_CAPLEN, CaptureReader
from netpolgen.capture.batch import NO_TIME, PacketBatch
from netpolgen.capture.blocks import DEFAULT_BLOCK_BYTES, BlockFeeder
from netpolgen.capture.gather import Gather

SHB = 0x0A0D0D0A
IDB = 1
OPB = 2  # obsolete Packet Block
SPB = 3
EPB = 6
SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
# A block bigger than this is garbage, not a packet (largest packet plus generous options).
MAX_BLOCK = MAX_CAPLEN + 65_536

_NATIVE = "<" if sys.byteorder == "little" else ">"
OPT_TSRESOL = 9
OPT_TSOFFSET = 14


def is_pcapng(head: bytes) -> bool:
    return head[:4] == SHB_MAGIC


@dataclass(frozen=True)
class Interface:
    """One IDB: link type, snapshot length and how to turn its timestamps into nanoseconds."""

    linktype: int
    snaplen: int
    tsresol: int = 6  # the if_tsresol byte: 10^-n, or 2^-n when the top bit is set
    tsoffset: int = 0  # seconds added to every timestamp

    def to_ns(self, ticks: np.ndarray) -> np.ndarray:
        """Raw 64-bit timestamps -> int64 unix nanoseconds."""
        t = ticks.astype(np.uint64)
        if self.tsresol & 0x80:
            e = self.tsresol & 0x7F
            whole = (t >> np.uint64(e)).astype(np.int64) * 1_000_000_000
            frac = t & np.uint64((1 << e) - 1)
            if e <= 33:  # exact: frac * 10^9 < 2^63
                ns = whole + ((frac * np.uint64(1_000_000_000)) >> np.uint64(e)).astype(np.int64)
            else:
                ns = whole + (frac.astype(np.float64) * (1e9 / (1 << e))).astype(np.int64)
        elif self.tsresol <= 9:
            ns = t.astype(np.int64) * (10 ** (9 - self.tsresol))
        else:
            ns = (t // np.uint64(10 ** (self.tsresol - 9))).astype(np.int64)
        return ns + self.tsoffset * 1_000_000_000


def _packet_header(order: str) -> np.dtype:
    """The fixed part of EPB/PB/SPB blocks: type, length, then (EPB) interface, timestamp,
    captured and wire length; PB has a 16-bit interface; SPB its wire length in place of the
    interface."""
    u4, u2 = order + "u4", order + "u2"
    return np.dtype({"names": ["type", "len", "iface", "iface16", "ts_hi", "ts_lo", "caplen", "origlen"],
                     "formats": [u4, u4, u4, u2, u4, u4, u4, u4],
                     "offsets": [0, 4, 8, 8, 12, 16, 20, 24], "itemsize": 28})


class PcapNgReader(CaptureReader):
    """Packets of a pcapng stream."""

    format_name = "pcapng"

    def __init__(self, f: BinaryIO, name: str, head: bytes, block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        super().__init__(f, name, head, block_bytes)
        self.order = "<"
        self.interfaces: list[Interface] = []
        self.skipping = False  # inside a section of a pcapng version we do not know

    def _batches(self, feeder: BlockFeeder) -> Iterator[PacketBatch]:
        feeder.advance(0)
        consumed = 0
        while True:
            end = feeder.fill
            # A section header at the current position: read it (it sets the byte order).
            if end - consumed >= 12 and bytes(feeder.buf[consumed : consumed + 4]) == SHB_MAGIC:
                blen = self._section(feeder, consumed)
                if blen is not None and consumed + blen <= end:
                    consumed += blen
                    self.bytes_read += blen
                    continue
                need = blen
            else:
                offs, stop = self._walk(feeder, consumed, end)
                if len(offs):
                    yield self._batch(feeder, offs)
                self.bytes_read += stop - consumed
                consumed = stop
                if end - consumed >= 12 and bytes(feeder.buf[consumed : consumed + 4]) == SHB_MAGIC:
                    continue
                need = self._block_need(feeder, consumed)
            if feeder.eof:
                left = end - consumed
                if left:
                    self._truncated_at(self.records + 1, feeder.base + consumed, left,
                                       need if left >= 8 else None)
                return
            feeder.advance(consumed, need or 0)
            consumed = 0

    # -- blocks ---------------------------------------------------------------------------

    def _section(self, feeder: BlockFeeder, at: int) -> int | None:
        """Read the SHB at ``at``: sets the byte order, forgets the interfaces. Its length, or
        None when not all of it is in the buffer yet."""
        where = f"section header at byte {feeder.base + at}"
        bom = bytes(feeder.buf[at + 8 : at + 12])
        if bom == b"\x4d\x3c\x2b\x1a":
            self.order = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            self.order = ">"
        else:
            raise self.error(where, f"bad byte-order magic {bom.hex()}")
        (blen,) = struct.unpack_from(self.order + "I", feeder.buf.data, at + 4)
        if blen < 28 or blen % 4 or blen > MAX_BLOCK:
            raise self.error(where, f"bad block length {blen}")
        if at + blen > feeder.fill:
            return blen if not feeder.eof else None
        self.interfaces = []
        (major, minor) = struct.unpack_from(self.order + "HH", feeder.buf.data, at + 12)
        # A section of another major version may lay out its blocks differently: skip all of
        # it (the block framing is the same in every version) and read on at the next section.
        self.skipping = major != 1
        if self.skipping:
            self.notes.append(f"{self.name}: {where} is pcapng version {major}.{minor}, which this "
                              "reader does not know; the packets of that section were skipped")
        return blen

    def _block_need(self, feeder: BlockFeeder, at: int) -> int | None:
        """Bytes the (partial) block at ``at`` needs, or None when its header is incomplete."""
        if feeder.fill - at < 8 or bytes(feeder.buf[at : at + 4]) == SHB_MAGIC:
            return None  # too little to tell, or a section header whose byte order is not read yet
        (blen,) = struct.unpack_from(self.order + "I", feeder.buf.data, at + 4)
        self._check_len(blen, feeder.base + at, self.records)
        return blen

    def _check_len(self, blen: int, pos: int, before: int) -> None:
        """``before``: the packets before the block, so that the error says where in packets too."""
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            raise self.error(f"block at byte {pos} (after record {before})", f"bad block length {blen} (corrupt file?)")

    def _walk(self, feeder: BlockFeeder, off: int, end: int) -> tuple[np.ndarray, int]:
        """Offsets of the whole packet blocks from ``off`` up to the next section header or the
        first partial block; interface blocks met on the way are read."""
        mv = feeder.buf.data
        head = struct.Struct(self.order + "II").unpack_from
        offs = array("q")
        app = offs.append
        last = end - 12
        epb = -1 if self.skipping else EPB  # in a skipped section no block is a packet
        # Blocks are 32-bit aligned: in the machine's byte order, type and length are read by
        # indexing a uint32 view, cheaper per block than a struct call. That inner loop takes
        # only the common case (a whole, well-formed EPB); any other block goes through the
        # general step below, then the inner loop resumes.
        words = feeder.buf[: len(feeder.buf) // 4 * 4].data.cast("I") \
            if self.order == _NATIVE and off % 4 == 0 else None
        while off <= last:
            if words is not None:
                while off <= last:
                    w = off >> 2
                    nxt = off + words[w + 1]
                    if words[w] != epb or nxt > end or nxt & 3 or nxt < off + 12:
                        break
                    app(off)
                    off = nxt
                if off > last:
                    break
            btype, blen = head(mv, off)
            nxt = off + blen
            if nxt > end or blen < 12 or blen & 3 or btype == SHB:
                break
            if btype == epb:
                app(off)
            elif self.skipping:
                pass
            elif btype == SPB or btype == OPB:
                app(off)
            elif btype == IDB:
                self._interface(feeder, off, blen)
            off = nxt
        out = np.frombuffer(offs, dtype=np.int64) if offs else np.empty(0, np.int64)
        if off <= last and head(mv, off)[0] != SHB:
            self._check_len(head(mv, off)[1], feeder.base + off, self.records + len(offs))
        return out, off

    def _interface(self, feeder: BlockFeeder, at: int, blen: int) -> None:
        where = f"interface block at byte {feeder.base + at}"
        if blen < 20:
            raise self.error(where, f"block too short ({blen} bytes)")
        linktype, _res, snaplen = struct.unpack_from(self.order + "HHI", feeder.buf.data, at + 8)
        tsresol, tsoffset = 6, 0
        pos, stop = at + 16, at + blen - 4
        while pos + 4 <= stop:
            code, length = struct.unpack_from(self.order + "HH", feeder.buf.data, pos)
            value = pos + 4
            if code == 0:
                break
            if value + length > stop:
                raise self.error(where, f"option {code} runs past the block")
            if code == OPT_TSRESOL and length >= 1:
                tsresol = int(feeder.buf[value])
            elif code == OPT_TSOFFSET and length >= 8:
                (tsoffset,) = struct.unpack_from(self.order + "q", feeder.buf.data, value)
            pos = value + ((length + 3) & ~3)
        if (tsresol & 0x7F) > 63 or (not tsresol & 0x80 and tsresol > 18):
            raise self.error(where, f"impossible timestamp resolution {tsresol:#x}")
        self.interfaces.append(Interface(linktype, snaplen, tsresol, tsoffset))
        self.linktypes.add(linktype)

    # -- packets --------------------------------------------------------------------------

    def _batch(self, feeder: BlockFeeder, offs: np.ndarray) -> PacketBatch:
        n = len(offs)
        h = Gather(feeder.buf).struct(offs, _packet_header(self.order))
        btype = h["type"]
        blen = h["len"].astype(np.int64)
        simple = btype == SPB
        obsolete = btype == OPB
        iface = h["iface"].astype(np.int64)
        if obsolete.any():
            iface = np.where(obsolete, h["iface16"], iface)
        ticks = (h["ts_hi"].astype(np.uint64) << np.uint64(32)) | h["ts_lo"]
        caplen = h["caplen"].astype(np.int64)
        origlen = h["origlen"].astype(np.int64)
        data_off = offs + 28
        room = blen - 32  # EPB/PB: bytes between the fixed fields and the trailing length
        if simple.any():
            iface[simple] = 0
            spb_len = h["iface"].astype(np.int64)  # an SPB has its wire length there
            origlen = np.where(simple, spb_len, origlen)
            # An SPB's captured length is implied: the wire length, cut at the snapshot length
            # (0 means none) and at the block's end.
            snap = self.interfaces[0].snaplen if self.interfaces else 0
            cap = np.minimum(spb_len, blen - 16)
            if snap:
                cap = np.minimum(cap, snap)
            caplen = np.where(simple, cap, caplen)
            data_off = np.where(simple, offs + 12, data_off)
            room = np.where(simple, blen - 16, room)
        first = self.records + 1
        record_no = np.arange(first, first + n, dtype=np.int64)

        def fail(mask: np.ndarray, what) -> None:
            bad = np.flatnonzero(mask)
            if len(bad):
                i = int(bad[0])
                where = f"record {first + i} at byte {feeder.base + int(offs[i])}"
                raise self.error(where, what(i))

        fail(caplen > room, lambda i: f"captured length {int(caplen[i])} overruns its {int(blen[i])}-byte block")
        n_if = len(self.interfaces)
        fail(iface >= n_if, lambda i: f"packet on interface {int(iface[i])}, but {n_if} interfaces are described")
        self.records += n

        lt_table = np.array([i.linktype for i in self.interfaces] or [0], dtype=np.int32)
        linktype = lt_table[iface] if n_if else np.zeros(n, np.int32)
        if not simple.any() and n and (iface == iface[0]).all():  # one interface: one conversion
            ts_ns = self.interfaces[int(iface[0])].to_ns(ticks)
        else:
            ts_ns = np.full(n, NO_TIME, dtype=np.int64)
            timed = ~simple
            for k in np.unique(iface[timed]).tolist():
                sel = timed & (iface == k)
                ts_ns[sel] = self.interfaces[k].to_ns(ticks[sel])
        return PacketBatch(
            buf=feeder.buf,
            data_off=data_off,
            caplen=caplen,
            origlen=origlen,
            ts_ns=ts_ns,
            linktype=linktype,
            record_no=record_no,
            file_pos=offs + feeder.base,
        )
