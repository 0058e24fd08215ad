"""The rule model as a ClusterNetworkPolicy baseline (``policy.networking.k8s.io/v1alpha2``,
network-policy-api v0.2.0) with namespace NetworkPolicies on top.

The Baseline tier is evaluated after NetworkPolicies: a pod that a NetworkPolicy selects in a
direction is decided there, and only the others fall through to the baseline. So the output is
one Baseline ClusterNetworkPolicy over the namespaces of the model (Accept what every namespace
was seen to need, ``baseline.shared_rules``; then Deny the rest) and the workloads'
NetworkPolicies unchanged, without the per-namespace default-deny the baseline replaces.
Outside addresses are ``networks`` CIDRs; the standard channel has no ``domainNames`` and no
``nodes`` peer. Ingress from outside the cluster cannot be denied by it (no ingress
``networks``): a pod no NetworkPolicy selects stays open to outside addresses at ingress.
"""

from __future__ import annotations

import json
from collections import defaultdict

from netpolgen.baseline import shared_rules
from netpolgen.model import EGRESS, INGRESS, CidrPeer, NodePeer, PolicyModel, Rule, WorkloadPeer
from netpolgen.renderers.naming import MANAGED_BY
from netpolgen.renderers.networkpolicy import NAMESPACE_NAME_LABEL, NetworkPolicyRenderer

API_VERSION = "policy.networking.k8s.io/v1alpha2"
KIND = "ClusterNetworkPolicy"
BASELINE_NAME = "netpolgen-baseline"
BASELINE_PRIORITY = 100


class ClusterNetworkPolicyRenderer:
    kinds: tuple[str, ...] = (KIND, "NetworkPolicy")
    peer_kinds: tuple[type, ...] = (WorkloadPeer, NodePeer, CidrPeer)

    def __init__(self, egress: bool = True) -> None:
        self.egress = egress

    def render(self, model: PolicyModel) -> list[dict]:
        namespaced = [p for p in NetworkPolicyRenderer(egress=self.egress).render(model)
                      if p["metadata"]["name"] != "default-deny" or p["spec"].get("podSelector")]
        if not model.namespaces:
            return namespaced
        return [self._baseline(model)] + namespaced

    def _baseline(self, model: PolicyModel) -> dict:
        shared = shared_rules(model)
        ingress = _rules(shared.ingress, "from") + [{
            "name": "deny-the-rest", "action": "Deny", "from": [{"namespaces": {}}]}]
        spec: dict = {
            "tier": "Baseline",
            "priority": BASELINE_PRIORITY,
            "subject": {"namespaces": {"matchExpressions": [
                {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(model.namespaces)}]}},
            "ingress": ingress,
        }
        if self.egress and EGRESS in model.directions:
            spec["egress"] = _rules(shared.egress, "to") + [{
                "name": "deny-the-rest", "action": "Deny",
                "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}]
        if INGRESS not in model.directions:
            spec.pop("ingress")
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": BASELINE_NAME, "labels": dict(MANAGED_BY)},
            "spec": spec,
        }


def _rules(rules: tuple[Rule, ...], key: str) -> list[dict]:
    ports_of: dict[str, set[tuple[str, int, int | None]]] = defaultdict(set)
    peers: dict[str, dict] = {}
    for r in rules:
        peer = _peer(r)
        text = json.dumps(peer, sort_keys=True)
        peers[text] = peer
        ports_of[text].add((r.port.protocol, r.port.port, r.port.end_port))
    by_ports: dict[tuple, list[str]] = defaultdict(list)
    for text, port_set in ports_of.items():
        by_ports[tuple(sorted(port_set, key=lambda x: (x[1], x[0], x[2] or 0)))].append(text)
    out = []
    for i, (ports, texts) in enumerate(sorted(by_ports.items(), key=lambda kv: (kv[0], sorted(kv[1])))):
        out.append({
            "name": f"seen-in-every-namespace-{i}",
            "action": "Accept",
            key: _merge_networks([peers[t] for t in sorted(texts)]),
            "protocols": [_protocol(proto, port, end) for proto, port, end in ports],
        })
    return out


def _peer(r: Rule) -> dict:
    p = r.peer
    if isinstance(p, WorkloadPeer):
        return {"pods": {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: p.namespace}},
                         "podSelector": p.selector.to_dict()}}
    if isinstance(p, CidrPeer):
        return {"networks": [p.cidr]}
    raise TypeError(f"a ClusterNetworkPolicy baseline cannot express a {type(p).__name__}")


def _merge_networks(peers: list[dict]) -> list[dict]:
    """Every CIDR of a rule in one ``networks`` peer (a list of CIDRs is already OR)."""
    nets = sorted({c for p in peers for c in p.get("networks", [])})
    rest = [p for p in peers if "networks" not in p]
    return rest + ([{"networks": nets}] if nets else [])


def _protocol(proto: str, port: int, end: int | None) -> dict:
    dest: dict = {"number": port} if end is None or end == port else {"range": {"start": port, "end": end}}
    return {proto.lower(): {"destinationPort": dest}}
