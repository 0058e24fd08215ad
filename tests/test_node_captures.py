"""Captures taken the way operators take them: `tcpdump -i any` on each node of an overlay cluster.

Two nodes, built with scapy packet by packet as the kernel would show them:
- node-1 (172.18.0.2, pods 10.244.1.0/24, Linux cooked SLL): frontend's connection to the api
  Service on frontend's veth *before* DNAT (10.96.0.20:80), then after DNAT inside a VXLAN
  tunnel to node-2 on the uplink;
- node-2 (172.18.0.3, pods 10.244.2.0/24, Ethernet, clock 30 s ahead): the same connection
  arriving in VXLAN and then on the api pod's veth; the api's egress to 203.0.113.7:443 on its
  veth and, masqueraded as the node, on the uplink.

The policies the two captures must give are written out below by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.all import IP, TCP, UDP, VXLAN, CookedLinux, Ether, wrpcap

from netpolgen.inventory import inventory_from_objects
from netpolgen.pipeline import generate_from_resolved, read_and_resolve
from netpolgen.synthesize import SynthesisOptions
from tests import kube

NODE1, NODE2 = "172.18.0.2", "172.18.0.3"
FRONTEND, API, API_SVC, EXTERNAL = "10.244.1.10", "10.244.2.20", "10.96.0.20", "203.0.113.7"
MAC = "02:00:00:00:00:01"


def _objects() -> list[dict]:
    objs = [kube.namespace("shop"), kube.node("node-1", NODE1, "10.244.1.0/24"), kube.node("node-2", NODE2, "10.244.2.0/24")]
    objs += kube.deployment("shop", "frontend", {"app": "frontend"}, [("http", 8080, "TCP")])
    objs += [kube.rs_pod("shop", "frontend", "a", FRONTEND, {"app": "frontend"}, node="node-1", host_ip=NODE1,
                         ports=[("http", 8080, "TCP")])]
    objs += kube.deployment("shop", "api", {"app": "api"}, [("http", 5000, "TCP")])
    objs += [kube.rs_pod("shop", "api", "b", API, {"app": "api"}, node="node-2", host_ip=NODE2, ports=[("http", 5000, "TCP")])]
    objs += [kube.service("shop", "api", API_SVC, {"app": "api"}, [(80, "http", "TCP")])]
    return objs


def _handshake(src: str, sport: int, dst: str, dport: int, t0: float) -> list[tuple[float, object]]:
    """SYN, SYN-ACK, ACK and one data segment each way, as IP packets with their times."""
    return [
        (t0, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=1)),
        (t0 + 0.001, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="SA", seq=9, ack=2)),
        (t0 + 0.002, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=2, ack=10)),
        (t0 + 0.003, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=2, ack=10) / b"GET /"),
        (t0 + 0.004, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="PA", seq=10, ack=7) / b"200 OK"),
    ]


def _vxlan(outer_src: str, outer_dst: str, inner) -> object:
    return IP(src=outer_src, dst=outer_dst) / UDP(sport=51000, dport=4789) / VXLAN(vni=1) / Ether(src=MAC, dst=MAC) / inner


def _write(path: Path, packets: list[tuple[float, object]]) -> None:
    frames = []
    for t, p in sorted(packets, key=lambda x: x[0]):
        p.time = t
        frames.append(p)
    wrpcap(str(path), frames)


@pytest.fixture()
def captures(tmp_path: Path) -> list[str]:
    t = 1_700_000_000.0
    conn = _handshake(FRONTEND, 40000, API, 5000, t)  # after DNAT
    pre = _handshake(FRONTEND, 40000, API_SVC, 80, t)  # before DNAT, as the client's veth shows it
    node1 = [(ts, CookedLinux(pkttype=4, lladdrtype=1, proto=0x0800) / p) for ts, p in pre]
    node1 += [(ts + 0.0005, CookedLinux(pkttype=4, lladdrtype=1, proto=0x0800) /
               _vxlan(NODE1 if p[IP].src == FRONTEND else NODE2, NODE2 if p[IP].src == FRONTEND else NODE1, p))
              for ts, p in conn]
    skew = 30.0
    node2 = [(ts + skew, Ether(src=MAC, dst=MAC) / _vxlan(NODE1 if p[IP].src == FRONTEND else NODE2,
                                                           NODE2 if p[IP].src == FRONTEND else NODE1, p))
             for ts, p in conn]
    node2 += [(ts + skew + 0.0001, Ether(src=MAC, dst=MAC) / p) for ts, p in conn]
    egress_pod = _handshake(API, 41000, EXTERNAL, 443, t + 1)
    node2 += [(ts + skew, Ether(src=MAC, dst=MAC) / p) for ts, p in egress_pod]
    masq = _handshake(NODE2, 41000, EXTERNAL, 443, t + 1)
    node2 += [(ts + skew + 0.0002, Ether(src=MAC, dst=MAC) / p) for ts, p in masq]
    a, b = tmp_path / "node-1.pcap", tmp_path / "node-2.pcap"
    _write(a, node1)
    _write(b, node2)
    return [str(a), str(b)]


EXPECTED_POLICIES = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "default-deny", "namespace": "shop", "labels": {"app.kubernetes.io/managed-by": "netpolgen"}},
     "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "allow-api", "namespace": "shop", "labels": {"app.kubernetes.io/managed-by": "netpolgen"},
                  "annotations": {"netpolgen.io/workload": "shop/api[Deployment]"}},
     "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress", "Egress"],
              "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                           "ports": [{"port": 5000, "protocol": "TCP"}]}],
              "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.7/32"}}],
                          "ports": [{"port": 443, "protocol": "TCP"}]}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "allow-frontend", "namespace": "shop", "labels": {"app.kubernetes.io/managed-by": "netpolgen"},
                  "annotations": {"netpolgen.io/workload": "shop/frontend[Deployment]"}},
     "spec": {"podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
              "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                          "ports": [{"port": 5000, "protocol": "TCP"}]}]}},
]


def test_two_node_overlay_captures_give_the_hand_written_policies(captures: list[str]) -> None:
    resolved = read_and_resolve(captures, inventory_from_objects(_objects()))
    result = generate_from_resolved(resolved, SynthesisOptions())
    assert result.policies == EXPECTED_POLICIES
    assert result.self_check.denied == [] and result.self_check.checked == 2


def test_each_connection_counts_once_and_the_tunnel_is_no_connection(captures: list[str]) -> None:
    resolved = read_and_resolve(captures, inventory_from_objects(_objects()))
    flows = resolved.flows
    # Nothing from node to node on the VXLAN port: the tunnel was opened, not used as traffic.
    assert not ((flows["dst_port"] == 4789) | (flows["src_port"] == 4789)).any()
    assert flows["connections"].sum() == 2
    rep = resolved.report
    assert rep.sightings_merged >= 1  # the post-DNAT connection appears in both files
    assert rep.nat.dnat_merged == 1 and rep.nat.snat_merged == 1
    assert rep.unresolved == {}


def test_observed_window_is_reported_per_source_with_its_own_clock(captures: list[str]) -> None:
    resolved = read_and_resolve(captures, inventory_from_objects(_objects()))
    windows = {Path(s.path).name: (s.stats.first_seen, s.stats.last_seen) for s in resolved.sources}
    assert windows["node-1.pcap"][0] == pytest.approx(1_700_000_000.0)
    assert windows["node-2.pcap"][0] == pytest.approx(1_700_000_030.0)
