"""``PacketBatch``: the packets of one read block, as arrays over the block's raw bytes.

Readers (classic pcap, pcapng) produce batches; the decoder consumes them. A batch never copies
packet bytes: ``data_off`` points into ``buf``, which is the block as read from the file followed
by ``PAD`` zero bytes, so that fixed-size gathers a little past a short packet stay in bounds
(the decoder checks captured lengths before trusting what it gathered).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Zero bytes after every block: the largest fixed-size read the decoder makes past a checked
# offset (an 8-byte gather at a header's end, with slack).
PAD = 64

# Timestamp of a packet whose record carries none (pcapng Simple Packet Block).
NO_TIME = np.iinfo(np.int64).min


@dataclass(frozen=True)
class PacketBatch:
    """Packets of one block, in file order."""

    buf: np.ndarray  # uint8: the block's bytes, then PAD zeros
    data_off: np.ndarray  # int64: offset of each packet's first byte in buf
    caplen: np.ndarray  # int64: bytes captured (present in buf)
    origlen: np.ndarray  # int64: length on the wire
    ts_ns: np.ndarray  # int64: unix nanoseconds, NO_TIME when the record has none
    linktype: np.ndarray  # int32: link type of each packet (pcapng: per interface)
    record_no: np.ndarray  # int64: 1-based record number in the file (file order)
    file_pos: np.ndarray  # int64: byte position of the record in the (decompressed) file

    def __len__(self) -> int:
        return len(self.data_off)

    def where(self, i: int) -> str:
        """The place of packet ``i`` for messages: ``record N at byte M``."""
        return f"record {int(self.record_no[i])} at byte {int(self.file_pos[i])}"


def padded(raw: np.ndarray) -> np.ndarray:
    """A copy of ``raw`` followed by PAD zero bytes (for tests and small inputs)."""
    out = np.zeros(len(raw) + PAD, dtype=np.uint8)
    out[: len(raw)] = raw
    return out
