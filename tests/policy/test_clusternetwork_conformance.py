"""The engine on ClusterNetworkPolicy tiers (``netpolgen.policy.clusternetwork``), after the
network-policy-api documentation: https://network-policy-api.sigs.k8s.io/api-overview/ (tiers:
Admin, then NetworkPolicy, then Baseline; actions Accept, Deny, Pass; lower ``priority`` first;
the field descriptions of the CRD in ../shared/schemas say the same) and the user stories of
https://network-policy-api.sigs.k8s.io/reference/examples/ (isolate a sensitive namespace,
always allow monitoring, delegate with Pass, a default-deny baseline that namespace
NetworkPolicies override), written here as small cases.
"""

from __future__ import annotations

import pandas as pd

from netpolgen.inventory import Inventory, Namespace, OwnerRef, Pod
from netpolgen.policy.kinds import policy_engine

NS = {
    "sensitive": Namespace("sensitive", {"kubernetes.io/metadata.name": "sensitive", "security": "internal"}),
    "monitoring": Namespace("monitoring", {"kubernetes.io/metadata.name": "monitoring"}),
    "app": Namespace("app", {"kubernetes.io/metadata.name": "app"}),
}


def _pod(ns: str, name: str, labels: dict, ip: str) -> Pod:
    return Pod(ns, name, labels, (ip,), "192.168.0.1", False, owners=(OwnerRef("ReplicaSet", name + "-rs", "", True),))


PODS = [
    _pod("sensitive", "vault", {"app": "vault"}, "10.0.0.1"),
    _pod("monitoring", "prometheus", {"app": "prometheus"}, "10.0.1.1"),
    _pod("app", "web", {"app": "web"}, "10.0.2.1"),
    _pod("app", "api", {"app": "api"}, "10.0.2.2"),
]
INV = Inventory(namespaces=dict(NS), pods=list(PODS))


def cnp(name: str, tier: str, priority: int, subject: dict, ingress: list | None = None, egress: list | None = None) -> dict:
    spec: dict = {"tier": tier, "priority": priority, "subject": subject}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


def np(name: str, ns: str, selector: dict, ingress: list) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress}}


def allowed(docs: list[dict], src: str, dst: str, port: int, proto: str = "TCP") -> bool:
    engine = policy_engine(INV, docs)
    row = pd.DataFrame([{"src_pod": src, "src_ip": "", "dst_pod": dst, "dst_ip": "", "dst_port": port, "proto": proto}])
    return bool(engine.evaluate_flows(row)["allowed"].iloc[0])


SENSITIVE = {"namespaces": {"matchLabels": {"security": "internal"}}}
ALL = {"namespaces": {}}
FROM_MONITORING = [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_admin_deny_overrides_a_namespace_networkpolicy_allow() -> None:
    """Example "isolate the sensitive namespace": an Admin Deny is final, whatever NetworkPolicy
    says."""
    deny = cnp("isolate", "Admin", 10, SENSITIVE, ingress=[{"action": "Deny", "from": [{"namespaces": {}}]}])
    allow_np = np("allow-all", "sensitive", {}, [{}])
    assert allowed([allow_np], "app/web", "sensitive/vault", 8200)
    assert not allowed([deny, allow_np], "app/web", "sensitive/vault", 8200)


def test_admin_accept_beats_a_networkpolicy_deny() -> None:
    """Example "always allow monitoring": Accept in the Admin tier is final even where a
    NetworkPolicy isolates the pod."""
    accept = cnp("monitoring", "Admin", 5, ALL, ingress=[{"action": "Accept", "from": FROM_MONITORING}])
    deny_np = np("deny", "app", {}, [])
    assert not allowed([deny_np], "monitoring/prometheus", "app/web", 9090)
    assert allowed([accept, deny_np], "monitoring/prometheus", "app/web", 9090)
    assert not allowed([accept, deny_np], "app/api", "app/web", 9090)  # not from monitoring


def test_lower_priority_number_is_checked_first() -> None:
    accept = cnp("accept", "Admin", 1, SENSITIVE, ingress=[{"action": "Accept", "from": FROM_MONITORING}])
    deny = cnp("deny", "Admin", 2, SENSITIVE, ingress=[{"action": "Deny", "from": [{"namespaces": {}}]}])
    assert allowed([accept, deny], "monitoring/prometheus", "sensitive/vault", 9090)
    later_accept = cnp("accept", "Admin", 3, SENSITIVE, ingress=[{"action": "Accept", "from": FROM_MONITORING}])
    assert not allowed([later_accept, deny], "monitoring/prometheus", "sensitive/vault", 9090)


def test_pass_skips_the_admin_tier_and_lets_networkpolicy_decide() -> None:
    """Example "delegate to namespace owners": Pass hands the decision to NetworkPolicy, then
    Baseline."""
    passing = cnp("pass", "Admin", 1, ALL, ingress=[{"action": "Pass", "from": FROM_MONITORING}])
    deny = cnp("deny", "Admin", 2, ALL, ingress=[{"action": "Deny", "from": FROM_MONITORING}])
    allow_np = np("allow-mon", "app", {"matchLabels": {"app": "web"}}, [{"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}])
    assert allowed([passing, deny, allow_np], "monitoring/prometheus", "app/web", 9090)
    assert not allowed([deny, allow_np], "monitoring/prometheus", "app/web", 9090)
    assert allowed([passing, deny], "monitoring/prometheus", "app/web", 9090)  # nothing below denies


def test_baseline_applies_only_where_no_networkpolicy_isolates() -> None:
    """Example "default deny baseline": the Baseline tier denies what nothing above allowed,
    and a namespace NetworkPolicy selecting the pod replaces it for that pod."""
    baseline = cnp("baseline", "Baseline", 100, ALL, ingress=[
        {"action": "Accept", "from": FROM_MONITORING, "protocols": [{"tcp": {"destinationPort": {"number": 9090}}}]},
        {"action": "Deny", "from": [{"namespaces": {}}]}])
    assert not allowed([baseline], "app/web", "app/api", 8080)
    assert allowed([baseline], "monitoring/prometheus", "app/api", 9090)
    assert not allowed([baseline], "monitoring/prometheus", "app/api", 9091)  # port matters
    allow_np = np("allow-web", "app", {"matchLabels": {"app": "api"}}, [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}])
    assert allowed([baseline, allow_np], "app/web", "app/api", 8080)
    # The NetworkPolicy now isolates api: the baseline's monitoring Accept no longer counts for it.
    assert not allowed([baseline, allow_np], "monitoring/prometheus", "app/api", 9090)


def test_egress_networks_match_outside_addresses() -> None:
    baseline = cnp("baseline", "Baseline", 100, ALL, egress=[
        {"action": "Accept", "to": [{"networks": ["203.0.113.0/24"]}]},
        {"action": "Deny", "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}])
    engine = policy_engine(INV, [baseline])
    rows = pd.DataFrame([{"src_pod": "app/web", "src_ip": "", "dst_pod": "", "dst_ip": ip, "dst_port": 443, "proto": "TCP"}
                         for ip in ("203.0.113.9", "198.51.100.1")])
    assert engine.evaluate_flows(rows)["allowed"].tolist() == [True, False]
