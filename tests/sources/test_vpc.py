"""VpcFlowLogSource: the AWS documentation's examples in all four formats, and the rules for
headers, tcp-flags, pkt-*addr, NODATA/SKIPDATA and bad records.

Expected values are derived in the tests from the sample text itself (``str.split`` of each
record, independent of pandas), or stated from the AWS documentation's explanation of each
example (flow-logs-records-examples.md, beside the samples).
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from netpolgen.errors import SourceError
from netpolgen.flows import FLOW_COLUMNS, concat_flows
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.vpc import DEFAULT_V2_FIELDS, VpcFlowLogSource


def read(path: Path | str, **options):
    src = VpcFlowLogSource(str(path), SourceOptions(**options))
    return src, concat_flows(src.chunks())


def records(path: Path) -> list[dict[str, str]]:
    """The sample's records as dicts, by plain splitting (the header is line 1)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    names = lines[0].split()
    return [dict(zip(names, line.split(), strict=False)) for line in lines[1:]]


def test_tcp_flags_sample_three_connections_with_both_directions_summed(samples):
    """AWS: two connections (43416, 43418) opened with SYN (2) answered by SYN-ACK (18), 43418
    closed in the next interval (FIN 1 both ways), and a short one (43638) with SYN+FIN (3) and
    SYN-ACK+FIN (19). Three connections, client 52.213.180.42 to 10.0.0.62:5001; each row's
    packets and bytes are the sum of all its records in both directions."""
    path = samples / "aws-vpc-flow-logs" / "custom-v3-tcp-flags.log"
    src, df = read(path)
    recs = records(path)
    assert src.stats.records == len(recs) == 8
    assert len(df) == 3 and int(df["connections"].sum()) == 3
    assert df["direction_known"].all()
    assert set(zip(df["src_ip"], df["dst_ip"], df["dst_port"], strict=True)) == {("52.213.180.42", "10.0.0.62", 5001)}
    assert sorted(df["src_port"]) == [43416, 43418, 43638]
    for r in df.itertuples():
        mine = [x for x in recs if r.src_port in (int(x["srcport"]), int(x["dstport"]))]
        assert r.packets == sum(int(x["packets"]) for x in mine)
        assert r.bytes == sum(int(x["bytes"]) for x in mine)
        assert r.first_seen == min(int(x["start"]) for x in mine)
        assert r.last_seen == max(int(x["end"]) for x in mine)
    assert set(df["node"]) == {"eni-1235b8ca123456789"}


def test_transit_gateway_sample_uses_packet_addresses(samples):
    """AWS: four records of one request/response seen on the server's ENI and two transit
    gateway ENIs, whose srcaddr/dstaddr are the gateway's; pkt-srcaddr/pkt-dstaddr name the real
    client 10.20.33.164 and server 10.40.2.236:80. One connection."""
    src, df = read(samples / "aws-vpc-flow-logs" / "custom-v3-transit-gateway.log")
    assert src.stats.records == 4
    assert len(df) == 1
    r = df.iloc[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.proto) == ("10.20.33.164", 39812, "10.40.2.236", 80, "TCP")
    assert r.direction_known and r.connections == 1


def test_v5_sample_flags_pick_the_client_whatever_the_flow_direction(samples):
    """AWS: an instance calls S3. The ingress record is the server's (19), the egress one the
    client's (3): one connection 10.0.0.71:34210 → 52.95.128.179:80."""
    path = samples / "aws-vpc-flow-logs" / "custom-v5-service-traffic-path.log"
    _, df = read(path)
    assert len(df) == 1
    r = df.iloc[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port) == ("10.0.0.71", 34210, "52.95.128.179", 80)
    assert r.direction_known
    assert r.packets == sum(int(x["packets"]) for x in records(path))


def test_default_v2_sample(samples):
    """7 records: SSH accepted, RDP rejected, NODATA and SKIPDATA (skipped, counted, lines 4
    and 5), a ping accepted with its reply rejected by the NACL, an IPv6 SSH flow. No tcp-flags
    in v2: every row's direction is the port rule's."""
    path = samples / "aws-vpc-flow-logs" / "default-format-v2.log"
    src, df = read(path)
    assert src.stats.records == 7
    assert src.stats.skipped.counts == {
        "NODATA record (no traffic in the interval)": 1,
        "SKIPDATA record (records AWS could not capture)": 1,
    }
    assert [e.split(": ")[1] for e in src.stats.skipped.examples] == ["line 4", "line 5"]
    assert not df["direction_known"].any()
    rows = {(r.src_ip, r.dst_ip, r.dst_port, r.proto, r.verdict) for r in df.itertuples()}
    assert rows == {
        ("172.31.16.139", "172.31.16.21", 22, "TCP", "allowed"),
        ("172.31.9.69", "172.31.9.12", 3389, "TCP", "denied"),
        # ICMP has no ports: each row keeps its first record's order. The rejected reply has
        # another verdict, so it is its own (denied, reported) row, as the log states it.
        ("203.0.113.12", "172.31.16.139", 0, "ICMP", "allowed"),
        ("172.31.16.139", "203.0.113.12", 0, "ICMP", "denied"),
        ("2001:db8:1234:a100:8d6e:3477:df66:f105", "2001:db8:1234:a102:3304:8879:34cf:4071", 22, "TCP", "allowed"),
    }
    _, again = read(path, include_dropped=True)
    assert set(again["verdict"]) == {"allowed"}


def test_default_format_without_header_line(samples, tmp_path):
    """Real S3 files of the default format have no header: same result without line 1."""
    path = samples / "aws-vpc-flow-logs" / "default-format-v2.log"
    bare = tmp_path / "bare.log"
    bare.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    _, expected = read(path)
    src, df = read(bare)
    cols = [c for c in df.columns if c != "source"]
    assert df[cols].equals(expected[cols])
    assert [e.split(": ")[1] for e in src.stats.skipped.examples] == ["line 3", "line 4"]


def test_any_field_order_reads_the_same(samples, tmp_path):
    """A custom format is defined by its header: shuffling the fields changes nothing."""
    path = samples / "aws-vpc-flow-logs" / "custom-v3-tcp-flags.log"
    recs = records(path)
    names = list(recs[0])
    random.Random(6).shuffle(names)
    shuffled = tmp_path / "shuffled.log"
    shuffled.write_text(" ".join(names) + "\n" + "\n".join(" ".join(r[n] for n in names) for r in recs) + "\n")
    athena = tmp_path / "athena.log"  # Athena/${field} spellings of the header
    athena.write_text(" ".join("${" + n.replace("-", "_") + "}" for n in names) + "\n"
                      + "\n".join(" ".join(r[n] for n in names) for r in recs) + "\n")
    _, expected = read(path)
    cols = [c for c in expected.columns if c != "source"]
    for p in (shuffled, athena):
        _, df = read(p)
        key = ["src_port"]
        assert df.sort_values(key)[cols].reset_index(drop=True).equals(expected.sort_values(key)[cols].reset_index(drop=True))


@pytest.mark.parametrize("flags, client", [(2, "a"), (3, "a"), (18, "b"), (19, "b"), (1, None), (0, None), (4, None)])
def test_tcp_flags_rule(tmp_path, flags, client):
    """SYN without ACK marks the record's source as client, SYN with ACK its destination; other
    flags say nothing (the port rule decides: here the low port 80 is the server)."""
    path = tmp_path / "f.log"
    path.write_text("version srcaddr dstaddr srcport dstport protocol tcp-flags action log-status\n"
                    f"3 10.0.0.1 10.0.0.2 80 40000 6 {flags} ACCEPT OK\n")
    _, df = read(path)
    r = df.iloc[0]
    if client is None:
        assert not r.direction_known and (r.src_ip, r.dst_port) == ("10.0.0.2", 80)
    else:
        assert r.direction_known and r.src_ip == {"a": "10.0.0.1", "b": "10.0.0.2"}[client]


def test_connection_spanning_chunks_counts_once_and_keeps_its_client(samples, tmp_path):
    """With one record per chunk, the 43418 connection's FIN-only records (next interval) still
    join the SYN-established connection: 3 connections, all known."""
    path = samples / "aws-vpc-flow-logs" / "custom-v3-tcp-flags.log"
    src = VpcFlowLogSource(str(path), SourceOptions(chunk_size=1))
    parts = list(src.chunks())
    assert all(len(p) <= 1 for p in parts)
    df = concat_flows(parts)
    assert int(df["connections"].sum()) == 3
    assert df["direction_known"].all()
    assert set(df["src_ip"]) == {"52.213.180.42"}


def test_bad_records_are_counted_with_line_numbers(tmp_path):
    """Too many or too few fields, bad addresses, ports, protocols and actions: skipped with
    their line; --strict stops at the first."""
    good = "2 123 eni-1 10.0.0.1 10.0.0.2 40000 80 6 1 60 10 20 ACCEPT OK"
    lines = [
        " ".join(DEFAULT_V2_FIELDS),  # 1
        good,  # 2
        "",  # 3 blank
        good + " extra",  # 4
        good.rsplit(" ", 1)[0],  # 5 (log-status missing)
        good.replace("10.0.0.2", "10.0.0.x"),  # 6
        good.replace("40000", "4000x"),  # 7
        good.replace(" 6 1 ", " 300 1 "),  # 8
        good.replace("ACCEPT", "MAYBE"),  # 9
        good.replace("40000", "40001"),  # 10
    ]
    path = tmp_path / "bad.log"
    path.write_text("\n".join(lines) + "\n")
    src, df = read(path)
    assert len(df) == 2 and src.stats.records == 8  # lines 2 and 4-10
    assert src.stats.skipped.counts == {
        "too many fields": 1, "too few fields": 1, "invalid IP address": 1, "invalid port": 1,
        "invalid protocol number": 1, "action is neither ACCEPT nor REJECT": 1,
    }
    places = sorted(int(e.split(": line ")[1].split(":")[0]) for e in src.stats.skipped.examples)
    assert places == [4, 5, 6, 7, 8, 9]
    with pytest.raises(SourceError) as e:
        read(path, strict=True)
    assert e.value.where == "line 4"


@pytest.mark.parametrize("text, where", [
    ("version srcaddr dstaddr action\n2 10.0.0.1 10.0.0.2 ACCEPT\n", "line 1"),  # no ports
    ("2 123 eni-1 10.0.0.1 10.0.0.2 40000 80 6 1 60 10 20 ACCEPT\n", "line 1"),  # v2 needs 14 fields
    ("apiVersion: v1\nkind: List\n", "line 1"),
])
def test_not_a_vpc_flow_log(tmp_path, text, where):
    """A file that is not a readable VPC flow log: SourceError with the file and line."""
    path = tmp_path / "x.log"
    path.write_text(text)
    with pytest.raises(SourceError) as e:
        read(path)
    assert (e.value.file, e.value.where) == (str(path), where)


def test_gzip_and_schema(samples, tmp_path):
    """.gz is read transparently; rows follow the flow-table schema."""
    path = samples / "aws-vpc-flow-logs" / "custom-v3-tcp-flags.log"
    gz = tmp_path / "f.log.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    _, a = read(path)
    _, b = read(gz)
    assert list(b.columns) == list(FLOW_COLUMNS)
    cols = [c for c in a.columns if c != "source"]
    assert a[cols].equals(b[cols])


def test_a_time_no_calendar_has_is_printed_as_a_number_not_a_crash(tmp_path):
    """Found by the fuzz tests: a start time of 10**18 seconds made the summary's date
    formatting raise OverflowError (an internal error, exit 70)."""
    import subprocess
    import sys

    path = tmp_path / "vpc.log"
    path.write_text("2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 "
                    "1000000000000000000 1000000000000000060 ACCEPT OK\n")
    proc = subprocess.run([sys.executable, "-m", "netpolgen", "generate", str(path), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1000000000000000000 (not a date)" in proc.stderr
