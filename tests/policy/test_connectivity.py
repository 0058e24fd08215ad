"""Workload-level connectivity and the policy-set diff, against the reference evaluator.

Connectivity is computed once per class of pods and atom of addresses; the reference asks one
connection at a time. For random clusters and policy sets, every probe (protocol, port) between
every two pods, and between pods and outside addresses, must agree.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.diff import ADDED, CHANGED, REMOVED, diff_policy_sets, policy_ranges
from netpolgen.policy import parse_policies
from netpolgen.policy.connectivity import compute_connectivity, format_connlist
from netpolgen.policy.conns import ConnSet
from netpolgen.policy.ipspace import parse_ip
from tests.policy.world import EXTERNAL_IPS, PROBE_PORTS, PROTOCOLS, policies_st, world_st


def probes(world) -> list[tuple[str, int]]:
    declared = {(proto, num) for p in world.pods for _, proto, num in p.ports}
    return sorted({(proto, port) for proto in PROTOCOLS for port in PROBE_PORTS} | declared)


@settings(max_examples=120, deadline=None)
@given(world_st())
def test_pod_level_connectivity_matches_the_reference(world) -> None:
    inv = world.inventory()
    conn = compute_connectivity(inv, parse_policies(world.policies), workload_name=lambda p: p.key)
    ref = world.reference()
    pods = [p for p in world.pods if not p.host_network]
    assert set(conn.workloads) == {p.key for p in pods}
    for a in pods:
        for b in pods:
            if a is b:
                continue
            got = conn.conns.get((a.key, b.key), ConnSet.none())
            for proto, port in probes(world):
                assert got.contains(proto, port) == all(ref.allowed(a.key, b.key, port, proto)), (a.key, b.key, proto, port)
        for ip in EXTERNAL_IPS:
            if ip == a.host_ip:
                continue  # node-local traffic is always allowed, whatever the atom says
            out_peer, in_peer = None, None
            for (s, d), c in conn.conns.items():
                if s == a.key and d in conn.ip_ranges and conn.ip_ranges[d].contains(*parse_ip(ip)):
                    out_peer = c
                if d == a.key and s in conn.ip_ranges and conn.ip_ranges[s].contains(*parse_ip(ip)):
                    in_peer = c
            for proto, port in probes(world):
                if ":" in ip and not any(r.family == 6 for r in conn.ip_ranges.values()):
                    continue  # IPv6 atoms appear only when something uses IPv6
                assert (out_peer or ConnSet.none()).contains(proto, port) == all(ref.allowed(a.key, ip, port, proto)), (a.key, ip, proto, port)
                assert (in_peer or ConnSet.none()).contains(proto, port) == all(ref.allowed(ip, a.key, port, proto)), (ip, a.key, proto, port)


@settings(max_examples=120, deadline=None)
@given(world_st())
def test_a_workload_pair_allows_what_some_pair_of_its_pods_allows(world) -> None:
    inv = world.inventory()
    conn = compute_connectivity(inv, parse_policies(world.policies))
    ref = world.reference()
    by_workload: dict[str, list] = {}
    for p in world.pods:
        if not p.host_network:
            by_workload.setdefault(str(inv.workload_of(inv.pod(p.key))), []).append(p)
    for wa, pa in by_workload.items():
        for wb, pb in by_workload.items():
            if wa == wb:
                continue
            got = conn.conns.get((wa, wb), ConnSet.none())
            for proto, port in probes(world):
                expected = any(all(ref.allowed(x.key, y.key, port, proto)) for x in pa for y in pb)
                assert got.contains(proto, port) == expected, (wa, wb, proto, port)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_the_policy_set_diff_turns_old_connectivity_into_new(data) -> None:
    world = data.draw(world_st())
    new_docs = data.draw(policies_st(world.pods))
    inv = world.inventory()
    old, new = parse_policies(world.policies), parse_policies(new_docs)
    d = diff_policy_sets(inv, old, new)
    c_old = compute_connectivity(inv, old)
    c_new = compute_connectivity(inv, new)
    workload_pairs = {k for k in set(c_old.conns) | set(c_new.conns)
                      if k[0] not in c_old.ip_ranges | c_new.ip_ranges and k[1] not in c_old.ip_ranges | c_new.ip_ranges}
    entries = {(e.src, e.dst): e for e in d.entries}
    for key in workload_pairs:
        before, after = c_old.conns.get(key, ConnSet.none()), c_new.conns.get(key, ConnSet.none())
        e = entries.get(key)
        if before == after:
            assert e is None
        else:
            assert (e.old, e.new) == (before, after)
            assert e.kind == (ADDED if before.is_empty else REMOVED if after.is_empty else CHANGED)
    cuts = policy_ranges(old, new)
    assert d.equivalent == (format_connlist(compute_connectivity(inv, old, extra_ranges=cuts))
                            == format_connlist(compute_connectivity(inv, new, extra_ranges=cuts)))



# ----- explicit cases ----------------------------------------------------------------------------

from netpolgen.inventory import ContainerPort, Inventory, OwnerRef, Pod  # noqa: E402


def _pod(name: str, app: str, ip: str, ports=(), ns: str = "prod") -> Pod:
    return Pod(ns, name, {"app": app}, (ip,), "192.168.0.1",
               ports=tuple(ContainerPort(n, "TCP", pname) for pname, n in ports),
               owners=(OwnerRef("ReplicaSet", f"{app}-rs", "", True),))


def _np(name: str, **spec) -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "prod"}, "spec": spec}


INV = Inventory(pods=[_pod("web-1", "web", "10.0.0.1"), _pod("db-1", "db", "10.0.0.2", [("sql", 5432)]),
                      _pod("db-2", "db", "10.0.0.3", [("sql", 5433)])])


def test_egress_named_ports_resolve_on_the_destination_workload():
    conn = compute_connectivity(INV, parse_policies([_np("p", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                                                         egress=[{"ports": [{"port": "sql"}]}])]))
    # db's two pods number "sql" differently: the workload pair allows both numbers.
    assert str(conn.conns[("prod/web-rs[ReplicaSet]", "prod/db-rs[ReplicaSet]")]) == "TCP 5432-5433"
    assert ("prod/web-rs[ReplicaSet]", "0.0.0.0-255.255.255.255[External]") not in conn.conns


def test_address_atoms_are_cut_by_the_ip_blocks_of_their_own_direction_only():
    conn = compute_connectivity(INV, parse_policies([
        _np("in", podSelector={"matchLabels": {"app": "db"}}, ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]),
        _np("out", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "8.8.8.8/32"}}], "ports": [{"port": 53, "protocol": "UDP"}]}]),
    ]))
    sources = sorted({s for s, d in conn.conns if s in conn.ip_ranges})
    destinations = sorted({d for s, d in conn.conns if d in conn.ip_ranges})
    assert sources == ["0.0.0.0-9.255.255.255[External]", "10.0.0.0-10.255.255.255[External]", "11.0.0.0-255.255.255.255[External]"]
    assert destinations == ["0.0.0.0-8.8.8.7[External]", "8.8.8.8-8.8.8.8[External]", "8.8.8.9-255.255.255.255[External]"]
    web_out = {d: str(c) for (s, d), c in conn.conns.items() if s == "prod/web-rs[ReplicaSet]" and d in conn.ip_ranges}
    assert web_out == {"8.8.8.8-8.8.8.8[External]": "UDP 53"}
    assert "prod/db-rs[ReplicaSet]" not in {d for s, d in conn.conns if s == "0.0.0.0-9.255.255.255[External]"}


def test_ipv6_ranges_appear_when_a_policy_uses_ipv6():
    conn = compute_connectivity(INV, parse_policies([_np("p", podSelector={}, ingress=[{"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]}])]))
    v6 = sorted(n for n, r in conn.ip_ranges.items() if r.family == 6)
    assert "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff[External]" in v6


def test_connlist_text_is_sorted_by_source_then_destination():
    text = format_connlist(compute_connectivity(INV, []))
    lines = text.splitlines()
    assert lines == sorted(lines, key=lambda line: tuple(line.split(" : ")[0].split(" => ")))
    assert "prod/db-rs[ReplicaSet] => prod/web-rs[ReplicaSet] : All Connections" in lines
