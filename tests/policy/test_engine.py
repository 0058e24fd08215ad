"""Unit tests of the engine's semantics, one rule of networking.k8s.io/v1 per test.

Every case is asked of both paths (``evaluate`` and ``evaluate_flows``) through ``ask``, which
fails if they disagree, so each test also pins the bulk path on that rule.
"""

from __future__ import annotations

import pandas as pd
import pytest

from netpolgen.errors import InventoryError
from netpolgen.inventory import ContainerPort, Inventory, Namespace, OwnerRef, Pod
from netpolgen.policy import Engine, RuleRef, parse_policies
from netpolgen.policy.verdict import Verdict

NAMESPACES = {
    "prod": Namespace("prod", {"kubernetes.io/metadata.name": "prod", "env": "prod"}),
    "dev": Namespace("dev", {"kubernetes.io/metadata.name": "dev", "env": "dev"}),
}


def pod(ns: str, name: str, labels: dict, ip: str, ports=(), host_network: bool = False, host_ip: str = "192.168.0.1") -> Pod:
    return Pod(ns, name, labels, (ip,), host_ip, host_network,
               ports=tuple(ContainerPort(n, proto, pname) for pname, proto, n in ports),
               owners=(OwnerRef("ReplicaSet", name + "-rs", "", True),))


PODS = [
    pod("prod", "web", {"app": "web", "tier": "front"}, "10.1.0.1", [("http", "TCP", 8080)]),
    pod("prod", "db", {"app": "db"}, "10.1.0.2", [("db", "TCP", 5432), ("http", "TCP", 9000)]),
    pod("prod", "cache", {"app": "cache", "tier": "back"}, "10.1.0.3", [("dns", "UDP", 53)], host_ip="192.168.0.2"),
    pod("dev", "web", {"app": "web"}, "10.2.0.1", [("http", "TCP", 8081)]),
    pod("prod", "agent", {"app": "agent"}, "192.168.0.2", host_network=True, host_ip="192.168.0.2"),
]


def policy(name: str, ns: str = "prod", selector: dict | None = None, **spec) -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": selector or {}, **spec}}


def engine(*policies: dict, pods=PODS) -> Engine:
    return Engine(Inventory(namespaces=dict(NAMESPACES), pods=list(pods)), parse_policies(list(policies)))


def _address(e: Engine, end: str) -> tuple[str, str]:
    p = e.inventory.pod(end)
    return (end, p.ips[0]) if p is not None else ("", end)


def ask(e: Engine, src: str, dst: str, port: int, proto: str = "TCP") -> Verdict:
    """Both paths; they must agree."""
    v = e.evaluate(src, dst, port, proto)
    sp, si = _address(e, src)
    dp, di = _address(e, dst)
    row = e.evaluate_flows(pd.DataFrame([{"src_pod": sp, "src_ip": si, "dst_pod": dp, "dst_ip": di,
                                          "dst_port": port, "proto": proto}])).iloc[0]
    assert (bool(row["egress_allowed"]), bool(row["ingress_allowed"])) == (v.egress_allowed, v.ingress_allowed), (v, row.to_dict())
    return v


def test_without_policies_everything_is_allowed_and_nothing_isolated():
    v = ask(engine(), "prod/web", "prod/db", 5432)
    assert v.allowed and not v.egress.isolated and not v.ingress.isolated


def test_a_policy_selecting_the_destination_with_no_ingress_rules_denies_ingress_only():
    v = ask(engine(policy("deny", selector={"matchLabels": {"app": "db"}})), "prod/web", "prod/db", 5432)
    assert not v.allowed and v.egress_allowed and not v.ingress_allowed
    assert v.ingress.policies == ("prod/deny",) and v.deciding_policies == ("prod/deny",)


def test_isolation_is_per_direction():
    e = engine(policy("no-egress", selector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"]))
    out = ask(e, "prod/web", "prod/db", 5432)
    assert not out.egress_allowed and out.ingress_allowed
    inbound = ask(e, "prod/db", "prod/web", 8080)
    assert inbound.allowed and not inbound.ingress.isolated


def test_policy_types_default_to_ingress_plus_egress_only_when_egress_rules_exist():
    with_egress = engine(policy("p", egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]))
    assert not ask(with_egress, "prod/web", "prod/cache", 53, "UDP").egress_allowed  # egress now isolated
    assert not ask(with_egress, "prod/web", "prod/db", 5432).ingress_allowed  # and Ingress with no rules
    without_egress = engine(policy("p", ingress=[{}]))
    assert ask(without_egress, "prod/web", "8.8.8.8", 443).allowed  # egress untouched


def test_rules_of_a_direction_missing_from_policy_types_are_ignored():
    e = engine(policy("p", policyTypes=["Ingress"], ingress=[{}], egress=[{"to": [{"ipBlock": {"cidr": "1.1.1.1/32"}}]}]))
    v = ask(e, "prod/web", "8.8.8.8", 443)
    assert v.allowed and not v.egress.isolated


def test_a_peer_with_both_selectors_needs_both_and_two_peers_need_either():
    both = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"env": "dev"}}, "podSelector": {"matchLabels": {"app": "web"}}}]}]))
    assert ask(both, "dev/web", "prod/db", 5432).allowed
    assert not ask(both, "prod/web", "prod/db", 5432).allowed  # right pod, wrong namespace
    either = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"env": "dev"}}}, {"podSelector": {"matchLabels": {"app": "web"}}}]}]))
    assert ask(either, "prod/web", "prod/db", 5432).allowed  # second peer (policy's namespace)
    assert ask(either, "dev/web", "prod/db", 5432).allowed  # first peer


def test_a_pod_selector_alone_means_the_policys_namespace_and_an_empty_namespace_selector_means_all():
    own = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]))
    assert not ask(own, "dev/web", "prod/db", 5432).allowed
    anywhere = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"from": [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}]}]))
    assert ask(anywhere, "dev/web", "prod/db", 5432).allowed
    assert not ask(anywhere, "8.8.8.8", "prod/db", 5432).allowed  # selectors never match addresses


@pytest.mark.parametrize("expr, web_allowed, cache_allowed", [
    ({"key": "tier", "operator": "In", "values": ["front"]}, True, False),
    ({"key": "tier", "operator": "NotIn", "values": ["front"]}, False, True),
    ({"key": "tier", "operator": "Exists"}, True, True),
    ({"key": "tier", "operator": "DoesNotExist"}, False, False),
])
def test_match_expressions_operators(expr, web_allowed, cache_allowed):
    e = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"from": [{"podSelector": {"matchExpressions": [expr]}}]}]))
    assert ask(e, "prod/web", "prod/db", 5432).allowed is web_allowed
    assert ask(e, "prod/cache", "prod/db", 5432).allowed is cache_allowed


def test_not_in_and_does_not_exist_match_pods_without_the_key():
    e = engine(policy("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [
        {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}]}}]}]))
    assert ask(e, "prod/db", "prod/web", 8080).allowed  # db has no tier label


def test_ip_block_with_except_ipv4_and_ipv6():
    e = engine(policy("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [
        {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}},
        {"ipBlock": {"cidr": "2001:db8::/32"}}]}]))
    assert ask(e, "203.0.113.5", "prod/web", 8080).allowed
    assert not ask(e, "203.0.113.200", "prod/web", 8080).allowed
    assert ask(e, "2001:db8::1", "prod/web", 8080).allowed
    assert not ask(e, "2001:db9::1", "prod/web", 8080).allowed


def test_ip_blocks_do_not_select_pods_even_when_their_address_is_inside():
    e = engine(policy("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]))
    assert not ask(e, "prod/db", "prod/web", 8080).allowed
    assert ask(e, "10.9.9.9", "prod/web", 8080).allowed


def test_ports_protocol_defaults_to_tcp_and_end_port_is_inclusive():
    e = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"ports": [
        {"port": 5432}, {"protocol": "UDP", "port": 5000, "endPort": 5010}, {"protocol": "SCTP"}]}]))
    assert ask(e, "prod/web", "prod/db", 5432, "TCP").allowed
    assert not ask(e, "prod/web", "prod/db", 5432, "UDP").allowed
    assert ask(e, "prod/web", "prod/db", 5010, "UDP").allowed and not ask(e, "prod/web", "prod/db", 5011, "UDP").allowed
    assert ask(e, "prod/web", "prod/db", 1, "SCTP").allowed  # a protocol without a port: all its ports


def test_a_rule_without_ports_allows_every_port_and_protocol():
    e = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"from": [{"podSelector": {}}]}]))
    for port, proto in ((1, "TCP"), (65535, "UDP"), (7, "SCTP")):
        assert ask(e, "prod/web", "prod/db", port, proto).allowed


def test_named_ports_resolve_on_each_destination_pod():
    e = engine(policy("p", selector={}, ingress=[{"ports": [{"port": "http"}]}]))
    assert ask(e, "prod/cache", "prod/web", 8080).allowed  # web: http = 8080
    assert not ask(e, "prod/cache", "prod/web", 9000).allowed
    assert ask(e, "prod/cache", "prod/db", 9000).allowed  # db: http = 9000
    assert not ask(e, "prod/cache", "prod/db", 8080).allowed


def test_egress_named_ports_resolve_on_the_destination_and_never_match_an_address():
    e = engine(policy("p", selector={"matchLabels": {"app": "cache"}}, policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}]))
    assert ask(e, "prod/cache", "prod/db", 9000).allowed  # the source (cache) has no "http" port
    assert not ask(e, "prod/cache", "prod/db", 8080).allowed
    assert not ask(e, "prod/cache", "8.8.8.8", 8080).allowed


def test_a_named_port_is_tied_to_its_protocol():
    e = engine(policy("p", selector={"matchLabels": {"app": "cache"}}, ingress=[{"ports": [{"port": "dns"}]}]))
    assert not ask(e, "prod/web", "prod/cache", 53, "TCP").allowed  # rule protocol defaults to TCP; dns is UDP
    e = engine(policy("p", selector={"matchLabels": {"app": "cache"}}, ingress=[{"ports": [{"port": "dns", "protocol": "UDP"}]}]))
    assert ask(e, "prod/web", "prod/cache", 53, "UDP").allowed


def test_policies_add_up():
    e = engine(policy("a", selector={"matchLabels": {"app": "db"}}, ingress=[{"ports": [{"port": 5432}]}]),
               policy("b", selector={"matchLabels": {"app": "db"}}, ingress=[{"ports": [{"port": 9000}]}]))
    v = ask(e, "prod/web", "prod/db", 9000)
    assert v.allowed and v.ingress.policies == ("prod/a", "prod/b") and v.ingress.rules == (RuleRef("prod/b", "ingress", 0),)


def test_host_network_pods_are_addresses_that_only_ip_blocks_select():
    e = engine(policy("p", selector={"matchLabels": {"app": "web"}}, ingress=[
        {"from": [{"podSelector": {"matchLabels": {"app": "agent"}}}]},
    ]))
    v = ask(e, "prod/agent", "prod/web", 8080)
    assert not v.allowed and any("hostNetwork" in n for n in v.notes)
    e = engine(policy("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [{"ipBlock": {"cidr": "192.168.0.2/32"}}]}]))
    assert ask(e, "prod/agent", "prod/web", 8080).allowed


def test_traffic_between_a_pod_and_its_own_node_is_always_allowed():
    e = engine(policy("deny-all", policyTypes=["Ingress", "Egress"]))
    assert ask(e, "192.168.0.1", "prod/web", 8080).allowed  # web runs on 192.168.0.1
    assert ask(e, "prod/web", "192.168.0.1", 10250).allowed
    assert not ask(e, "192.168.0.2", "prod/web", 8080).allowed  # another node
    assert ask(e, "prod/agent", "prod/cache", 53, "UDP").allowed  # hostNetwork agent shares cache's node


def test_unknown_endpoints_are_a_user_error():
    with pytest.raises(InventoryError) as err:
        engine().evaluate("prod/nope", "prod/web", 80, "TCP")
    assert "prod/nope" in err.value.line()


def test_bulk_falls_back_to_the_address_for_unknown_pods_and_keeps_the_callers_index():
    e = engine(policy("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [{"ipBlock": {"cidr": "10.9.0.0/16"}}]}]))
    df = pd.DataFrame(
        {"src_pod": ["prod/ghost", "", None], "src_ip": ["10.9.0.1", "", "10.9.0.2"], "dst_pod": ["prod/web"] * 3,
         "dst_ip": ["10.1.0.1"] * 3, "dst_port": [8080] * 3, "proto": ["tcp", "TCP", "TCP"]},
        index=["x", "y", "z"],
    )
    out = e.evaluate_flows(df)
    assert list(out.index) == ["x", "y", "z"]
    # The ghost pod is judged by its address; no address at all matches no ipBlock.
    assert out["allowed"].tolist() == [True, False, True]
    assert out.loc["y", "isolating_policies"] == "prod/p" and out.loc["x", "isolating_policies"] == ""


def test_bulk_of_an_empty_table_is_an_empty_table():
    out = engine(policy("p")).evaluate_flows(pd.DataFrame(columns=["src_pod", "src_ip", "dst_pod", "dst_ip", "dst_port", "proto"]))
    assert out.empty and "allowed" in out.columns


def test_bulk_names_the_columns_it_misses():
    with pytest.raises(ValueError, match="missing: dst_port, proto"):
        engine().evaluate_flows(pd.DataFrame({"src_pod": [""], "src_ip": [""], "dst_pod": [""], "dst_ip": [""]}))


def test_engine_connectivity_is_the_workload_level_view_of_the_same_policies():
    e = engine(policy("p", selector={"matchLabels": {"app": "db"}}, ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                                                          "ports": [{"port": "db"}]}]))
    conn = e.connectivity()
    assert str(conn.conns[("prod/web-rs[ReplicaSet]", "prod/db-rs[ReplicaSet]")]) == "TCP 5432"
    assert ("prod/cache-rs[ReplicaSet]", "prod/db-rs[ReplicaSet]") not in conn.conns
