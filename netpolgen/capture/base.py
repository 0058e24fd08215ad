"""What every capture-file reader (classic pcap, pcapng) shares: the stream, the error helper,
and the counts a source reports (records read, bytes consumed, truncation)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import BinaryIO, Generator, Iterator

from netpolgen.capture.batch import PacketBatch
from netpolgen.capture.blocks import DEFAULT_BLOCK_BYTES, BlockFeeder
from netpolgen.errors import SourceError

# Largest captured length a record may claim before the file is read as corrupt: libpcap's
# largest default snapshot length. A bigger claim almost always means garbage where a record
# header should be, and believing it would make the reader buffer gigabytes.
MAX_CAPLEN = 262_144


class CaptureReader(ABC):
    """Yields ``PacketBatch``es of a capture stream whose first bytes (``head``) were read."""

    format_name: str = ""

    def __init__(self, f: BinaryIO, name: str, head: bytes, block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        self._f = f
        self.name = name
        self.head = head
        self.block_bytes = block_bytes
        self.records = 0  # packet records read
        self.bytes_read = 0  # stream bytes consumed by whole records/blocks
        self.truncated = False
        self.notes: list[str] = []
        self.linktypes: set[int] = set()

    def error(self, where: str | None, what: str) -> SourceError:
        return SourceError(self.name, where, what)

    def _truncated_at(self, record_no: int, pos: int, have: int, need: int | None) -> None:
        """The stream ended inside a record: keep what was read, say so."""
        self.truncated = True
        missing = f"{need - have} of its {need} bytes missing" if need else f"only {have} header bytes present"
        self.notes.append(
            f"{self.name}: file ends inside record {record_no} at byte {pos} ({missing}); "
            f"the {record_no - 1} records before it were read"
        )

    def batches(self) -> Generator[PacketBatch, None, None]:
        """Packet batches in file order. Raises SourceError on a corrupt file."""
        feeder = BlockFeeder(self._f, self.block_bytes, start=self.head)
        try:
            yield from self._batches(feeder)
        finally:
            feeder.close()  # a read ahead in flight ends before the caller closes the stream

    @abstractmethod
    def _batches(self, feeder: BlockFeeder) -> Iterator[PacketBatch]:
        """The format's walk over the blocks ``feeder`` hands out."""
