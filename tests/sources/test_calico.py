"""CalicoSource: records written from Calico's documented flow-log fields (no real log can be
shipped), in the JSON, Elasticsearch-document and space-separated text layouts.

``record`` below builds one record from the documented field names; each test states the flows
it describes and checks what the flow table must say about them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netpolgen.errors import SourceError
from netpolgen.flows import FLOW_COLUMNS, concat_flows, text_to_labels
from netpolgen.inventory.from_flows import inventory_from_flows
from netpolgen.resolve import resolve_flows
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.calico import TEXT_FIELDS, CalicoSource, parse_labels


def record(**over) -> dict:
    """A flow-log record with every documented field: frontend → cartservice:7070 allowed."""
    base = {
        "start_time": 1699375161, "end_time": 1699375461,
        "source_ip": "10.48.1.10", "source_name": "frontend-755cdc7957-abcde",
        "source_name_aggr": "frontend-755cdc7957-*", "source_namespace": "shop",
        "source_port": None, "source_type": "wep",
        "source_labels": {"labels": ["app=frontend", "pod-template-hash=755cdc7957"]},
        "dest_ip": "10.48.2.20", "dest_name": "cartservice-7d4899b484-fghjk",
        "dest_name_aggr": "cartservice-7d4899b484-*", "dest_namespace": "shop",
        "dest_port": 7070, "dest_type": "wep",
        "dest_labels": {"labels": ["app=cartservice", "pod-template-hash=7d4899b484"]},
        "dest_service_namespace": "shop", "dest_service_name": "cartservice", "dest_service_port": "grpc",
        "proto": "tcp", "action": "allow", "reporter": "src", "policies": {"all_policies": []},
        "num_flows": 3, "num_flows_started": 3, "num_flows_completed": 2,
        "packets_in": 10, "packets_out": 12, "bytes_in": 1000, "bytes_out": 1200,
        "host": "node-a",
    }
    base.update(over)
    return base


def write(tmp_path: Path, recs: list[dict], name: str = "flows.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return path


def read(path: Path, **options):
    src = CalicoSource(str(path), SourceOptions(**options))
    return src, concat_flows(src.chunks())


def test_one_flow_becomes_one_known_row(tmp_path):
    """Calico's source is the initiator: one row, direction known, counts from the record."""
    src, df = read(write(tmp_path, [record()]))
    assert list(df.columns) == list(FLOW_COLUMNS)
    r = df.iloc[0]
    assert (r.src_ip, r.dst_ip, r.src_port, r.dst_port, r.proto, r.verdict) == ("10.48.1.10", "10.48.2.20", -1, 7070, "TCP", "allowed")
    assert r.direction_known
    assert (r.connections, r.packets, r.bytes) == (3, 22, 2200)
    assert (r.src_pod, r.dst_pod, r.src_namespace) == ("shop/frontend-755cdc7957-abcde", "shop/cartservice-7d4899b484-fghjk", "shop")
    assert text_to_labels(r.dst_labels) == {"app": "cartservice", "pod-template-hash": "7d4899b484"}
    assert (r.first_seen, r.last_seen, r.node) == (1699375161.0, 1699375461.0, "node-a")
    assert src.stats.records == 1 and src.stats.connections == 3


def test_a_flow_reported_by_both_ends_counts_once(tmp_path):
    """reporter src (node-a) and reporter dst (node-b) describe the same flows: connections,
    packets and bytes are the larger reporter's, never the sum; two intervals add up."""
    recs = [
        record(reporter="src", num_flows=3, packets_in=10, packets_out=12),
        record(reporter="dst", num_flows=3, packets_in=12, packets_out=10, host="node-b"),
        record(reporter="src", num_flows=1, packets_in=1, packets_out=1, start_time=1699375461, end_time=1699375761),
    ]
    _, df = read(write(tmp_path, recs))
    assert len(df) == 1
    r = df.iloc[0]
    assert (r.connections, r.packets) == (4, 24)
    assert (r.first_seen, r.last_seen) == (1699375161.0, 1699375761.0)


def test_deny_is_reported_and_include_dropped_allows_it(tmp_path):
    """action deny → verdict denied; a flow allowed at the source and denied at the
    destination yields both rows (the resolver reports the denial)."""
    recs = [record(action="deny", reporter="dst"), record(action="allow", reporter="src")]
    _, df = read(write(tmp_path, recs))
    assert sorted(df["verdict"]) == ["allowed", "denied"]
    _, df2 = read(write(tmp_path, recs), include_dropped=True)
    assert set(df2["verdict"]) == {"allowed"} and len(df2) == 1


def test_aggregated_endpoints_are_keyed_by_namespace_and_aggregated_name(tmp_path):
    """name_aggr with '*' and no IP: the pod key is namespace/name_aggr, the address empty, and
    the inventory built from the flows finds the endpoint by that key (resolution without IP)."""
    rec = record(source_ip=None, source_name="-", dest_ip="-", dest_name="-")
    _, df = read(write(tmp_path, [rec]))
    r = df.iloc[0]
    assert (r.src_ip, r.src_pod) == ("", "shop/frontend-755cdc7957-*")
    assert (r.dst_ip, r.dst_pod) == ("", "shop/cartservice-7d4899b484-*")
    inv = inventory_from_flows(df)
    pod = inv.pod("shop/cartservice-7d4899b484-*")
    assert pod is not None and pod.ips == ()
    assert pod.labels == {"app": "cartservice"}  # pod-template-hash is volatile
    assert str(inv.workload_of(pod)) == "shop/cartservice[Deployment]"
    resolved = resolve_flows(df, inv).flows.iloc[0]
    assert (resolved.src_workload, resolved.dst_workload) == ("shop/frontend[Deployment]", "shop/cartservice[Deployment]")


def test_elasticsearch_documents_read_like_bare_records(tmp_path):
    """`{"_index":…, "_source": record}` lines give the same rows as the bare records."""
    recs = [record(), record(dest_port=53, proto="udp", dest_name="kube-dns-1", dest_namespace="kube-system")]
    _, bare = read(write(tmp_path, recs, "a.log"))
    _, docs = read(write(tmp_path, [{"_index": "tigera_secure_ee_flows", "_id": str(i), "_source": r} for i, r in enumerate(recs)], "b.log"))
    cols = [c for c in bare.columns if c != "source"]
    assert bare[cols].equals(docs[cols])


@pytest.mark.parametrize("raw, expected", [
    (b'{"labels":["app=web","tier=front"]}', {"app": "web", "tier": "front"}),
    (b'["app=web"]', {"app": "web"}),
    (b'{"app":"web"}', {"app": "web"}),
    (b"app=web,tier=front", {"app": "web", "tier": "front"}),
    (b"[app=web,tier=front]", {"app": "web", "tier": "front"}),
    (b"-", {}),
    (b"null", {}),
])
def test_label_spellings(raw, expected):
    """Every spelling of Calico's label field parses to the same dict."""
    assert parse_labels(raw) == expected


def test_endpoint_types(tmp_path):
    """A host endpoint with an address is a node (reserved:host); a public network resolves by
    its address (no marker); ICMP has no ports."""
    recs = [
        record(source_type="hep", source_name="node-a", source_name_aggr="node-a", source_namespace="-",
               source_ip="172.18.0.2", source_labels=None),
        record(dest_type="net", dest_name="-", dest_name_aggr="pub", dest_namespace="-", dest_ip="93.184.216.34",
               dest_port=None, proto="icmp", dest_labels=None),
    ]
    _, df = read(write(tmp_path, recs))
    hep = df[df["src_ip"] == "172.18.0.2"].iloc[0]
    assert (hep.src_owner, hep.src_pod, hep.src_namespace) == ("reserved:host", "", "")
    net = df[df["dst_ip"] == "93.184.216.34"].iloc[0]
    assert (net.dst_owner, net.dst_pod, net.proto, net.dst_port) == ("", "", "ICMP", 0)


def text_line(rec: dict) -> str:
    """The record in the assumed text order (one name per side: aggregated names end in *)."""
    def labels(v):
        return "-" if not v else "[" + ",".join(v["labels"]) + "]"
    values = {**rec, "source_labels": labels(rec["source_labels"]), "dest_labels": labels(rec["dest_labels"]),
              "policies": "-"}
    return " ".join("-" if values.get(f) in (None, "") else str(values[f]) for f in TEXT_FIELDS)


def test_text_format_with_and_without_header(tmp_path):
    """The space-separated layout (assumed default order, or any order given by a header)
    gives the same rows as the JSON records."""
    recs = [record(), record(source_ip="-", source_name="frontend-755cdc7957-*", reporter="dst", action="deny")]
    _, expected = read(write(tmp_path, [record(), record(source_ip=None, source_name="-", reporter="dst", action="deny")], "j.log"))
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(text_line(r) for r in recs) + "\n")
    order = list(reversed(TEXT_FIELDS))
    headed = tmp_path / "headed.txt"
    headed.write_text(" ".join(order) + "\n" + "\n".join(
        " ".join(text_line(r).split()[TEXT_FIELDS.index(f)] for f in order) for r in recs) + "\n")
    cols = [c for c in expected.columns if c not in ("source", "node")]
    for p in (plain, headed):
        src, df = read(p)
        assert src.stats.records == 2
        assert df[cols].sort_values("verdict").reset_index(drop=True).equals(expected[cols].sort_values("verdict").reset_index(drop=True))


def test_bad_records_are_counted_with_line_numbers(tmp_path):
    """An unknown action, a bad port and broken JSON are skipped with their line; --strict
    stops at the first; a file that is not Calico fails at line 1."""
    recs = [json.dumps(record()), json.dumps(record(action="log")), "{broken",
            json.dumps(record(dest_port="http")), json.dumps(record(dest_port=7071))]
    path = tmp_path / "bad.log"
    path.write_text("\n".join(recs) + "\n")
    src, df = read(path)
    assert len(df) == 2
    assert src.stats.skipped.counts == {"action is neither allow nor deny": 1, "invalid JSON": 1, "invalid destination port": 1}
    assert [e.split(": ")[1] for e in src.stats.skipped.examples] == ["line 2", "line 3", "line 4"]
    with pytest.raises(SourceError) as e:
        read(path, strict=True)
    assert e.value.where == "line 2"
    other = tmp_path / "other.log"
    other.write_text('{"kind": "Pod"}\n')
    with pytest.raises(SourceError) as e:
        read(other)
    assert (e.value.where, "not a Calico flow log" in e.value.what) == ("line 1", True)


def test_chunks_are_bounded(tmp_path):
    """chunk_size bounds the rows of every chunk, and every flow is still there. (Reporter
    merging is per chunk: the two reports of one flow split across chunks would each be a row.)"""
    recs = [record(dest_port=7000 + i % 13, reporter="src" if i % 2 else "dst") for i in range(60)]
    path = write(tmp_path, recs)
    _, whole = read(path)
    src = CalicoSource(str(path), SourceOptions(chunk_size=5))
    parts = list(src.chunks())
    assert all(0 < len(p) <= 5 for p in parts)
    flows = lambda df: set(zip(df["src_pod"], df["dst_pod"], df["dst_port"], df["verdict"], strict=True))  # noqa: E731
    assert len(whole) == 13
    assert flows(concat_flows(parts)) == flows(whole)
