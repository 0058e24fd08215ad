"""Resolution: addresses become pods/workloads, Services become backends on target ports."""

from __future__ import annotations

import pandas as pd

from netpolgen.flows import normalize_flows
from netpolgen.inventory import inventory_from_objects
from netpolgen.resolve import resolve_flows
from tests import kube, shop


def _row(df: pd.DataFrame, **match: object) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for k, v in match.items():
        mask &= df[k] == v
    return df[mask]


def test_pod_ips_resolve_to_the_workload_at_the_top_of_the_owner_chain() -> None:
    res = resolve_flows(shop.flows(), shop.inventory()).flows
    direct = _row(res, src_ip="10.244.1.20", dst_ip="10.244.1.40")
    assert direct[["src_workload", "dst_workload", "dst_port"]].values.tolist() == [
        ["shop/api[Deployment]", "data/postgres[StatefulSet]", 5432]
    ]


def test_service_clusterip_maps_to_each_backend_workload_on_its_named_target_port() -> None:
    """The api Service's targetPort is the name ``http``: 5000 on api, 5001 on api-canary."""
    res = resolve_flows(shop.flows(), shop.inventory()).flows
    via = _row(res, src_ip="10.244.1.10", dst_service="shop/api")
    assert sorted(zip(via["dst_workload"], via["dst_port"], strict=True)) == [
        ("shop/api-canary[Deployment]", 5001), ("shop/api[Deployment]", 5000)
    ]
    assert set(via["service_port"]) == {80}


def test_nodeport_on_a_node_address_maps_to_the_service_backends() -> None:
    res = resolve_flows(shop.flows(), shop.inventory()).flows
    rows = _row(res, src_ip="198.51.100.20")
    assert rows[["src_kind", "dst_workload", "dst_port"]].values.tolist() == [
        ["external", "shop/frontend[Deployment]", 8080]
    ]


def test_host_network_pods_and_nodes_are_node_peers_and_are_reported() -> None:
    result = resolve_flows(shop.flows(), shop.inventory())
    rows = _row(result.flows, src_ip="10.244.1.50", dst_port=9100)
    assert rows[["dst_kind", "dst_workload"]].values.tolist() == [["node", shop.NODE_IP]]
    assert result.report.host_network_peers == {shop.NODE_IP: {"monitoring/node-exporter-x1"}}


def test_unknown_address_inside_the_pod_range_is_unresolved_never_external() -> None:
    result = resolve_flows(shop.flows(), shop.inventory())
    rows = _row(result.flows, src_ip="10.244.1.99")
    assert rows["src_kind"].tolist() == ["unresolved"]
    assert "10.244.1.99" in result.report.unresolved
    assert result.report.unresolved_connections == 1


def test_unknown_direction_is_turned_round_when_the_inventory_knows_the_server_port() -> None:
    result = resolve_flows(shop.flows(), shop.inventory())
    rows = _row(result.flows, dst_workload="shop/redis[Deployment]", src_workload="shop/api-canary[Deployment]")
    assert rows[["dst_port", "direction_inferred"]].values.tolist() == [[6379, True]]
    assert result.report.reoriented_by_inventory == 1
    assert result.report.inferred_directions == 2  # the DNS query and the redis row


def test_a_recycled_pod_ip_resolves_by_the_flow_time() -> None:
    """Two pods held 10.244.2.5 one after the other; each flow goes to the pod alive then."""
    objs = [
        kube.pod("a", "old", "10.244.2.5", {"app": "old"}, created="2024-01-01T00:00:00Z",
                 deleted="2024-01-01T01:00:00Z", phase="Succeeded"),
        kube.pod("a", "new", "10.244.2.5", {"app": "new"}, created="2024-01-01T02:00:00Z"),
        kube.pod("a", "client", "10.244.2.9", {"app": "client"}),
    ]
    inv = inventory_from_objects(objs)
    t_old = pd.Timestamp("2024-01-01T00:30:00Z").timestamp()
    t_new = pd.Timestamp("2024-01-01T03:00:00Z").timestamp()
    t_gap = pd.Timestamp("2024-01-01T01:30:00Z").timestamp()
    flows = normalize_flows(pd.DataFrame([
        {"src_ip": "10.244.2.9", "dst_ip": "10.244.2.5", "src_port": 40000 + i, "dst_port": 80, "proto": "TCP",
         "direction_known": True, "connections": 1, "first_seen": t, "last_seen": t}
        for i, t in enumerate((t_old, t_new, t_gap))
    ]))
    res = resolve_flows(flows, inv)
    assert res.flows["dst_workload"].tolist() == ["a/old[Pod]", "a/new[Pod]", "10.244.2.5"]
    assert res.flows["dst_kind"].tolist() == ["pod", "pod", "unresolved"]
    assert "10.244.2.5" in res.report.ambiguous_ips


def test_since_and_until_drop_rows_outside_the_window() -> None:
    flows = shop.flows()
    res = resolve_flows(flows, shop.inventory(), since=1_700_000_012.0, until=1_700_000_003.5 + 10)
    # Rows i have first_seen = t0+i and last_seen = t0+10+i: kept when last >= since and first <= until.
    kept = [i for i in range(len(flows)) if 1_700_000_010.0 + i >= 1_700_000_012.0 and 1_700_000_000.0 + i <= 1_700_000_013.5]
    assert res.report.outside_window == len(flows) - len(kept)


def test_icmp_is_counted_but_never_resolved_into_rows() -> None:
    flows = normalize_flows(pd.DataFrame([
        {"src_ip": "10.244.1.10", "dst_ip": "10.244.1.20", "proto": "ICMP", "connections": 3},
    ]))
    res = resolve_flows(flows, shop.inventory())
    assert res.flows.empty
    assert res.report.non_port_protocols == {"ICMP": 3}


def test_a_service_port_that_does_not_exist_is_unresolved() -> None:
    flows = normalize_flows(pd.DataFrame([
        {"src_ip": "10.244.1.10", "dst_ip": "10.96.0.20", "src_port": 40000, "dst_port": 81, "proto": "TCP",
         "direction_known": True, "connections": 1},
    ]))
    res = resolve_flows(flows, shop.inventory())
    assert res.flows["dst_kind"].tolist() == ["unresolved"]
    assert any("has no backend for port 81/TCP" in why for why in res.report.unresolved.values())


def test_loopback_is_counted_and_dropped_and_link_local_peers_are_external() -> None:
    """127.0.0.1 never leaves the pod; 169.254.169.254 (a cloud metadata service) is a real
    outside peer that pods need an ipBlock for."""
    flows = normalize_flows(pd.DataFrame([
        {"src_ip": "127.0.0.1", "src_port": 40000, "dst_ip": "127.0.0.1", "dst_port": 8080, "proto": "TCP",
         "direction_known": True, "connections": 2},
        {"src_ip": "10.244.1.20", "src_port": 40001, "dst_ip": "169.254.169.254", "dst_port": 80, "proto": "TCP",
         "direction_known": True, "connections": 1},
    ]))
    res = resolve_flows(flows, shop.inventory())
    assert res.report.loopback_connections == 2
    assert res.flows[["src_workload", "dst_kind", "dst_workload"]].values.tolist() == [
        ["shop/api[Deployment]", "external", "169.254.169.254"]
    ]


def test_pods_outside_the_nodes_pod_cidrs_still_mark_their_range_as_the_clusters() -> None:
    """A VPC CNI gives pods addresses outside the node's podCIDR: an unknown neighbour of those
    pods must be unresolved (a pod the snapshot missed), not an outside ipBlock."""
    objs = [kube.node("n1", "10.0.0.5", "10.244.1.0/24"),
            kube.pod("a", "vpc-pod", "10.0.7.20", {"app": "x"}), kube.pod("a", "client", "10.244.1.9", {"app": "c"})]
    inv = inventory_from_objects(objs)
    flows = normalize_flows(pd.DataFrame([
        {"src_ip": "10.244.1.9", "src_port": 40000, "dst_ip": ip, "dst_port": 80, "proto": "TCP",
         "direction_known": True, "connections": 1} for ip in ("10.0.9.9", "192.0.2.1")
    ]))
    assert resolve_flows(flows, inv).flows["dst_kind"].tolist() == ["unresolved", "external"]


def test_a_service_address_on_the_client_side_is_unresolved_never_an_ipblock() -> None:
    flows = normalize_flows(pd.DataFrame([
        {"src_ip": "10.96.0.30", "src_port": 6379, "dst_ip": "10.244.1.20", "dst_port": 6379, "proto": "TCP",
         "direction_known": True, "connections": 1},
    ]))
    res = resolve_flows(flows, shop.inventory())
    assert res.flows["src_kind"].tolist() == ["unresolved"]
    assert "10.96.0.30" in res.report.unresolved


def test_the_window_is_one_rule_for_captures_and_flow_logs() -> None:
    """--since/--until keep what overlaps the window and what cannot be shown outside it (no
    times): the same rule in resolution as in the capture reader (netpolgen.window)."""
    import numpy as np

    from netpolgen.window import TimeWindow

    w = TimeWindow(since=100.0, until=200.0)
    first = np.array([50.0, 150.0, 250.0, np.nan, 10.0])
    last = np.array([99.0, 160.0, 300.0, np.nan, 400.0])
    assert list(w.keep(first, last)) == [False, True, False, True, True]
    assert w.clip(10.0, 400.0) == (100.0, 200.0) and TimeWindow().unbounded
