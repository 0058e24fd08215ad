"""Bad input, the Source contract and the stats, for the pcap source.

Bad input is one SourceError naming the file, the place and what is wrong (the CLI prints it as
one line); a capture cut short keeps what was read. Files are built byte by byte here.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pandas as pd
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from netpolgen.errors import SourceError
from netpolgen.flows import FLOW_COLUMNS, normalize_flows
from netpolgen.sources import detect_format
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.pcap import PcapSource
from tests.sources.test_pcap_generated import Rec, write_pcap, write_pcapng

T0 = 1_700_000_000_000_000_000
ETH = dict(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")


def tcp(i: int, flags: str = "S", sport: int = 40000, ts: int | None = None) -> Rec:
    data = bytes(Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=sport + i, dport=80, flags=flags))
    return Rec(T0 + i * 1_000_000 if ts is None else ts, data, len(data))


def error_of(path: Path, **opts) -> SourceError:
    with pytest.raises(SourceError) as e:
        PcapSource(str(path), SourceOptions(**opts)).connections()
    return e.value


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist: 'no such file', naming it."""
    err = error_of(tmp_path / "nope.pcap")
    assert err.line() == f"{tmp_path / 'nope.pcap'}: no such file"


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.pcap").write_bytes(b"")
    assert error_of(tmp_path / "e.pcap").what == "empty file"


def test_not_a_capture(tmp_path: Path) -> None:
    """Text is refused by content (the name says .pcap), with its first bytes in the message."""
    p = tmp_path / "x.pcap"
    p.write_text("hello, world\n")
    err = error_of(p)
    assert err.file == str(p) and "not a pcap or pcapng file" in err.what and "68656c6c" in err.what


def test_truncated_file_header(tmp_path: Path) -> None:
    p = tmp_path / "x.pcap"
    p.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x02\x00\x04\x00" + b"\x00" * 6)
    err = error_of(p)
    assert (err.where, err.what) == ("file header", "truncated: 14 of 24 bytes")


def test_corrupt_record_length_names_record_and_byte(tmp_path: Path) -> None:
    """Record 3 claims 2 GB: an error at record 3 and its byte offset, not a memory blow-up."""
    recs = [tcp(i) for i in range(5)]
    raw = bytearray(write_pcap(tmp_path / "x.pcap", 1, recs).read_bytes())
    at = 24 + 2 * (16 + len(recs[0].data))
    raw[at + 8 : at + 12] = struct.pack("<I", 0x7FFFFFFF)
    (tmp_path / "x.pcap").write_bytes(bytes(raw))
    err = error_of(tmp_path / "x.pcap")
    assert err.where == f"record 3 at byte {at}"
    assert "captured length 2147483647" in err.what


def test_corrupt_record_length_inside_a_block(tmp_path: Path) -> None:
    """A moderately wrong length (1 MB) that still fits the read block is caught as well."""
    recs = [tcp(i) for i in range(3)] + [Rec(T0, b"\0" * 1_100_000, 1_100_000)]
    raw = bytearray(write_pcap(tmp_path / "x.pcap", 1, recs).read_bytes())
    at = 24 + (16 + len(recs[0].data))
    raw[at + 8 : at + 12] = struct.pack("<I", 1_000_000)
    (tmp_path / "x.pcap").write_bytes(bytes(raw))
    err = error_of(tmp_path / "x.pcap")
    assert err.where == f"record 2 at byte {at}"


def test_pcapng_bad_block_length(tmp_path: Path) -> None:
    raw = bytearray(write_pcapng(tmp_path / "x.pcapng", [(1, 6)], [tcp(0), tcp(1)]).read_bytes())
    shb = struct.unpack_from("<I", raw, 4)[0]
    idb = struct.unpack_from("<I", raw, shb + 4)[0]
    at = shb + idb
    raw[at + 4 : at + 8] = struct.pack("<I", 13)  # not a multiple of 4
    (tmp_path / "x.pcapng").write_bytes(bytes(raw))
    err = error_of(tmp_path / "x.pcapng")
    assert err.where == f"block at byte {at} (after record 0)" and "bad block length 13" in err.what


def test_pcapng_bad_block_length_says_how_many_packets_came_before(tmp_path: Path) -> None:
    raw = bytearray(write_pcapng(tmp_path / "x.pcapng", [(1, 6)], [tcp(0), tcp(1), tcp(2)]).read_bytes())
    at = 0
    for _ in range(3):  # SHB, IDB, the first packet
        at += struct.unpack_from("<I", raw, at + 4)[0]
    raw[at + 4 : at + 8] = struct.pack("<I", 13)
    (tmp_path / "x.pcapng").write_bytes(bytes(raw))
    err = error_of(tmp_path / "x.pcapng")
    assert err.where == f"block at byte {at} (after record 1)"


def test_pcapng_bad_byte_order_magic(tmp_path: Path) -> None:
    raw = bytearray(write_pcapng(tmp_path / "x.pcapng", [(1, 6)], [tcp(0)]).read_bytes())
    raw[8:12] = b"\x01\x02\x03\x04"
    (tmp_path / "x.pcapng").write_bytes(bytes(raw))
    err = error_of(tmp_path / "x.pcapng")
    assert err.where == "section header at byte 0" and "byte-order magic 01020304" in err.what


def test_pcapng_packet_on_undescribed_interface(tmp_path: Path) -> None:
    r = tcp(0)
    p = write_pcapng(tmp_path / "x.pcapng", [(1, 6)], [Rec(r.ts_ns, r.data, r.origlen, iface=0)])
    raw = bytearray(p.read_bytes())
    shb = struct.unpack_from("<I", raw, 4)[0]
    at = shb + struct.unpack_from("<I", raw, shb + 4)[0]
    raw[at + 8 : at + 12] = struct.pack("<I", 3)
    p.write_bytes(bytes(raw))
    err = error_of(p)
    assert err.where == f"record 1 at byte {at}" and "interface 3, but 1 interfaces" in err.what


def test_truncated_capture_is_not_an_error_but_is_strict(tmp_path: Path) -> None:
    """Cut mid-record: rows for the whole records, stats.truncated and a note; --strict makes
    the same file an error naming the record."""
    recs = [tcp(i) for i in range(4)]
    raw = write_pcap(tmp_path / "x.pcap", 1, recs).read_bytes()
    (tmp_path / "x.pcap").write_bytes(raw[:-5])
    src = PcapSource(str(tmp_path / "x.pcap"))
    assert len(src.connections()) == 3 and src.stats.truncated and src.stats.records == 3
    (note,) = src.stats.notes
    assert "record 4 at byte" in note and "5 of its" in note
    err = error_of(tmp_path / "x.pcap", strict=True)
    assert "file ends inside record 4" in err.what


def test_strict_rejects_headers_cut_short(tmp_path: Path) -> None:
    """A record whose TCP header was cut by the snaplen is skipped and counted (with its place);
    with --strict it is the error."""
    good, cut = tcp(0), tcp(1)
    recs = [good, Rec(cut.ts_ns, cut.data[:40], cut.origlen)]
    p = write_pcap(tmp_path / "x.pcap", 1, recs)
    src = PcapSource(str(p))
    assert len(src.connections()) == 1
    assert src.stats.counters["truncated_headers"] == 1
    at = 24 + 16 + len(good.data)
    assert src.stats.skipped.examples == [f"record 2 at byte {at}: headers cut short by the capture"]
    err = error_of(p, strict=True)
    assert err.where == f"record 2 at byte {at}" and err.what == "headers cut short by the capture"


def test_gzip_is_transparent_and_corrupt_gzip_is_an_error(tmp_path: Path) -> None:
    """A gzipped capture gives the same rows as the plain one; a damaged gzip stream is one
    SourceError, not a traceback."""
    recs = [tcp(i, "S") for i in range(3)] + [tcp(i, "SA") for i in range(3)]
    plain = write_pcap(tmp_path / "x.pcap", 1, recs)
    gz = tmp_path / "x.pcap.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a = PcapSource(str(plain)).connections().drop(columns="source")
    b = PcapSource(str(gz)).connections().drop(columns="source")
    pd.testing.assert_frame_equal(a, b)
    bad = tmp_path / "bad.pcap.gz"
    data = gzip.compress(plain.read_bytes() * 50)
    bad.write_bytes(data[: len(data) // 2] + b"\xff" * 64 + data[len(data) // 2 :])
    err = error_of(bad)
    assert err.file == str(bad) and "cannot read" in err.what


@pytest.mark.parametrize("head,expected", [
    (b"\xd4\xc3\xb2\xa1", True), (b"\xa1\xb2\xc3\xd4", True),  # microseconds, both byte orders
    (b"\x4d\x3c\xb2\xa1", True), (b"\xa1\xb2\x3c\x4d", True),  # nanoseconds
    (b"\x0a\x0d\x0d\x0a", True),  # pcapng
    (b"\x34\xcd\xb2\xa1", False), (b"{\"flow\"", False), (b"", False), (b"\x1f\x8b\x08\x00", False),
])
def test_sniff(head: bytes, expected: bool) -> None:
    """Content decides: the four pcap magics and the pcapng section header, nothing else."""
    assert PcapSource.sniff(head + b"\0" * 20) is expected


def test_detect_format_by_content(tmp_path: Path) -> None:
    """Registered as 'pcap': detection finds it by content, also under a misleading name."""
    p = write_pcapng(tmp_path / "capture.json", [(1, 6)], [tcp(0)])
    assert detect_format(str(p)) == "pcap"


def test_chunks_follow_the_schema_and_chunk_size(tmp_path: Path) -> None:
    """chunks() yields schema-exact tables of at most chunk_size rows that together are the
    connection table."""
    recs = [tcp(i) for i in range(7)]
    p = write_pcap(tmp_path / "x.pcap", 1, recs)
    src = PcapSource(str(p), SourceOptions(chunk_size=3))
    chunks = list(src.chunks())
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert all(list(c.columns) == list(FLOW_COLUMNS) for c in chunks)
    whole = normalize_flows(PcapSource(str(p)).connections())
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert set(whole.verdict) == {"unknown"} and set(whole.source) == {str(p)}
    assert (whole.connections == 1).all()


def test_stats(tmp_path: Path) -> None:
    """records, bytes read, connections, first/last seen and the fragment counters are filled."""
    frag_first = bytes(Ether(**ETH) / IP(src="10.0.0.3", dst="10.0.0.4", flags="MF") / UDP(sport=5000, dport=53))
    frag_later = bytes(Ether(**ETH) / IP(src="10.0.0.3", dst="10.0.0.4", frag=100, proto=17) / (b"z" * 20))
    recs = [tcp(0, ts=T0), tcp(1, ts=T0 + 5_000_000_000), Rec(T0 + 1, frag_first, len(frag_first)),
            Rec(T0 + 2, frag_later, len(frag_later))]
    p = write_pcap(tmp_path / "x.pcap", 1, recs)
    src = PcapSource(str(p))
    df = src.connections()
    st = src.stats
    assert st.records == 4 and st.connections == len(df) == 3 and st.bytes_read == p.stat().st_size
    assert st.first_seen == T0 / 1e9 and st.last_seen == (T0 + 5_000_000_000) / 1e9
    assert st.counters["fragments_first"] == 1 and st.counters["fragments_nonfirst"] == 1
    assert st.skipped.counts == {"non-first IP fragment (no ports; not attributable)": 1}
    assert any("non-first IP fragments" in n for n in st.notes)


def test_time_window(tmp_path: Path) -> None:
    """since/until keep the connections that overlap the window."""
    recs = [tcp(0, ts=T0), tcp(1, ts=T0 + 10 * 10**9), tcp(2, ts=T0 + 20 * 10**9)]
    p = write_pcap(tmp_path / "x.pcap", 1, recs)
    opts = SourceOptions(since=T0 / 1e9 + 5, until=T0 / 1e9 + 15)
    df = PcapSource(str(p), opts).connections()
    assert list(df.src_port) == [40001]
