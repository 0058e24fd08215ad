"""Packets → connections keyed by the unordered 5-tuple, with the client side worked out.

Each block of decoded packets is reduced to a partial table (one row per connection seen in the
block); partial tables are merged by the same reduction, so the result does not depend on where
the blocks were cut, and memory grows with connections, not packets. Everything a row holds is
a sum, a min or a max, which is what makes the merge exact.

Sides are canonical: ``a`` is the smaller (address, port) of the two, ``b`` the larger. Who the
client is comes last, from what the row saw (in this order of trust):
1. the earliest *opening* packet (TCP SYN without ACK, SCTP INIT, ICMP echo request): its
   sender is the client;
2. else the earliest *answer* (SYN-ACK, INIT-ACK, echo reply): its receiver is the client
   (a capture that starts mid-handshake, or reorders it);
3. else nothing certain: ``direction_known`` is false, the first packet's sender is taken as
   source and ``netpolgen.sources.portrules`` decides which side is the server (UDP always ends
   here). "Earliest" is file order: pcapng SPBs have no time, and file order is what was seen.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

from netpolgen.capture.batch import NO_TIME
from netpolgen.capture.decode import HS_NONE, HS_OPEN, Decoded
from netpolgen.capture.grouping import first_rows, group_ids
from netpolgen.flows import IP_PROTO_NAMES, VERDICT_UNKNOWN
from netpolgen.sources.portrules import dst_is_server

NEVER = np.iinfo(np.int64).max  # "not seen" for the min-reduced columns

KEY_COLUMNS = ("ver", "proto", "a_hi", "a_lo", "b_hi", "b_lo", "a_port", "b_port")
SUM_COLUMNS = ("pkts_ab", "pkts_ba", "bytes_ab", "bytes_ba")
# first_key = 2 * record number of the first packet + (1 if it went b -> a): its min says both
# when and which way the connection was first seen.
MIN_COLUMNS = ("first_ns", "first_key", "open_ab", "open_ba", "answer_ab", "answer_ba")
MAX_COLUMNS = ("last_ns",)
ALL_COLUMNS = KEY_COLUMNS + SUM_COLUMNS + MIN_COLUMNS + MAX_COLUMNS

Table = dict[str, np.ndarray]


class ConnectionTracker:
    """Accumulates decoded packet blocks into one connection table."""

    def __init__(self, consolidate_rows: int = 1_000_000) -> None:
        self.consolidate_rows = consolidate_rows
        self._parts: list[Table] = []
        self._pending = 0  # rows in parts not merged yet
        self._merged_rows = 0

    def add(self, dec: Decoded, ts_ns: np.ndarray, record_no: np.ndarray) -> None:
        """Fold one block's decoded packets in (``ts_ns``/``record_no`` aligned with ``dec``)."""
        if not len(dec.index):
            return
        part = reduce_packets(dec, ts_ns, record_no)
        self._parts.append(part)
        self._pending += len(part["ver"])
        # Merge when the unmerged rows outgrow the merged table: amortised linear work, and
        # memory stays a small multiple of the number of connections.
        if self._pending > max(self.consolidate_rows, self._merged_rows):
            self._consolidate()

    def _consolidate(self) -> None:
        merged = merge_tables(self._parts)
        self._parts = [merged]
        self._merged_rows = len(merged["ver"])
        self._pending = 0

    def table(self) -> Table:
        """The connection table so far (one row per unordered 5-tuple)."""
        if len(self._parts) != 1:
            self._consolidate()
        return self._parts[0] if self._parts else empty_table()


def empty_table() -> Table:
    dtypes = {"ver": np.uint8, "proto": np.uint8, "a_hi": np.uint64, "a_lo": np.uint64,
              "b_hi": np.uint64, "b_lo": np.uint64}
    return {c: np.zeros(0, dtypes.get(c, np.int64)) for c in ALL_COLUMNS}


def reduce_packets(dec: Decoded, ts_ns: np.ndarray, record_no: np.ndarray) -> Table:
    """One row per connection among these packets (which are in file order)."""
    v4_only = not dec.src_hi.any() and not dec.dst_hi.any()
    if v4_only:  # the common case: the high address halves are all zero, skip them
        fwd = (dec.src_lo < dec.dst_lo) | ((dec.src_lo == dec.dst_lo) & (dec.sport <= dec.dport))
        a_hi = b_hi = np.zeros(len(fwd), np.uint64)
    else:
        fwd = _a_to_b(dec.src_hi, dec.src_lo, dec.sport, dec.dst_hi, dec.dst_lo, dec.dport)
        a_hi = np.where(fwd, dec.src_hi, dec.dst_hi)
        b_hi = np.where(fwd, dec.dst_hi, dec.src_hi)
    a_lo = np.where(fwd, dec.src_lo, dec.dst_lo)
    b_lo = np.where(fwd, dec.dst_lo, dec.src_lo)
    a_port = np.where(fwd, dec.sport, dec.dport)
    b_port = np.where(fwd, dec.dport, dec.sport)
    # ver (4/6) is implied by the addresses except for IPv4 vs IPv4-compatible IPv6: keep it.
    proto_ver = dec.proto.astype(np.uint64) << np.uint64(1) | (dec.ver == 6)
    codes, n = group_ids([a_lo, b_lo, a_hi, b_hi, a_port, b_port, proto_ver])
    first = first_rows(codes, n)
    t: Table = {
        "ver": dec.ver[first], "proto": dec.proto[first],
        "a_hi": a_hi[first], "a_lo": a_lo[first], "b_hi": b_hi[first], "b_lo": b_lo[first],
        "a_port": a_port[first], "b_port": b_port[first],
    }
    rev = ~fwd
    # Per direction in one pass: slot 2*code for a->b, 2*code+1 for b->a.
    slot = codes * 2 + rev
    pkts = np.bincount(slot, minlength=2 * n).astype(np.int64)
    t["pkts_ab"], t["pkts_ba"] = pkts[0::2], pkts[1::2]
    nbytes = _sum_at(slot, dec.length, 2 * n)
    t["bytes_ab"], t["bytes_ba"] = nbytes[0::2], nbytes[1::2]
    timed = ts_ns != NO_TIME
    t["first_ns"] = _min_at(codes, ts_ns, n) if timed.all() else _min_at(codes[timed], ts_ns[timed], n)
    last = np.full(n, NO_TIME, np.int64)
    np.maximum.at(last, codes, ts_ns)
    t["last_ns"] = last
    t["first_key"] = record_no[first] * 2 + rev[first]
    # Handshake marks are few: one min over the marked packets, slot = 4*code + 2*(mark-1) + rev.
    marked = np.flatnonzero(dec.hs != HS_NONE)
    hs_slot = codes[marked] * 4 + (dec.hs[marked].astype(np.int64) - HS_OPEN) * 2 + rev[marked]
    first_mark = _min_at(hs_slot, record_no[marked], 4 * n)
    t["open_ab"], t["open_ba"] = first_mark[0::4], first_mark[1::4]
    t["answer_ab"], t["answer_ba"] = first_mark[2::4], first_mark[3::4]
    return t


def merge_tables(parts: list[Table]) -> Table:
    """Partial tables (in file order) → one table, one row per connection."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return empty_table()
    cat = {c: np.concatenate([p[c] for p in parts]) for c in ALL_COLUMNS}
    proto_ver = cat["proto"].astype(np.uint64) << np.uint64(1) | (cat["ver"] == 6)
    codes, n = group_ids([cat["a_lo"], cat["b_lo"], cat["a_hi"], cat["b_hi"],
                          cat["a_port"], cat["b_port"], proto_ver])
    first = first_rows(codes, n)
    out: Table = {c: cat[c][first] for c in KEY_COLUMNS}
    for c in SUM_COLUMNS:
        out[c] = _sum_at(codes, cat[c], n)
    for c in MIN_COLUMNS:
        out[c] = _min_at(codes, cat[c], n)
    for c in MAX_COLUMNS:
        m = np.full(n, NO_TIME, np.int64)
        np.maximum.at(m, codes, cat[c])
        out[c] = m
    return out


def _a_to_b(s_hi, s_lo, s_port, d_hi, d_lo, d_port) -> np.ndarray:
    """True where the packet goes from the smaller (address, port) to the larger (or equal)."""
    return (s_hi < d_hi) | ((s_hi == d_hi) & ((s_lo < d_lo) | ((s_lo == d_lo) & (s_port <= d_port))))


def _sum_at(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.int64)
    np.add.at(out, codes, values)
    return out


def _min_at(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, NEVER, np.int64)
    np.minimum.at(out, codes, values)
    return out


# -- the flow table ---------------------------------------------------------------------------


def to_flows(t: Table, source: str) -> pd.DataFrame:
    """Connection table → flow-table rows (src = client), in order of first appearance, with
    per-direction counts (src_packets, dst_packets, src_bytes, dst_bytes) as extra columns."""
    order = np.argsort(t["first_key"], kind="stable")
    t = {c: v[order] for c, v in t.items()}
    opened = np.minimum(t["open_ab"], t["open_ba"]) < NEVER
    answered = np.minimum(t["answer_ab"], t["answer_ba"]) < NEVER
    first_from_a = (t["first_key"] & 1) == 0
    # Provisional: the first packet's sender, swapped when the port rule says it is the server.
    sp = np.where(first_from_a, t["a_port"], t["b_port"])
    dp = np.where(first_from_a, t["b_port"], t["a_port"])
    provisional_a = first_from_a == dst_is_server(sp, dp)
    client_a = np.where(opened, t["open_ab"] <= t["open_ba"],
                        np.where(answered, t["answer_ba"] <= t["answer_ab"], provisional_a))

    a_text = addresses_text(t["ver"], t["a_hi"], t["a_lo"])
    b_text = addresses_text(t["ver"], t["b_hi"], t["b_lo"])
    first_ns, last_ns = t["first_ns"], t["last_ns"]
    n = len(order)
    text = lambda values: pd.Series(values, dtype=object)  # noqa: E731 - plain str objects, no inference
    df = pd.DataFrame({
        "src_ip": text(np.where(client_a, a_text, b_text)),
        "dst_ip": text(np.where(client_a, b_text, a_text)),
        "src_port": np.where(client_a, t["a_port"], t["b_port"]).astype(np.int32),
        "dst_port": np.where(client_a, t["b_port"], t["a_port"]).astype(np.int32),
        "proto": text(proto_names(t["proto"])),
        "packets": t["pkts_ab"] + t["pkts_ba"],
        "bytes": t["bytes_ab"] + t["bytes_ba"],
        "connections": np.ones(n, np.int64),
        "first_seen": np.where(first_ns == NEVER, np.nan, first_ns / 1e9),
        "last_seen": np.where(last_ns == NO_TIME, np.nan, last_ns / 1e9),
        "direction_known": opened | answered,
        "verdict": text(np.full(n, VERDICT_UNKNOWN, dtype=object)),
        "source": text(np.full(n, source, dtype=object)),
        "src_packets": np.where(client_a, t["pkts_ab"], t["pkts_ba"]),
        "dst_packets": np.where(client_a, t["pkts_ba"], t["pkts_ab"]),
        "src_bytes": np.where(client_a, t["bytes_ab"], t["bytes_ba"]),
        "dst_bytes": np.where(client_a, t["bytes_ba"], t["bytes_ab"]),
    })
    return df


def addresses_text(ver: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Canonical ``ipaddress`` text per row; each distinct address is formatted once."""
    if not len(ver):
        return np.empty(0, object)
    codes, n = group_ids([lo, hi, ver])
    first = first_rows(codes, n)
    texts = np.empty(n, object)
    for k, (v, h, l) in enumerate(zip(ver[first].tolist(), hi[first].tolist(), lo[first].tolist())):
        texts[k] = str(ipaddress.IPv4Address(l) if v == 4 else ipaddress.IPv6Address((h << 64) | l))
    return texts[codes]


def proto_names(proto: np.ndarray) -> np.ndarray:
    names = np.empty(256, object)
    for p in range(256):
        names[p] = IP_PROTO_NAMES.get(p, f"IP/{p}")
    return names[proto.astype(np.int64)]
