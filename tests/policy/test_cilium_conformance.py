"""The engine on Cilium policy (``netpolgen.policy.cilium``), one semantic per test, each case
taken from an example of the upstream documentation (the page is cited on the test) and asked
of both engine paths (``evaluate`` and ``evaluate_flows``), which must agree.

What Cilium resolves at run time (the addresses of a DNS name, of the ``host`` entity) comes
from the ``CiliumContext``: in a self-check, from the observed traffic.
"""

from __future__ import annotations

import pandas as pd
import pytest

from netpolgen.errors import PolicyError
from netpolgen.inventory import Inventory, Namespace, OwnerRef, Pod
from netpolgen.policy.cilium import CiliumContext, name_matches
from netpolgen.policy.kinds import policy_engine

NS = {n: Namespace(n, {"kubernetes.io/metadata.name": n}) for n in ("default", "other", "kube-system")}


def _pod(ns: str, name: str, labels: dict, ip: str) -> Pod:
    return Pod(ns, name, labels, (ip,), "192.168.0.1", False, owners=(OwnerRef("ReplicaSet", name + "-rs", "", True),))


PODS = [
    _pod("default", "frontend", {"role": "frontend"}, "10.0.0.1"),
    _pod("default", "backend", {"role": "backend"}, "10.0.0.2"),
    _pod("default", "other", {"role": "other"}, "10.0.0.3"),
    _pod("other", "frontend", {"role": "frontend"}, "10.0.1.1"),
    _pod("default", "dev", {"env": "dev"}, "10.0.0.4"),
    _pod("default", "svc", {"app": "myService"}, "10.0.0.5"),
    _pod("default", "test-app", {"app": "test-app"}, "10.0.0.6"),
    _pod("kube-system", "kube-dns", {"k8s-app": "kube-dns"}, "10.0.2.1"),
]
CONTEXT = CiliumContext(
    names={"my-remote-service.com": frozenset({"192.0.2.10"}), "other.example": frozenset({"192.0.2.11"})},
    entities={"host": frozenset({"192.168.0.1"}), "remote-node": frozenset({"192.168.0.2"})},
    namespaces=tuple(NS),
    cluster_ranges=("10.0.0.0/16", "192.168.0.1/32", "192.168.0.2/32"),
)


def cnp(name: str, spec: dict, ns: str = "default", kind: str = "CiliumNetworkPolicy") -> dict:
    meta = {"name": name, "namespace": ns} if kind == "CiliumNetworkPolicy" else {"name": name}
    return {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "spec": spec}


def ask(docs: list[dict], src: str, dst: str, port: int, proto: str = "TCP") -> bool:
    engine = policy_engine(Inventory(namespaces=dict(NS), pods=list(PODS)), docs, CONTEXT)
    one = engine.evaluate(src, dst, port, proto).allowed
    def ends(x: str) -> tuple[str, str]:
        return (x, "") if "/" in x else ("", x)
    (sp, si), (dp, di) = ends(src), ends(dst)
    bulk = engine.evaluate_flows(pd.DataFrame([{"src_pod": sp, "src_ip": si, "dst_pod": dp, "dst_ip": di,
                                                "dst_port": port, "proto": proto}]))["allowed"].iloc[0]
    assert one == bool(bulk)
    return one


# https://docs.cilium.io/en/stable/security/policy/language/ (Layer 3, "Endpoints Based": l3-rule)
L3_RULE = cnp("l3-rule", {"endpointSelector": {"matchLabels": {"role": "backend"}},
                          "ingress": [{"fromEndpoints": [{"matchLabels": {"role": "frontend"}}]}]})


def test_endpoints_based_ingress_admits_the_selected_peers_of_the_policy_namespace() -> None:
    assert ask([L3_RULE], "default/frontend", "default/backend", 80)
    assert not ask([L3_RULE], "default/other", "default/backend", 80)
    # A CiliumNetworkPolicy's peer selectors without a namespace label mean its own namespace.
    assert not ask([L3_RULE], "other/frontend", "default/backend", 80)


def test_a_namespace_label_in_the_peer_selector_names_the_peer_namespace() -> None:
    doc = cnp("cross", {"endpointSelector": {"matchLabels": {"role": "backend"}}, "ingress": [{"fromEndpoints": [
        {"matchLabels": {"role": "frontend", "k8s:io.kubernetes.pod.namespace": "other"}}]}]})
    assert ask([doc], "other/frontend", "default/backend", 80)
    assert not ask([doc], "default/frontend", "default/backend", 80)


def test_default_deny_is_per_direction_once_a_rule_with_that_section_selects_the_endpoint() -> None:
    """https://docs.cilium.io/en/stable/security/policy/intro/ ("Policy Enforcement Modes",
    default mode): an ingress section makes ingress default-deny; egress stays open."""
    assert not ask([L3_RULE], "default/other", "default/backend", 80)  # ingress isolated
    assert ask([L3_RULE], "default/backend", "default/other", 80)  # egress untouched
    assert ask([], "default/other", "default/backend", 80)  # nothing selects: all allowed


def test_the_empty_rule_admits_nothing_and_the_empty_list_isolates_nothing() -> None:
    """Cilium's Rule reference (the CRD's own field descriptions, in ../shared/schemas:
    ``ingress``/``egress`` "If omitted or empty, this rule does not apply"; ``enableDefaultDeny``
    "the default is true for each traffic direction that has rules"): ``ingress: [{}]`` (one rule
    that selects no peer) is the deny-all form, ``ingress: []`` leaves the endpoint open."""
    deny = cnp("deny", {"endpointSelector": {}, "ingress": [{}], "egress": [{}]})
    empty = cnp("empty", {"endpointSelector": {}, "ingress": []})
    assert not ask([deny], "default/frontend", "default/backend", 80)
    assert not ask([deny], "default/backend", "default/other", 80)
    assert ask([empty], "default/frontend", "default/backend", 80)


def test_rules_add_up_across_policies() -> None:
    deny = cnp("deny", {"endpointSelector": {}, "ingress": [{}]})
    assert not ask([deny], "default/frontend", "default/backend", 80)
    assert ask([deny, L3_RULE], "default/frontend", "default/backend", 80)


def test_to_ports_limits_the_port_and_protocol() -> None:
    """https://docs.cilium.io/en/stable/security/policy/language/ (Layer 4, "Limit ingress/egress
    ports": l4-rule allows egress to port 80/TCP only)."""
    doc = cnp("l4-rule", {"endpointSelector": {"matchLabels": {"role": "frontend"}},
                          "egress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]})
    assert ask([doc], "default/frontend", "192.0.2.99", 80)  # ports only: any peer on them
    assert ask([doc], "default/frontend", "default/backend", 80)
    assert not ask([doc], "default/frontend", "default/backend", 81)
    assert not ask([doc], "default/frontend", "default/backend", 80, "UDP")


def test_entities_host_is_the_node() -> None:
    """https://docs.cilium.io/en/stable/security/policy/language/ (Layer 3, "Entities Based":
    dev-to-host allows egress from env=dev to the host)."""
    doc = cnp("dev-to-host", {"endpointSelector": {"matchLabels": {"env": "dev"}}, "egress": [{"toEntities": ["host"]}]})
    assert ask([doc], "default/dev", "192.168.0.1", 9100)
    assert not ask([doc], "default/dev", "192.168.0.2", 9100)  # a remote node is remote-node
    assert not ask([doc], "default/dev", "default/backend", 9100)


def test_entities_world_is_outside_the_cluster() -> None:
    """Same page, from-world-to-role-public: ingress from world, i.e. not from pods or nodes."""
    doc = cnp("from-world", {"endpointSelector": {"matchLabels": {"role": "backend"}}, "ingress": [{"fromEntities": ["world"]}]})
    assert ask([doc], "198.51.100.1", "default/backend", 443)
    assert not ask([doc], "192.168.0.2", "default/backend", 443)  # a node is not world
    assert not ask([doc], "default/frontend", "default/backend", 443)


def test_cidr_and_cidr_set_with_except() -> None:
    """Same page, "IP/CIDR based": cidr-rule with toCIDR 20.1.1.1/32 and toCIDRSet 10.0.0.0/8
    except 10.96.0.0/12."""
    doc = cnp("cidr-rule", {"endpointSelector": {"matchLabels": {"app": "myService"}}, "egress": [
        {"toCIDR": ["20.1.1.1/32"]}, {"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}]}]})
    assert ask([doc], "default/svc", "20.1.1.1", 443)
    assert not ask([doc], "default/svc", "20.1.1.2", 443)
    assert ask([doc], "default/svc", "10.200.0.1", 443)
    assert not ask([doc], "default/svc", "10.96.0.5", 443)


DNS_RULE = {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}}],
            "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}]}


def test_to_fqdns_allows_the_addresses_dns_gave_the_name() -> None:
    """https://docs.cilium.io/en/stable/security/policy/language/ ("DNS based": to-fqdn, with the
    kube-dns rule carrying ``rules.dns`` so that the DNS proxy sees the lookups)."""
    doc = cnp("to-fqdn", {"endpointSelector": {"matchLabels": {"app": "test-app"}}, "egress": [
        DNS_RULE, {"toFQDNs": [{"matchName": "my-remote-service.com"}]}]})
    assert ask([doc], "default/test-app", "192.0.2.10", 443)
    assert not ask([doc], "default/test-app", "192.0.2.11", 443)  # another name's address
    assert ask([doc], "default/test-app", "kube-system/kube-dns", 53, "UDP")
    assert ask([doc], "default/test-app", "kube-system/kube-dns", 53, "TCP")  # ANY: both


def test_to_fqdns_without_a_dns_rule_learns_no_address() -> None:
    """Same page: toFQDNs IPs come from DNS answers the proxy intercepts; with no ``rules.dns``
    covering the name, nothing is learnt and the egress stays denied."""
    doc = cnp("no-dns-rule", {"endpointSelector": {"matchLabels": {"app": "test-app"}}, "egress": [
        {"toEndpoints": DNS_RULE["toEndpoints"], "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}]}]},
        {"toFQDNs": [{"matchName": "my-remote-service.com"}]}]})
    assert not ask([doc], "default/test-app", "192.0.2.10", 443)


@pytest.mark.parametrize(("pattern", "name", "want"), [
    ("*", "anything.example.com", True),
    ("*.cilium.io", "docs.cilium.io", True),
    ("*.cilium.io", "cilium.io", False),
    ("*.cilium.io", "a.b.cilium.io", False),
    ("api.github.com", "API.github.com.", True),
])
def test_match_pattern_wildcards(pattern: str, name: str, want: bool) -> None:
    """Same page ("DNS based", matchPattern): ``*.cilium.io`` matches subdomains of cilium.io,
    not cilium.io itself; ``*`` alone matches every name; matching ignores case and the final dot."""
    assert name_matches(pattern, name) is want


def test_a_clusterwide_policy_applies_in_every_namespace_its_selector_admits() -> None:
    """https://docs.cilium.io/en/stable/network/servicemesh/default-deny-ingress-policy/ : a
    CiliumClusterwideNetworkPolicy selecting every namespace but kube-system, egress only to
    kube-dns."""
    doc = cnp("default-deny", {"endpointSelector": {"matchExpressions": [
        {"key": "io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["kube-system"]}]},
        "egress": [DNS_RULE]}, kind="CiliumClusterwideNetworkPolicy")
    assert ask([doc], "default/frontend", "kube-system/kube-dns", 53, "UDP")
    assert not ask([doc], "default/frontend", "default/backend", 80)
    assert not ask([doc], "other/frontend", "default/backend", 80)
    assert ask([doc], "kube-system/kube-dns", "default/backend", 80)  # not selected


@pytest.mark.parametrize(("spec", "where"), [
    ({"endpointSelector": {}, "ingressDeny": [{"fromEntities": ["world"]}]}, "spec.ingressDeny"),
    ({"endpointSelector": {}, "egress": [{"toServices": [{"k8sService": {"serviceName": "x"}}]}]}, "toServices"),
    ({"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "80"}], "rules": {"http": [{}]}}]}]}, "rules"),
    ({"nodeSelector": {}, "ingress": [{}]}, "spec"),
])
def test_what_the_subset_does_not_cover_is_refused_not_skipped(spec: dict, where: str) -> None:
    with pytest.raises(PolicyError) as e:
        policy_engine(Inventory(namespaces=dict(NS), pods=list(PODS)), [cnp("x", spec)], CONTEXT)
    assert where in str(e.value)


def test_a_kind_the_engine_cannot_evaluate_is_refused() -> None:
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(PolicyError) as e:
        policy_engine(Inventory(namespaces=dict(NS), pods=list(PODS)), [doc], CONTEXT)
    assert "cannot self-check kind 'GlobalNetworkPolicy'" in str(e.value)
