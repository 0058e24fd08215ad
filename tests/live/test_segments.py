"""Cutting a stream into segments each reader can read as a file: at record boundaries, with
the header a format needs repeated, and places in a segment given as places in the stream."""

from __future__ import annotations

import json

import pytest

from netpolgen.errors import SourceError
from netpolgen.live.accumulate import EdgeAccumulator
from netpolgen.live.run import parse_duration
from netpolgen.live.segments import Segmenter
from netpolgen.sources.base import SourceOptions
from tests.sources.test_calico import record


@pytest.mark.parametrize("text,seconds", [("10s", 10.0), ("2m", 120.0), ("45", 45.0), ("1h", 3600.0),
                                          ("250ms", 0.25), ("1.5s", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_lines_are_cut_after_the_last_complete_line():
    seg = Segmenter("<stdin>", "hubble")
    seg.feed(b'{"a":1}\n{"b":2}\n{"c"')
    first = seg.cut()
    assert first.data == b'{"a":1}\n{"b":2}\n' and first.records == 2 and first.first_record == 0
    assert seg.cut() is None  # half a line waits for the rest
    seg.feed(b":3}\n")
    second = seg.cut()
    assert second.data == b'{"c":3}\n' and second.first_record == 2


def test_a_csv_header_starts_every_segment():
    seg = Segmenter("<stdin>")
    seg.feed(b"src_ip,dst_ip,dst_port,proto\n10.0.0.1,10.0.0.2,80,TCP\n")
    a = seg.cut()
    seg.feed(b"10.0.0.1,10.0.0.3,443,TCP\n")
    b = seg.cut()
    assert seg.fmt == "csv"
    assert a.data.startswith(b"src_ip,dst_ip") and b.data == b"src_ip,dst_ip,dst_port,proto\n10.0.0.1,10.0.0.3,443,TCP\n"
    assert (a.first_record, b.first_record) == (1, 2)  # stream lines 2 and 3, after the header


def test_a_vpc_header_line_is_repeated_and_a_headerless_log_is_not(samples):
    custom = (samples / "aws-vpc-flow-logs" / "custom-v3-tcp-flags.log").read_bytes()
    seg = Segmenter("<stdin>")
    header, _, rest = custom.partition(b"\n")
    seg.feed(header + b"\n" + rest.split(b"\n")[0] + b"\n")
    seg.cut()
    seg.feed(rest.split(b"\n")[1] + b"\n")
    assert seg.fmt == "vpc" and seg.cut().data.startswith(header + b"\n")
    plain = (samples / "aws-vpc-flow-logs" / "default-format-v2.log").read_bytes()
    seg = Segmenter("<stdin>")
    seg.feed(plain)
    assert seg.cut().data == plain


def test_a_pcap_is_cut_at_packet_boundaries_with_the_file_header_repeated():
    from tests.live.helpers import REPO

    data = (REPO / "captures" / "demo.pcap").read_bytes()
    seg = Segmenter("<stdin>")
    seg.feed(data[:5000])
    a = seg.cut()
    seg.feed(data[5000:])
    b = seg.cut(final=True)
    assert a.data[:24] == b.data[:24] == data[:24]
    assert a.data + b.data[24:] == data  # nothing lost, nothing doubled
    assert b.first_record == a.records


def test_a_pcapng_segment_repeats_the_section_and_interface_blocks(samples):
    data = (samples / "pcaps" / "tcpdump" / "nfs-write-verf-cookie.pcapng").read_bytes()
    seg = Segmenter("<stdin>")
    seg.feed(data[: len(data) // 2])
    a = seg.cut()
    seg.feed(data[len(data) // 2:])
    b = seg.cut(final=True)
    assert seg.fmt == "pcap" and a is not None and b is not None
    assert b.data[:4] == b"\x0a\x0d\x0d\x0a"  # starts with a section header block
    assert a.data + b.data[len(b.data) - (len(data) - len(a.data)):] == data


def test_an_error_in_a_later_segment_names_the_line_of_the_stream():
    acc = EdgeAccumulator(None, SourceOptions(strict=True), "<stdin>")
    seg = Segmenter("<stdin>", "calico")
    seg.feed(((json.dumps(record()) + "\n") * 3).encode())
    acc.add(seg.cut(), "calico")
    seg.feed(b"{broken\n")
    with pytest.raises(SourceError) as e:
        acc.add(seg.cut(), "calico")
    assert e.value.line().startswith("<stdin>: line 4: ")


def test_records_out_of_order_fold_into_the_same_edges():
    """Several nodes' streams merged: the same records in another order, and in other segments,
    give the same edges (counts summed, first seen the minimum, last seen the maximum)."""
    recs = [record(start_time=1699375161 + 5 * i, end_time=1699375170 + 5 * i) for i in range(6)]
    recs += [record(dest_port=7071, start_time=1699375100 + i, end_time=1699375101 + i) for i in range(3)]

    def edges(order: list[int], cuts: int):
        acc = EdgeAccumulator(None, SourceOptions(), "<stdin>")
        seg = Segmenter("<stdin>", "calico")
        step = -(-len(order) // cuts)
        for at in range(0, len(order), step):
            seg.feed("".join(json.dumps(recs[i]) + "\n" for i in order[at:at + step]).encode())
            acc.add(seg.cut(), "calico")
        return acc.edges.sort_values(["dst_port"]).reset_index(drop=True)

    in_order = edges(list(range(len(recs))), 1)
    shuffled = edges([8, 3, 0, 5, 7, 1, 4, 6, 2], 4)
    assert len(in_order) == 2
    assert in_order.equals(shuffled)
    assert in_order.loc[0, "first_seen"] == 1699375161 and in_order.loc[0, "last_seen"] == 1699375195


def test_since_and_until_apply_by_record_time():
    recs = [record(start_time=100 * i + 1_700_000_000, end_time=100 * i + 1_700_000_010, dest_port=7000 + i)
            for i in range(5)]
    acc = EdgeAccumulator(None, SourceOptions(since=1_700_000_150, until=1_700_000_310), "<stdin>")
    seg = Segmenter("<stdin>", "calico")
    seg.feed("".join(json.dumps(r) + "\n" for r in reversed(recs)).encode())
    acc.add(seg.cut(), "calico")
    assert sorted(acc.edges["dst_port"]) == [7002, 7003]


def _segmented(path, pieces: int, inventory=None):
    from netpolgen.live.generate import proposal

    data = path.read_bytes()
    acc = EdgeAccumulator(inventory, SourceOptions(), "<stdin>")
    seg = Segmenter("<stdin>")
    step = -(-len(data) // pieces)
    for at in range(0, len(data), step):
        seg.feed(data[at:at + step])
        cut = seg.cut(final=at + step >= len(data))
        if cut is not None:
            acc.add(cut, seg.fmt)
    assert acc.summary.segments > 1
    return proposal(acc, None)


def _edge_keys(edges) -> set:
    return set(edges[["src_workload", "dst_workload", "proto", "dst_port"]].itertuples(index=False, name=None))


def test_hubble_flows_cut_into_many_segments_miss_no_edge_of_the_file(samples):
    """Requests and replies in different segments (the reader's ledger is shared), a peer named
    by identity in one segment and by pod in an earlier one (resolved with every endpoint seen
    so far): every edge of the file is found, and the self-check passes. What still differs
    (a known limit, in the README's Live section): a connection whose records name the node in one segment
    and the pod in another cannot be credited to the pod, so the node may appear as an extra
    client (an ipBlock /32 of a node address, the way the file shows it for other connections)."""
    from netpolgen.pipeline import generate

    path = samples / "hubble-flows" / "basic-sample-400-tcp-flows.json"
    streamed, whole = _segmented(path, 25), generate([str(path)], [])
    assert not streamed.self_check.failed
    assert _edge_keys(whole.edges) <= _edge_keys(streamed.edges)
    node_ips = {w for k, w in zip(whole.edges["src_kind"], whole.edges["src_workload"], strict=True) if k == "node"}
    assert {e[0] for e in _edge_keys(streamed.edges) - _edge_keys(whole.edges)} <= node_ips
    assert int(streamed.edges["connections"].sum()) == int(whole.edges["connections"].sum())


def test_the_demo_capture_cut_into_segments_gives_the_files_policies():
    from netpolgen.inventory import load_inventory
    from netpolgen.pipeline import generate
    from tests.live.helpers import REPO

    path, inv = REPO / "captures" / "demo.pcap", REPO / "captures" / "demo-inventory.json"
    assert _segmented(path, 8, load_inventory([str(inv)])).policies == generate([str(path)], [str(inv)]).policies
