"""The same connection seen several times (capture points, DNAT, masquerade) counts once."""

from __future__ import annotations

import pandas as pd

from netpolgen.aggregate import aggregate_edges
from netpolgen.flows import normalize_flows
from netpolgen.resolve import resolve_flows
from tests import shop


def _flows(rows: list[tuple]) -> pd.DataFrame:
    return normalize_flows(pd.DataFrame([
        {"src_ip": s, "src_port": sp, "dst_ip": d, "dst_port": dp, "proto": "TCP", "direction_known": known,
         "packets": pk, "bytes": pk * 100, "connections": 1, "first_seen": t, "last_seen": t + 1, "source": src}
        for s, sp, d, dp, known, pk, t, src in rows
    ]))


def test_a_connection_captured_on_two_nodes_counts_once_with_the_handshake_side_orientation() -> None:
    flows = _flows([
        ("10.244.1.10", 40000, "10.244.1.20", 5000, True, 12, 100.0, "node-a.pcap"),
        # The server's node saw it mid-stream, the other way round and with a skewed clock.
        ("10.244.1.20", 5000, "10.244.1.10", 40000, False, 10, 130.0, "node-b.pcap"),
    ])
    res = resolve_flows(flows, shop.inventory())
    assert res.report.sightings_merged == 1
    assert res.flows[["src_workload", "dst_workload", "dst_port", "connections", "packets"]].values.tolist() == [
        ["shop/frontend[Deployment]", "shop/api[Deployment]", 5000, 1, 12]
    ]
    assert (res.flows["first_seen"].iloc[0], res.flows["last_seen"].iloc[0]) == (100.0, 131.0)


def test_pre_and_post_dnat_sightings_are_one_connection_to_the_backend_really_used() -> None:
    """Before DNAT the api Service could mean api or api-canary; the post-DNAT copy says api."""
    flows = _flows([
        ("10.244.1.10", 40000, "10.96.0.20", 80, True, 6, 100.0, "node.pcap"),
        ("10.244.1.10", 40000, "10.244.1.20", 5000, True, 6, 100.0, "node.pcap"),
    ])
    res = resolve_flows(flows, shop.inventory())
    assert res.flows[["dst_workload", "dst_port", "dst_service", "service_port"]].values.tolist() == [
        ["shop/api[Deployment]", 5000, "shop/api", 80]
    ]
    assert res.report.nat.dnat_merged == 1


def test_masqueraded_egress_is_attributed_to_the_pod_not_the_node() -> None:
    flows = _flows([
        ("10.244.1.20", 41003, "203.0.113.7", 443, True, 8, 100.0, "node.pcap"),  # on the pod's veth
        (shop.NODE_IP, 41003, "203.0.113.7", 443, True, 8, 100.0, "node.pcap"),  # on the uplink
    ])
    res = resolve_flows(flows, shop.inventory())
    assert res.flows[["src_workload", "dst_workload"]].values.tolist() == [["shop/api[Deployment]", "203.0.113.7"]]
    assert res.report.nat.snat_merged == 1 and res.report.nat.masquerade_only == []


def test_masqueraded_egress_seen_only_on_the_node_side_is_reported() -> None:
    flows = _flows([(shop.NODE_IP, 41003, "203.0.113.7", 443, True, 8, 100.0, "node.pcap")])
    res = resolve_flows(flows, shop.inventory())
    assert res.report.nat.masquerade_only == [f"{shop.NODE_IP} -> 203.0.113.7 TCP/443"]


def test_nodeport_connection_snatted_to_the_node_keeps_the_outside_client() -> None:
    """externalTrafficPolicy: Cluster: outside → node:30080, then node → frontend pod:8080."""
    flows = _flows([
        ("198.51.100.20", 50000, shop.NODE_IP, 30080, True, 5, 100.0, "node.pcap"),
        (shop.NODE_IP, 50000, "10.244.1.10", 8080, True, 5, 100.0, "node.pcap"),
    ])
    res = resolve_flows(flows, shop.inventory())
    edges = aggregate_edges(res.flows)
    assert edges[["src_workload", "dst_workload", "dst_port"]].values.tolist() == [
        ["198.51.100.20", "shop/frontend[Deployment]", 8080]
    ]
