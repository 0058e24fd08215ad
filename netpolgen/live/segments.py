"""Cutting a byte stream into self-contained segments a source can read like a small file.

A stream (a pipe, a followed file) has no end to wait for, so it is read in segments: the
records that arrived up to a cut, always cut at a record boundary, each preceded by what a
reader of the format needs first (a CSV or VPC header line; a pcap file header; a pcapng
section header and interface descriptions). Each segment is parsed by a fresh ``Source``, so
every reader works on streams without knowing about them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from netpolgen.errors import SourceError

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",  # little-endian, usec / nsec
    b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">",
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_IDB = 1
_SNIFF_BYTES = 4096  # as much as detection reads of a file
_LINE_FORMATS = ("hubble", "calico", "vpc", "csv")


@dataclass
class Segment:
    data: bytes  # prefix + records: a file of the format
    first_record: int  # 0-based number of the segment's first record (line or packet) in the stream
    records: int  # records (lines or packets) in it, prefix excluded
    prefix_records: int  # lines or blocks of the prefix (a CSV header: 1)


@dataclass
class Segmenter:
    """Collects stream bytes and hands out segments cut at record boundaries.

    ``fmt`` is sniffed from the first bytes unless given. ``feed`` adds bytes; ``cut`` returns
    a segment of every complete record so far (None when there is none); ``cut(final=True)``
    at the end of the stream includes an unterminated last line (a truncated last packet is
    left to the reader to report)."""

    name: str
    fmt: str | None = None
    _buf: bytearray = field(default_factory=bytearray)
    _prefix: bytes = b""
    _records_done: int = 0
    _started: bool = False  # the prefix is known
    _endian: str = "<"
    _pcapng_headers: list[bytes] = field(default_factory=list)
    _ng_endian: str = "<"
    pending_bytes: int = 0
    # a line longer than this is dropped as it arrives (memory stays bounded), its number kept
    max_line: int | None = None
    oversized: list[int] = field(default_factory=list)  # stream line numbers (1-based)
    _skipping: bool = False

    def feed(self, data: bytes) -> None:
        if self._skipping:  # inside an oversized line: drop up to its end
            nl = data.find(b"\n")
            if nl < 0:
                return
            data = data[nl + 1:]
            self._skipping = False
        self._buf += data
        self.pending_bytes = len(self._buf)
        if (self.max_line is not None and self.fmt in _LINE_FORMATS and self._started
                and len(self._buf) > self.max_line and self._buf.find(b"\n", len(self._buf) - len(data)) < 0
                and self._buf.rfind(b"\n") < 0):
            # the whole buffer is one unfinished line longer than the limit: drop it
            self.oversized.append(self._records_done + 1)
            self._records_done += 1
            self._buf.clear()
            self.pending_bytes = 0
            self._skipping = True

    def ready(self, final: bool = False) -> bool:
        """True once the format is known (sniffed, or forced)."""
        if self.fmt is None:
            self._sniff(final)
        return self.fmt is not None

    def _sniff(self, final: bool) -> None:
        head = bytes(self._buf[:_SNIFF_BYTES])
        if not head:
            return
        if not final and len(head) < _SNIFF_BYTES and b"\n" not in head and len(head) < 24:
            return
        from netpolgen.sources import SOURCE_CLASSES, source_class

        for name in SOURCE_CLASSES:
            try:
                if source_class(name).sniff(head):
                    self.fmt = name
                    return
            except ImportError:
                continue
        if final or len(head) >= _SNIFF_BYTES:
            raise SourceError(self.name, None, "not a recognised capture or flow log (pcap, pcapng, Hubble, Calico, VPC, CSV)")

    def cut(self, final: bool = False) -> Segment | None:
        if not self.ready(final):
            if final and self._buf:
                raise SourceError(self.name, None, "not a recognised capture or flow log")
            return None
        if self.fmt in _LINE_FORMATS:
            return self._cut_lines(final)
        if self.fmt == "pcap":
            return self._cut_capture(final)
        # a format that cannot be cut (Parquet: its index is at the end) is one segment
        if not final:
            return None
        return self._take(len(self._buf), 1, 0)

    def _take(self, end: int, records: int, prefix_records: int) -> Segment:
        with memoryview(self._buf) as view:  # one copy of the body, with its prefix
            data = b"".join((self._prefix, view[:end]))
        del self._buf[:end]
        self.pending_bytes = len(self._buf)
        seg = Segment(data, self._records_done, records, prefix_records)
        self._records_done += records
        return seg

    # line formats --------------------------------------------------------------------------
    def _cut_lines(self, final: bool) -> Segment | None:
        if not self._started:
            if not self._take_header_line(final):
                return None
        end = self._buf.rfind(b"\n") + 1
        if final:
            end = len(self._buf)
        if end <= 0:
            return None
        lines = self._buf.count(b"\n", 0, end) + (0 if self._buf[end - 1:end] == b"\n" else 1)
        return self._take(end, lines, self._prefix.count(b"\n"))

    def _take_header_line(self, final: bool) -> bool:
        """CSV and VPC files may start with a header line every segment must repeat; it (and
        blank lines before it) becomes the prefix. False while that line is incomplete."""
        if self.fmt not in ("csv", "vpc"):
            self._started = True
            return True
        at = 0
        while True:
            nl = self._buf.find(b"\n", at)
            if nl < 0:
                if not final:
                    return False
                nl = len(self._buf) - 1
            line = bytes(self._buf[at:nl + 1])
            if line.strip() or nl + 1 >= len(self._buf):
                break
            at = nl + 1
        if self.fmt == "csv" or _is_vpc_header(line):
            n = nl + 1
            self._prefix = bytes(self._buf[:n])
            self._records_done += self._prefix.count(b"\n")
            del self._buf[:n]
        self._started = True
        return True

    # captures ------------------------------------------------------------------------------
    def _cut_capture(self, final: bool) -> Segment | None:
        if self._buf[:4] == PCAPNG_SHB or self._pcapng_headers:
            return self._cut_pcapng(final)
        if not self._started:
            if len(self._buf) < 24:
                return None
            self._endian = PCAP_MAGICS.get(bytes(self._buf[:4]), "<")
            self._prefix = bytes(self._buf[:24])
            del self._buf[:24]
            self._started = True
        at, n, size = 0, 0, len(self._buf)
        fmt = self._endian + "I"
        while at + 16 <= size:
            incl = struct.unpack_from(fmt, self._buf, at + 8)[0]
            if at + 16 + incl > size:
                break
            at += 16 + incl
            n += 1
        if final and at < size:  # a truncated last record: the reader reports it
            at, n = size, n + 1
        if n == 0:
            return None
        return self._take(at, n, 0)

    def _cut_pcapng(self, final: bool) -> Segment | None:
        """Blocks up to the last complete one; section headers and interface descriptions are
        remembered, and the prefix of a segment is those in force where it starts."""
        prefix = b"".join(self._pcapng_headers)
        at, n, size = 0, 0, len(self._buf)
        while at + 12 <= size:
            btype_raw = bytes(self._buf[at:at + 4])
            if btype_raw == PCAPNG_SHB:
                bom = bytes(self._buf[at + 8:at + 12])
                self._ng_endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(self._ng_endian + "II", self._buf, at)
            if blen < 12 or at + blen > size:
                if blen < 12:  # corrupt: leave it to the reader
                    at = size
                break
            block = bytes(self._buf[at:at + blen])
            if btype_raw == PCAPNG_SHB:
                self._pcapng_headers = [block]
            elif btype == _PCAPNG_IDB:
                self._pcapng_headers.append(block)
            at += blen
            n += 1
        if final and at < size:
            at, n = size, n + 1
        if n == 0:
            return None
        self._prefix = prefix
        return self._take(at, n, 0)


def _is_vpc_header(line: bytes) -> bool:
    from netpolgen.sources.vpc import _header_fields

    return _header_fields(line.decode("utf-8", "replace").strip()) is not None


__all__ = ["Segment", "Segmenter"]
