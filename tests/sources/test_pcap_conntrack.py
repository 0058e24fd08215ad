"""Connection tracking: the merge across blocks is exact, and the client side follows the rules
(earliest opening packet, else the answer's receiver, else the port rule with
direction_known false). Captures are generated with scapy and the test writers."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from netpolgen.capture import conntrack
from netpolgen.capture.conntrack import (
    ALL_COLUMNS,
    KEY_COLUMNS,
    MAX_COLUMNS,
    MIN_COLUMNS,
    NEVER,
    SUM_COLUMNS,
    ConnectionTracker,
    merge_tables,
    to_flows,
)
from netpolgen.capture.decode import DecodeCounts, decode
from netpolgen.capture.formats import open_capture
from netpolgen.portrules import dst_is_server
from netpolgen.sources.pcap import PcapSource
from tests.sources.test_pcap_generated import LINKS, Rec, capture_records, write_pcap

ETH = dict(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
T0 = 1_700_000_000_000_000_000


def table_via(path: Path, block_bytes: int, consolidate_rows: int) -> pd.DataFrame:
    tracker = ConnectionTracker(consolidate_rows=consolidate_rows)
    with open(path, "rb") as f:
        for batch in open_capture(f, str(path), block_bytes).batches():
            dec = decode(batch, DecodeCounts())
            tracker.add(dec, batch.ts_ns[dec.index], batch.record_no[dec.index])
    return to_flows(tracker.table(), str(path))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), link=st.sampled_from(sorted(LINKS)), block=st.integers(64, 2000))
def test_merge_is_independent_of_blocks_and_consolidation(tmp_path_factory, data, link, block) -> None:
    """Reading in small blocks and merging after every block gives the same connection table
    as reading everything in one block and merging once: partial aggregates merge exactly,
    also when IPv4-only parts (stored without high address halves) meet IPv6 ones."""
    recs = data.draw(capture_records(link)) + data.draw(capture_records(link))
    path = write_pcap(tmp_path_factory.mktemp("m") / "x.pcap", LINKS[link], recs, nano=True)
    whole = table_via(path, 1 << 24, consolidate_rows=1 << 30)
    pieces = table_via(path, block, consolidate_rows=1)
    pd.testing.assert_frame_equal(pieces, whole)


def tcp(i: int, src: str, sport: int, dst: str, dport: int, flags: str) -> Rec:
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    data = bytes(Ether(**ETH) / ip / TCP(sport=sport, dport=dport, flags=flags))
    return Rec(T0 + i * 1_000_000, data, len(data))


def udp(i: int, src: str, sport: int, dst: str, dport: int) -> Rec:
    data = bytes(Ether(**ETH) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport))
    return Rec(T0 + i * 1_000_000, data, len(data))


def flows(tmp_path: Path, recs: list[Rec]) -> pd.DataFrame:
    return PcapSource(str(write_pcap(tmp_path / "x.pcap", 1, recs))).connections()


def ends(df: pd.DataFrame) -> list[tuple]:
    return [(r.src_ip, r.src_port, r.dst_ip, r.dst_port, bool(r.direction_known)) for r in df.itertuples()]


C, S = "10.0.0.9", "10.0.0.1"  # client's address sorts after the server's: order is not the rule


def test_syn_sender_is_client(tmp_path: Path) -> None:
    df = flows(tmp_path, [tcp(0, C, 40000, S, 8080, "S"), tcp(1, S, 8080, C, 40000, "SA"),
                          tcp(2, C, 40000, S, 8080, "A")])
    assert ends(df) == [(C, 40000, S, 8080, True)]
    assert (df.src_packets[0], df.dst_packets[0]) == (2, 1)


def test_synack_seen_first_is_read_the_other_way(tmp_path: Path) -> None:
    """The SYN-ACK is the first packet (capture reordering): its receiver is the client, and the
    later SYN agrees."""
    df = flows(tmp_path, [tcp(0, S, 8080, C, 40000, "SA"), tcp(1, C, 40000, S, 8080, "S"),
                          tcp(2, C, 40000, S, 8080, "A")])
    assert ends(df) == [(C, 40000, S, 8080, True)]


def test_only_a_synack_names_its_receiver(tmp_path: Path) -> None:
    """The SYN was missed: the SYN-ACK's receiver is the client, even on a high server port."""
    df = flows(tmp_path, [tcp(0, S, 50000, C, 40000, "SA"), tcp(1, C, 40000, S, 50000, "A")])
    assert ends(df) == [(C, 40000, S, 50000, True)]


def test_earliest_opening_wins(tmp_path: Path) -> None:
    """Both sides sent a SYN (simultaneous open, or a port reused the other way): the first one
    in the file decides."""
    df = flows(tmp_path, [tcp(0, S, 8080, C, 40000, "S"), tcp(1, C, 40000, S, 8080, "S")])
    assert ends(df) == [(S, 8080, C, 40000, True)]


def test_no_handshake_uses_the_port_rule(tmp_path: Path) -> None:
    """Mid-stream TCP whose first packet comes from the server: direction unknown, and the port
    rule (shared with every source) makes the low-port side the server."""
    df = flows(tmp_path, [tcp(0, S, 8080, C, 40000, "PA"), tcp(1, C, 40000, S, 8080, "A")])
    assert ends(df) == [(C, 40000, S, 8080, False)]
    assert bool(dst_is_server([40000], [8080])[0])


def test_udp_is_never_known_and_dns_is_served_on_53(tmp_path: Path) -> None:
    """A DNS answer seen before its query (or alone): the 53 side is the server; UDP direction
    is never known."""
    df = flows(tmp_path, [udp(0, S, 53, C, 40000), udp(1, C, 40000, S, 53)])
    assert ends(df) == [(C, 40000, S, 53, False)]


def test_equal_ports_keep_the_first_sender(tmp_path: Path) -> None:
    """Same port both sides (Zeek's q-in-q case): the first packet's sender is the source."""
    df = flows(tmp_path, [udp(0, C, 47808, S, 47808), udp(1, S, 47808, C, 47808)])
    assert ends(df) == [(C, 47808, S, 47808, False)]


def test_ipv4_and_mapped_ipv6_are_different_connections(tmp_path: Path) -> None:
    """10.0.0.1 and ::ffff:10.0.0.1 share their low 32 bits; they must not merge."""
    df = flows(tmp_path, [tcp(0, "10.0.0.2", 40000, "10.0.0.1", 80, "S"),
                          tcp(1, "::ffff:10.0.0.2", 40000, "::ffff:10.0.0.1", 80, "S")])
    assert sorted(df.src_ip) == sorted(["10.0.0.2", str(ipaddress.IPv6Address("::ffff:10.0.0.2"))])


# -- merging partial tables of mixed column widths ---------------------------------------------


@st.composite
def partial_table(draw) -> dict[str, np.ndarray]:
    """A partial connection table as a block or a merge could leave it: distinct keys from a
    small space (so that tables share connections), each value column either narrowed to uint32
    or int64, record keys with their dtype's "never", sums past 2**32 and below zero."""
    v6 = draw(st.booleans())
    keys = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2), st.sampled_from([6, 17])),
                         min_size=1, max_size=12, unique=True))
    n = len(keys)
    a, b, port, proto = (np.array(k, dtype=np.int64) for k in zip(*keys, strict=True))
    t = {"ver": np.full(n, 6 if v6 else 4, np.uint8), "proto": proto.astype(np.uint8),
         "a_lo": (a + (1 << 40 if v6 else 0)).astype(np.uint64), "b_lo": (b + 7).astype(np.uint64),
         "a_port": port.astype(np.uint16), "b_port": (port + 80).astype(np.uint16)}
    if v6:
        t["a_hi"], t["b_hi"] = np.full(n, 1 << 60, np.uint64), np.full(n, 3, np.uint64)
    else:
        t["a_lo"], t["b_lo"] = t["a_lo"].astype(np.uint32), t["b_lo"].astype(np.uint32)
    big = draw(st.booleans())
    for c in SUM_COLUMNS:
        vals = draw(st.lists(st.integers(-5 if big else 0, (1 << 40) if big else 1000), min_size=n, max_size=n))
        t[c] = np.array(vals, np.int64) if big else np.array(vals, np.uint32)
    ts = draw(st.lists(st.integers(1, 10**18), min_size=n, max_size=n))
    t["first_ns"] = np.array(ts, np.int64)
    t["last_ns"] = t["first_ns"] + 5
    wide_keys = draw(st.booleans())
    dt, nv = (np.int64, NEVER) if wide_keys else (np.uint32, (1 << 32) - 1)
    for c in ("first_key", "open_key", "answer_key"):
        vals = draw(st.lists(st.integers(0, (1 << 40) if wide_keys else 1000), min_size=n, max_size=n))
        col = np.array(vals, dt)
        if c != "first_key":
            col[np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))] = nv
        t[c] = col
    return t


def widened(t: dict[str, np.ndarray]) -> pd.DataFrame:
    out = {}
    for c in ALL_COLUMNS:
        v = t.get(c, np.zeros(len(t["ver"]), np.uint64))
        if c in ("first_key", "open_key", "answer_key") and v.dtype == np.uint32:
            v = np.where(v == (1 << 32) - 1, NEVER, v.astype(np.int64))
        out[c] = v.astype(np.uint64 if c in KEY_COLUMNS else np.int64)
    return pd.DataFrame(out)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(partial_table(), min_size=2, max_size=5))
def test_merge_of_mixed_widths_is_a_group_by(parts) -> None:
    """Merging tables whose columns are narrowed differently (uint32 or int64 counts and record
    keys, IPv4 and IPv6 addresses) gives exactly a group-by over the widened rows: sums, mins
    with "never" kept as never, maxes, connections in order of first appearance."""
    assert_merge_is_a_group_by(parts)


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(partial_table(), min_size=2, max_size=5))
def test_merge_is_exact_when_key_hashes_collide(parts) -> None:
    """The merge finds part 0's connections by a hash of the key; with a hash that collides all
    the time (two bits), the result is still exactly the group-by."""
    real = conntrack._key_hash
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conntrack, "_key_hash", lambda t, names: real(t, names) & np.uint64(3))
        assert_merge_is_a_group_by(parts)


def assert_merge_is_a_group_by(parts: list[dict[str, np.ndarray]]) -> None:
    want = (pd.concat([widened(p) for p in parts], ignore_index=True)
            .groupby(list(KEY_COLUMNS), sort=False, as_index=False)
            .agg({**{c: "sum" for c in SUM_COLUMNS}, **{c: "min" for c in MIN_COLUMNS},
                  **{c: "max" for c in MAX_COLUMNS}}))[list(ALL_COLUMNS)]
    got = merge_tables([dict(p) for p in parts])
    for c in SUM_COLUMNS:  # narrowed back when the values allow it
        assert (got[c].dtype == np.uint32) == (want[c].between(0, (1 << 32) - 1).all())
    pd.testing.assert_frame_equal(widened(got), want)


def test_text_columns_hold_one_object_per_distinct_value(tmp_path: Path) -> None:
    """The file name, the verdict and the empty metadata are one str object each, however many
    rows show them (a copy per row would be ~100 MB on a million connections)."""
    recs = [tcp(i, C, 40000 + i, S, 8080, "S") for i in range(5)]
    path = write_pcap(tmp_path / "x.pcap", 1, recs)
    (chunk,) = PcapSource(str(path)).chunks()
    for col in ("source", "verdict", "src_ip", "dst_ip", "proto", "node", "src_labels"):
        assert len({id(v) for v in chunk[col]}) == 1, col
