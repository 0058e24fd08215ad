"""HubbleSource: the real Hubble samples parse into the connections the records describe.

The expected connections come from ``reference_connections`` below: a deliberately plain,
record-by-record reading of the same JSON with the standard ``json`` module (an unordered
endpoint pair per connection, the evidence of each record collected in a list), independent of
the source's vectorised fold. The exact counts asserted next to it were read off the files with
jq; each test says which query.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from netpolgen.errors import SourceError
from netpolgen.flows import FLOW_COLUMNS, concat_flows, text_to_labels
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.hubble import HubbleSource

SAMPLE_FILES = [
    "basic-sample-10-flows.json",
    "basic-sample-330-dns-flows.json",
    "basic-sample-400-icmpv4-flows.json",
    "basic-sample-400-tcp-flows.json",
    "basic-sample-400-udp-flows.json",
    "basic-sample-5-dns-flows.json",
    "basic-sample-5-http-flows.json",
    "cilium-docs-export-dropped.jsonl",
]


def read(path: Path | str, **options) -> tuple[HubbleSource, object]:
    src = HubbleSource(str(path), SourceOptions(**options))
    return src, concat_flows(src.chunks())


def reference_connections(path: Path, include_dropped: bool = False) -> dict[tuple, tuple | None]:
    """{(unordered endpoints, proto, verdict): (client endpoint, server endpoint) or None}."""
    evidence: dict[tuple, list] = defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        obj = json.loads(line)
        f = obj.get("flow", obj)
        verdict = {"FORWARDED": "allowed", "AUDIT": "allowed", "REDIRECTED": "allowed",
                   "DROPPED": "allowed" if include_dropped else "denied"}.get(f.get("verdict"))
        if verdict is None or "IP" not in f:
            continue
        l4 = f.get("l4", {})
        proto, ports, client_hint = None, (0, 0), None
        for name in ("TCP", "UDP", "SCTP"):
            if name in l4:
                proto = name
                ports = (l4[name].get("source_port", 0), l4[name].get("destination_port", 0))
                flags = l4[name].get("flags", {})
                if flags.get("SYN"):
                    client_hint = "dst" if flags.get("ACK") else "src"
        if "ICMPv4" in l4:
            proto = "ICMP"
            t = l4["ICMPv4"].get("type", 0)
            client_hint = {8: "src", 0: "dst"}.get(t)
        if "ICMPv6" in l4:
            proto = "ICMPv6"
            client_hint = {128: "src", 129: "dst"}.get(l4["ICMPv6"].get("type", 0))
        if proto is None:
            continue
        if "is_reply" in f:
            client_hint = "dst" if f["is_reply"] else "src"
        elif f.get("reply"):
            client_hint = "dst"
        a = (f["IP"]["source"], ports[0])
        b = (f["IP"]["destination"], ports[1])
        key = (frozenset((a, b)), proto, verdict)
        evidence[key].append(None if client_hint is None else (a, b) if client_hint == "src" else (b, a))
    out: dict[tuple, tuple | None] = {}
    for key, hints in evidence.items():
        known = [h for h in hints if h is not None]
        out[key] = known[0] if known else None
    return out


def as_keys(df) -> dict[tuple, tuple | None]:
    out = {}
    for r in df.itertuples(index=False):
        a, b = (r.src_ip, r.src_port), (r.dst_ip, r.dst_port)
        out[(frozenset((a, b)), r.proto, r.verdict)] = (a, b) if r.direction_known else None
    return out


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_connections_match_an_independent_reading(samples, name):
    """Every sample gives exactly the connections (and client sides) the records describe."""
    path = samples / "hubble-flows" / name
    src, df = read(path)
    expected = reference_connections(path)
    assert as_keys(df) == expected
    assert len(df) == len(expected)
    assert int(df["connections"].sum()) == len(expected)
    assert list(df.columns) == list(FLOW_COLUMNS)
    assert src.stats.skipped.total == 0


@pytest.mark.parametrize(
    "name, records, connections, known",
    [
        # records: `grep -c . FILE`. connections: distinct unordered 5-tuples per verdict class,
        #   jq -c '(.flow//.) | select(.IP) | [([[.IP.source, (.l4|to_entries[0].value.source_port // 0)],
        #          [.IP.destination, (.l4|to_entries[0].value.destination_port // 0)]] | sort),
        #          (.l4|keys[0]), (.verdict=="DROPPED")]' FILE | sort -u | wc -l
        # known: connections with an is_reply, reply:true, SYN or ICMP echo record. The rest are
        #   cross-node TO_OVERLAY records (tcp: 4 L7-proxy connections from the node address and
        #   a health probe; udp: 74 DNS-proxy queries) and the IPv6 router solicitation.
        ("basic-sample-10-flows.json", 10, 5, 5),
        ("basic-sample-330-dns-flows.json", 330, 67, 67),
        ("basic-sample-400-icmpv4-flows.json", 18, 3, 3),
        ("basic-sample-400-tcp-flows.json", 400, 57, 52),
        ("basic-sample-400-udp-flows.json", 400, 111, 37),
        ("basic-sample-5-dns-flows.json", 5, 1, 1),
        ("basic-sample-5-http-flows.json", 5, 4, 4),
        ("cilium-docs-export-dropped.jsonl", 2, 2, 1),
    ],
)
def test_sample_exact_counts(samples, name, records, connections, known):
    """The exact record, connection and known-direction counts read off each file with jq."""
    src, df = read(samples / "hubble-flows" / name)
    assert src.stats.records == records
    assert len(df) == connections
    assert int(df["direction_known"].sum()) == known


def test_old_hubble_reply_marker_orients_every_connection(samples):
    """2021-06 records have no is_reply: each of the 5 connections has one `reply: true` record
    (`jq 'select(.flow.reply==true)' | wc -l` = 5), and that alone fixes its client side."""
    _, df = read(samples / "hubble-flows" / "basic-sample-10-flows.json")
    assert df["direction_known"].all()
    # kubelet (reserved:host) probing the reviews sidecar on 15020: the record is the reply.
    row = df[(df["dst_port"] == 15020)].iloc[0]
    assert (row.src_ip, row.dst_ip, row.src_owner) == ("10.0.2.1", "10.0.2.16", "reserved:host")
    assert row.dst_pod == "bookinfo/reviews-v1-545db77b95-s6jb8"


def test_records_without_any_direction_use_the_port_rule(samples):
    """The 74 UDP records from the node's DNS proxy (10.244.0.148, reserved:remote-node) to
    coredns carry neither is_reply nor traffic_direction, each on its own source port
    (`jq '(.flow//.)|select(.is_reply==null and .l4.UDP)|.l4.UDP.source_port' | sort -u` = 74):
    74 connections of unknown direction, every one oriented to port 53."""
    _, df = read(samples / "hubble-flows" / "basic-sample-400-udp-flows.json")
    unknown = df[~df["direction_known"]]
    assert len(unknown) == 74
    assert set(unknown["dst_port"]) == {53}
    assert set(unknown["src_ip"]) == {"10.244.0.148"}
    assert set(unknown["src_owner"]) == {"reserved:remote-node"}


def test_connections_seen_only_in_l7_records(samples):
    """The HTTP sample has only L7 records: 3 requests and 2 responses, one of them to a request
    the file does not hold (prometheus → node-local-dns 10.156.0.2:9253). 4 connections, no
    packets (L7 records are requests, not packets), all oriented by is_reply."""
    _, df = read(samples / "hubble-flows" / "basic-sample-5-http-flows.json")
    assert len(df) == 4
    assert (df["packets"] == 0).all()
    assert set(df["src_ip"]) == {"10.156.2.7"}
    assert ("10.156.0.2", 9253) in set(zip(df["dst_ip"], df["dst_port"], strict=True))


def test_redirected_is_allowed_and_dropped_is_denied(samples):
    """REDIRECTED (Cilium's L7 proxy, 27 TCP records) counts as allowed; the exporter's
    POLICY_DENIED drop is denied, and allowed with --include-dropped."""
    _, tcp = read(samples / "hubble-flows" / "basic-sample-400-tcp-flows.json")
    assert set(tcp["verdict"]) == {"allowed"}
    path = samples / "hubble-flows" / "cilium-docs-export-dropped.jsonl"
    _, df = read(path)
    drop = df[df["dst_port"] == 80].iloc[0]
    assert (drop.verdict, drop.src_pod, drop.direction_known) == ("denied", "default/xwing", True)
    _, df2 = read(path, include_dropped=True)
    assert set(df2["verdict"]) == {"allowed"}
    assert as_keys(df2) == reference_connections(path, include_dropped=True)


def test_icmp_echo_replies_fold_into_their_request(samples):
    """18 ICMPv4 records (11 echo requests, 7 replies: `jq '.l4.ICMPv4'`) are 3 connections."""
    _, df = read(samples / "hubble-flows" / "basic-sample-400-icmpv4-flows.json")
    assert set(df["proto"]) == {"ICMP"}
    assert int(df["packets"].sum()) == 18
    assert (df["src_port"] == 0).all() and (df["dst_port"] == 0).all()


def test_labels_namespace_and_reserved_identities(samples):
    """k8s: prefixes stripped, Cilium's own labels dropped, reserved identities marked, and a
    pod named by the record wins over a reserved:world identity (a pod IP is never 'world')."""
    _, df = read(samples / "hubble-flows" / "basic-sample-10-flows.json")
    reviews = df[df["dst_pod"] == "bookinfo/reviews-v1-545db77b95-s6jb8"].iloc[0]
    labels = text_to_labels(reviews.dst_labels)
    assert labels == {"app": "reviews", "security.istio.io/tlsMode": "istio", "version": "v1"}
    world = df[df["dst_ip"] == "35.246.31.234"].iloc[0]
    assert (world.dst_owner, world.dst_pod, world.dst_labels) == ("reserved:world", "", "")
    _, http = read(samples / "hubble-flows" / "basic-sample-5-http-flows.json")
    kube_dns = http[http["dst_ip"] == "10.156.3.6"].iloc[0]
    assert kube_dns.dst_pod == "kube-system/kube-dns-b4f5c58c7-7qmtw"
    assert kube_dns.dst_owner == ""


def flow(src, sport, dst, dport, proto="TCP", verdict="FORWARDED", t="2024-05-01T10:00:00.5Z", **extra):
    f = {"time": t, "verdict": verdict, "IP": {"source": src, "destination": dst},
         "l4": {proto: {"source_port": sport, "destination_port": dport, **extra.pop("l4extra", {})}},
         "source": extra.pop("source", {}), "destination": extra.pop("destination", {}),
         "Type": "L3_L4", "node_name": extra.pop("node", "n1")}
    f.update(extra)
    return f


def write_lines(path: Path, objs: list, wrap: bool = True) -> Path:
    path.write_text("\n".join(json.dumps({"flow": o} if wrap else o) for o in objs) + "\n")
    return path


def test_egress_and_ingress_observations_count_once(tmp_path):
    """A connection seen leaving the client's node and entering the server's node (and the
    reply) is one row with one connection and all the packets."""
    objs = [
        flow("10.0.1.5", 40000, "10.0.2.7", 8080, l4extra={"flags": {"SYN": True}}, traffic_direction="EGRESS", node="a"),
        flow("10.0.1.5", 40000, "10.0.2.7", 8080, l4extra={"flags": {"SYN": True}}, traffic_direction="INGRESS", node="b"),
        flow("10.0.2.7", 8080, "10.0.1.5", 40000, l4extra={"flags": {"SYN": True, "ACK": True}}, node="b"),
        flow("10.0.1.5", 40000, "10.0.2.7", 8080, l4extra={"flags": {"ACK": True}}, node="a"),
    ]
    _, df = read(write_lines(tmp_path / "f.json", objs))
    assert len(df) == 1
    r = df.iloc[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.connections, r.packets) == ("10.0.1.5", 40000, "10.0.2.7", 8080, 1, 4)
    assert r.direction_known


def test_direction_evidence_order(tmp_path):
    """is_reply beats the flags; SYN+ACK marks the server; no evidence leaves it to ports."""
    objs = [
        # is_reply false on a record whose flags look like a reply: is_reply wins
        flow("10.0.0.1", 5000, "10.0.0.2", 40001, l4extra={"flags": {"SYN": True, "ACK": True}}, is_reply=False),
        # SYN+ACK from the server: the client is the destination
        flow("10.0.0.3", 443, "10.0.0.4", 40002, l4extra={"flags": {"SYN": True, "ACK": True}}),
        # nothing: the port rule puts the low port on the server side
        flow("10.0.0.5", 40003, "10.0.0.6", 22, l4extra={"flags": {"ACK": True}}),
    ]
    _, df = read(write_lines(tmp_path / "f.json", objs))
    got = {(r.src_ip, r.dst_ip, r.direction_known) for r in df.itertuples()}
    assert got == {("10.0.0.1", "10.0.0.2", True), ("10.0.0.4", "10.0.0.3", True), ("10.0.0.5", "10.0.0.6", False)}


def test_dns_answers_name_their_addresses(tmp_path):
    """A DNS answer (query → ips) names the address in later connections; destination_names too."""
    dns = flow("10.0.0.9", 53, "10.0.1.5", 41000, proto="UDP", is_reply=True, Type="L7",
               l7={"type": "RESPONSE", "dns": {"query": "api.example.com.", "ips": ["203.0.113.10"]}})
    conn = flow("10.0.1.5", 42000, "203.0.113.10", 443, l4extra={"flags": {"SYN": True}})
    other = flow("10.0.1.5", 42001, "198.51.100.7", 443, l4extra={"flags": {"SYN": True}},
                 destination_names=["cdn.example.net"])
    _, df = read(write_lines(tmp_path / "f.json", [dns, conn, other]))
    names = dict(zip(df["dst_ip"], df["dst_names"], strict=True))
    assert names["203.0.113.10"] == "api.example.com"
    assert names["198.51.100.7"] == "cdn.example.net"
    assert names["10.0.0.9"] == ""


def test_workloads_field_and_ipv6(tmp_path):
    """`workloads` gives Kind/name; IPv6 addresses are kept in canonical form."""
    ep = {"namespace": "shop", "pod_name": "web-0", "labels": ["k8s:app=web"],
          "workloads": [{"name": "web", "kind": "StatefulSet"}]}
    objs = [flow("2001:DB8:0:0::1", 40000, "2001:db8::0:2", 80, source=ep, is_reply=False)]
    _, df = read(write_lines(tmp_path / "f.json", objs))
    r = df.iloc[0]
    assert (r.src_ip, r.dst_ip) == ("2001:db8::1", "2001:db8::2")
    assert (r.src_owner, r.src_pod, r.src_namespace, r.src_labels) == ("StatefulSet/web", "shop/web-0", "shop", "app=web")


def test_time_is_parsed_exactly(tmp_path):
    """first/last seen are the records' RFC 3339 times (nanoseconds, trimmed fractions)."""
    objs = [flow("10.0.0.1", 40000, "10.0.0.2", 80, t="2021-11-10T10:40:56.4655977Z", is_reply=False),
            flow("10.0.0.2", 80, "10.0.0.1", 40000, t="2021-11-10T10:40:57Z", is_reply=True)]
    src, df = read(write_lines(tmp_path / "f.json", objs))
    expect_first = datetime.fromisoformat("2021-11-10T10:40:56.465597+00:00").timestamp() + 0.0000007
    expect_last = datetime.fromisoformat("2021-11-10T10:40:57+00:00").timestamp()
    assert df.iloc[0].first_seen == pytest.approx(expect_first, abs=1e-6)
    assert df.iloc[0].last_seen == expect_last
    assert (src.stats.first_seen, src.stats.last_seen) == (df.iloc[0].first_seen, expect_last)


def test_wrapped_bare_comments_blank_and_gzip_read_the_same(samples, tmp_path):
    """`{"flow":…}` lines, bare flow objects, // comments, blank lines and .gz give one result."""
    path = samples / "hubble-flows" / "basic-sample-10-flows.json"
    _, expected = read(path)
    bare = [json.loads(line)["flow"] for line in path.read_text().splitlines()]
    mixed = tmp_path / "mixed.json"
    mixed.write_text("// SPDX-License-Identifier: Apache-2.0\n\n" + "\n".join(
        json.dumps(o) if i % 2 else json.dumps({"flow": o, "node_name": o["node_name"]}) for i, o in enumerate(bare)
    ) + "\n\n")
    gz = tmp_path / "mixed.json.gz"
    gz.write_bytes(gzip.compress(mixed.read_bytes()))
    for p in (mixed, gz):
        src, df = read(p)
        cols = [c for c in df.columns if c != "source"]
        assert df[cols].equals(expected[cols])
        assert src.stats.records == 10


def test_chunks_are_bounded_and_connections_counted_once(samples):
    """Small chunks: no chunk exceeds the limit, and a connection spread over several chunks
    still counts once (same total, same client sides) as in one chunk."""
    path = samples / "hubble-flows" / "basic-sample-400-tcp-flows.json"
    _, whole = read(path)
    src = HubbleSource(str(path), SourceOptions(chunk_size=7))
    parts = list(src.chunks())
    assert all(0 < len(p) <= 7 for p in parts)
    df = concat_flows(parts)
    assert int(df["connections"].sum()) == len(whole)
    merged = {}
    for r in df.itertuples():
        key = (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.proto, r.verdict)
        merged[key] = merged.get(key, 0) + r.packets
    assert merged == {(r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.proto, r.verdict): r.packets for r in whole.itertuples()}


def test_bad_lines_are_skipped_with_their_line_number(samples, tmp_path):
    """A corrupt line in the middle is counted with its place; --strict makes it fatal."""
    lines = (samples / "hubble-flows" / "basic-sample-10-flows.json").read_text().splitlines()
    lines.insert(3, '{"flow": {"time": "x", truncated')
    lines.insert(6, json.dumps({"flow": {**json.loads(lines[5])["flow"], "IP": {"source": "10.0.0.999", "destination": "10.0.0.1"}}}))
    path = tmp_path / "bad.json"
    path.write_text("\n".join(lines) + "\n")
    src, df = read(path)
    assert src.stats.skipped.counts == {"invalid JSON": 1, "invalid IP address": 1}
    assert any(e.startswith(f"{path}: line 4: ") for e in src.stats.skipped.examples)
    assert any(e.startswith(f"{path}: line 7: ") for e in src.stats.skipped.examples)
    assert src.stats.records == 12
    with pytest.raises(SourceError) as e:
        read(path, strict=True)
    assert e.value.line().startswith(f"{path}: line 4: ")


@pytest.mark.parametrize("content", [
    b"apiVersion: v1\nkind: Pod\n",
    b'{"apiVersion": "v1", "kind": "List", "items": []}\n',
    b"\x00\x01\x02 binary",
])
def test_a_file_that_is_not_hubble_is_an_error_with_its_line(tmp_path, content):
    """--format hubble on something else: one SourceError naming the file and line 1."""
    path = tmp_path / "other.json"
    path.write_bytes(content)
    with pytest.raises(SourceError) as e:
        read(path)
    assert e.value.file == str(path) and e.value.where == "line 1"
    assert "not a Hubble flow log" in e.value.what


def test_non_flow_events_are_counted_not_fatal(tmp_path):
    """lost_events lines and non-IP flows are skipped and counted, even under --strict."""
    path = tmp_path / "events.json"
    path.write_text('{"lost_events": {"source": "HUBBLE_RING_BUFFER", "num_events_lost": 3}}\n'
                    + json.dumps({"flow": {"verdict": "FORWARDED", "Type": "L3_L4", "ethernet": {}}}) + "\n"
                    + json.dumps({"flow": flow("10.0.0.1", 40000, "10.0.0.2", 80, verdict="TRACED")}) + "\n"
                    + json.dumps({"flow": flow("10.0.0.1", 40000, "10.0.0.2", 80, is_reply=False)}) + "\n")
    src, df = read(path, strict=True)
    assert len(df) == 1
    assert src.stats.skipped.total == 3


def test_truncated_gzip_keeps_what_was_read(samples, tmp_path):
    """A .gz cut short (a log being written): the complete lines before the cut are read,
    the source says the file was truncated, nothing is fatal."""
    data = gzip.compress((samples / "hubble-flows" / "basic-sample-400-tcp-flows.json").read_bytes())
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) // 2])
    src, df = read(path)
    assert src.stats.truncated and src.stats.notes
    assert 0 < src.stats.records < 400 and len(df) > 0
