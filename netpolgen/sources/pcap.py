"""The pcap/pcapng source: a capture file → one flow-table row per connection.

Reading, decoding and connection tracking live in ``netpolgen.capture``; this module wires them
to the ``Source`` interface and turns what they counted into ``SourceStats``. The whole file is
read before the first chunk is yielded (a connection's direction and totals are only final at
the end), but memory is bounded by the number of connections, not the size of the capture.
"""

from __future__ import annotations

import zlib
from typing import Iterator

import numpy as np
import pandas as pd

from netpolgen.capture.base import CaptureReader
from netpolgen.capture.batch import NO_TIME
from netpolgen.capture.blocks import DEFAULT_BLOCK_BYTES
from netpolgen.capture.conntrack import NEVER, ConnectionTracker, Table, empty_table, first_seen_order, flow_columns, slices
from netpolgen.capture.conntrack import rows as row_count
from netpolgen.capture.decode import (
    BAD_IP,
    FATE_NAMES,
    FRAGMENT,
    NON_IP,
    OTHER_PROTO,
    SKIPPED_FATES,
    TOO_DEEP,
    TRUNCATED,
    UNKNOWN_ENCAP,
    UNSUPPORTED_LINK,
    DecodeCounts,
    decode,
)
from netpolgen.capture.dnsnames import DnsAnswers
from netpolgen.capture.formats import is_capture, open_capture
from netpolgen.errors import SourceError
from netpolgen.flows import flow_frame, object_frame
from netpolgen.sources.base import Source, SourceOptions, open_binary
from netpolgen.window import TimeWindow

# Fates that make a record malformed: fatal with --strict. (Non-IP, fragments and unknown
# tunnels are legitimate traffic we cannot use, not damage.)
MALFORMED_FATES = (TRUNCATED, BAD_IP)

COUNTER_NAMES = {
    NON_IP: "non_ip",
    UNSUPPORTED_LINK: "unsupported_linktype",
    TRUNCATED: "truncated_headers",
    BAD_IP: "invalid_ip_header",
    FRAGMENT: "fragments_nonfirst",
    OTHER_PROTO: "other_ip_protocol",
    UNKNOWN_ENCAP: "encapsulation_unknown",
    TOO_DEEP: "encapsulation_too_deep",
}


class PcapSource(Source):
    """Classic pcap and pcapng captures (optionally gzipped)."""

    format_name = "pcap"

    def __init__(self, path: str, options: SourceOptions | None = None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        super().__init__(path, options)
        self.block_bytes = block_bytes
        self.dns = DnsAnswers()  # filled while reading: names for the destinations of rows

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return is_capture(head)

    def chunks(self) -> Iterator[pd.DataFrame]:
        # The connection table is cut into chunk-sized slices in first-seen order; each slice
        # is converted (its address text made) only when its chunk is due and dropped once
        # yielded, so the table shrinks as the flow table is handed out.
        pieces = self._slices()
        while pieces:
            piece = pieces.pop()
            cols = self._named(flow_columns(piece, self.path))
            del piece
            yield flow_frame(cols, len(cols["src_ip"]))
            del cols

    def connections(self) -> pd.DataFrame:
        """All connections of the capture as flow rows, with per-direction packet and byte
        counts (``src_packets``, ``dst_packets``, ``src_bytes``, ``dst_bytes``) kept."""
        pieces = self._slices()
        total = sum(row_count(p) for p in pieces)
        out: dict[str, np.ndarray] = {}
        at = 0
        # Converted slice by slice into columns of the final length: the connection table
        # shrinks while the result grows, and no concatenation ever holds the result twice.
        while pieces:
            cols = self._named(flow_columns(pieces.pop(), self.path))
            n = len(cols["src_ip"])
            if not out:
                out = {c: np.empty(total, v.dtype) for c, v in cols.items()}
            for c, v in cols.items():
                out[c][at : at + n] = v
            at += n
            del cols
        return object_frame(out or flow_columns(empty_table(), self.path))

    def _named(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Add ``dst_names``: the names DNS answers in the capture gave each destination."""
        if self.dns.names:
            cols["dst_names"] = self.dns.label(cols["dst_ip"])
        return cols

    def _slices(self) -> list[Table]:
        """The connection table cut into chunk-sized slices, last first (``pop()`` order)."""
        table, order = self._read()
        pieces = slices(table, order, self.options.chunk_size)
        pieces.reverse()
        return pieces

    def _read(self) -> tuple[Table, np.ndarray]:
        """Read the whole capture: the connection table, the rows to report (first-seen order,
        inside the time window), and the stats."""
        tracker = ConnectionTracker()
        counts = DecodeCounts()
        with open_binary(self.path, self.options) as f:
            reader = open_capture(f, self.path, self.block_bytes)
            # Closed before the file is, whatever ends the loop (a read ahead may be in flight).
            batches = reader.batches()
            try:
                for batch in batches:
                    dec = decode(batch, counts)
                    for payload in dec.dns:
                        self.dns.add(payload)
                    if len(dec.index) == len(batch):  # all decoded: index is 0..n-1
                        tracker.add(dec, batch.ts_ns, batch.record_no)
                    else:
                        tracker.add(dec, batch.ts_ns[dec.index], batch.record_no[dec.index])
                    self._see_times(batch.ts_ns)
                    if self.options.strict:
                        self._fail_on_malformed(counts)
                    del batch, dec  # not held while the next batch is awaited
            except (OSError, EOFError, zlib.error) as e:  # unreadable disk or gzip stream
                raise SourceError(self.path, f"byte {reader.bytes_read}", f"cannot read: {e}") from e
            finally:
                batches.close()
        if self.options.strict and reader.truncated:
            raise SourceError(self.path, None, reader.notes[-1].split(": ", 1)[-1])
        table = tracker.table()
        rows = self._window(table, first_seen_order(table))
        self._fill_stats(reader, counts, len(rows))
        return table, rows

    def _see_times(self, ts_ns: np.ndarray) -> None:
        if not len(ts_ns):
            return
        first = ts_ns.min()
        if first == NO_TIME:  # NO_TIME sorts first: some records carry no time
            ts_ns = ts_ns[ts_ns != NO_TIME]
            if not len(ts_ns):
                return
            first = ts_ns.min()
        self.stats.see_time(first / 1e9, ts_ns.max() / 1e9)

    def _fail_on_malformed(self, counts: DecodeCounts) -> None:
        for fate in MALFORMED_FATES:
            if counts.fates.get(fate):
                raise SourceError(self.path, counts.fate_examples.get(fate), FATE_NAMES[fate])

    def _window(self, table: Table, rows: np.ndarray) -> np.ndarray:
        """Keep connections that overlap [since, until] (netpolgen.window's one rule)."""
        window = TimeWindow(self.options.since, self.options.until)
        if window.unbounded:
            return rows
        first = table["first_ns"][rows].astype("float64")
        last = table["last_ns"][rows].astype("float64")
        first[table["first_ns"][rows] == NEVER] = np.nan
        last[table["last_ns"][rows] == NO_TIME] = np.nan
        return rows[window.keep(first / 1e9, last / 1e9)]

    def _fill_stats(self, reader: CaptureReader, counts: DecodeCounts, rows: int) -> None:
        st = self.stats
        st.records = reader.records
        st.bytes_read = reader.bytes_read
        st.connections = rows
        st.truncated = reader.truncated
        st.notes.extend(reader.notes)
        for fate, n in sorted(counts.fates.items()):
            st.count(COUNTER_NAMES[fate], n)
            if fate in SKIPPED_FATES:
                st.skipped.add(FATE_NAMES[fate], counts.fate_examples.get(fate, ""), n)
        for name, n in sorted(counts.tunnels.items()):
            st.count("encapsulated", n)
            st.count(f"encapsulated_{name}", n)
        for proto, n in sorted(counts.other_protos.items()):
            st.count(f"ip_proto_{proto}", n)
        for linktype, n in sorted(counts.unsupported_links.items()):
            st.count(f"linktype_{linktype}", n)
        if counts.icmp:
            st.count("icmp", counts.icmp)
        if self.dns.names:
            st.notes.append(f"{self.path}: {self.dns.answers} DNS answers named "
                            f"{len(self.dns.names)} addresses (kept as dst_names)")
        if self.dns.unparsed:
            st.notes.append(f"{self.path}: {self.dns.unparsed} UDP datagrams from port 53 were not "
                            "DNS messages; ignored")
        if counts.first_fragments:
            st.count("fragments_first", counts.first_fragments)
        if counts.fates.get(FRAGMENT):
            st.notes.append(
                f"{self.path}: {counts.fates[FRAGMENT]} non-first IP fragments could not be attributed "
                "to a connection (they carry no ports); their bytes are not counted"
            )
        if counts.unsupported_links:
            kinds = ", ".join(str(k) for k in sorted(counts.unsupported_links))
            st.notes.append(f"{self.path}: packets of unsupported link type(s) {kinds} were skipped")
