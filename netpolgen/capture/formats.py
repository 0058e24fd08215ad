"""Which capture format a stream is, by its first bytes, and the reader for it."""

from __future__ import annotations

from typing import BinaryIO

from netpolgen.capture.base import CaptureReader
from netpolgen.capture.blocks import DEFAULT_BLOCK_BYTES
from netpolgen.capture.pcapfile import ClassicPcapReader, is_pcap
from netpolgen.capture.pcapng import PcapNgReader, is_pcapng
from netpolgen.errors import SourceError

HEAD_BYTES = 64
# Magics of capture formats we recognise but do not read, so the message can say what it is.
_OTHER_MAGICS = {
    b"\x34\xcd\xb2\xa1": "Kuznetzov's modified pcap",
    b"\xa1\xb2\xcd\x34": "Kuznetzov's modified pcap",
    b"XCP\x00": "NetMon/Windows capture",
}


def is_capture(head: bytes) -> bool:
    """True for classic pcap (either byte order, micro- or nanosecond) and pcapng."""
    return is_pcap(head) or is_pcapng(head)


def open_capture(f: BinaryIO, name: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> CaptureReader:
    """A reader for the capture stream ``f`` (positioned at its start). Raises SourceError when
    the stream is empty or not a capture we read."""
    try:
        head = f.read(HEAD_BYTES)
    except (OSError, EOFError) as e:  # e.g. a corrupt gzip stream
        raise SourceError(name, None, f"cannot read: {e}") from e
    if not head:
        raise SourceError(name, None, "empty file")
    if is_pcap(head):
        return ClassicPcapReader(f, name, head, block_bytes)
    if is_pcapng(head):
        if len(head) < 12:
            raise SourceError(name, "section header", f"truncated: {len(head)} bytes")
        return PcapNgReader(f, name, head, block_bytes)
    kind = _OTHER_MAGICS.get(head[:4])
    if kind:
        raise SourceError(name, None, f"{kind} files are not supported; convert with editcap -F pcap")
    raise SourceError(name, None, f"not a pcap or pcapng file (starts with {head[:4].hex()})")
