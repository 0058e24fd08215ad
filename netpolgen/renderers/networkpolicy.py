"""The rule model as Kubernetes NetworkPolicy v1 (``networking.k8s.io/v1``).

Per namespace of the model: one default-deny for the isolated directions, then one policy per
workload class with its rules. Peers with identical port sets share a rule, so every rule
allows exactly peers × ports that were observed (a rule's ``from``/``to`` list and ``ports``
list multiply out). A workload peer in another namespace is ONE entry holding both
``namespaceSelector`` and ``podSelector`` (two entries would mean OR). Nodes and outside
addresses are ``ipBlock``s. Output is deterministic: rules, peers and ports are sorted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from netpolgen.errors import OutputError
from netpolgen.flows import host_cidr
from netpolgen.model import (
    EGRESS,
    INGRESS,
    CidrPeer,
    DnsNamePeer,
    EntityPeer,
    NamespacePeer,
    NodePeer,
    Peer,
    PolicyModel,
    Rule,
    WorkloadPeer,
    WorkloadRules,
)
from netpolgen.renderers.naming import MANAGED_BY, disambiguate_names, policy_name_and_annotations

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class _PeerDoc:
    """A rendered peer: its canonical JSON text (identity and sort key) and the object itself."""

    text: str
    value: dict = field(hash=False, compare=False)


class NetworkPolicyRenderer:
    kinds: tuple[str, ...] = ("NetworkPolicy",)
    peer_kinds: tuple[type, ...] = (WorkloadPeer, NamespacePeer, NodePeer, CidrPeer)

    def __init__(self, egress: bool = True) -> None:
        self.egress = egress

    def render(self, model: PolicyModel) -> list[dict]:
        policies = [self._workload_policy(w) for w in model.workloads]
        deny = [_default_deny(ns, model.directions) for ns in model.namespaces]
        ordered = deny + sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
        disambiguate_names(ordered)
        return ordered

    def _workload_policy(self, w: WorkloadRules) -> dict:
        spec: dict = {"podSelector": w.selector.to_dict(), "policyTypes": []}
        docs: dict[tuple[str, str, str], _PeerDoc] = {}  # shared between rules naming the same peer
        if w.ingress:
            spec["policyTypes"].append(INGRESS)
            spec["ingress"] = _rules(w.ingress, "from", w.namespace, docs)
        if w.egress and self.egress:
            spec["policyTypes"].append(EGRESS)
            spec["egress"] = _rules(w.egress, "to", w.namespace, docs)
        name, annotations = policy_name_and_annotations(w)
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"allow-{name}",
                "namespace": w.namespace,
                "labels": dict(MANAGED_BY),
                "annotations": annotations,
            },
            "spec": spec,
        }


def _peer_doc(peer: Peer, subject_ns: str, docs: dict) -> _PeerDoc:
    key = (type(peer).__name__, repr(peer), subject_ns)
    if key in docs:
        return docs[key]
    if isinstance(peer, WorkloadPeer):
        value: dict = {"podSelector": peer.selector.to_dict()}
        if peer.namespace != subject_ns:
            value["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}}
    elif isinstance(peer, NamespacePeer):
        value = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}}}
    elif isinstance(peer, NodePeer):
        value = {"ipBlock": {"cidr": host_cidr(peer.address)}}
    elif isinstance(peer, CidrPeer):
        value = {"ipBlock": {"cidr": peer.cidr}}
    else:
        what = peer.name if isinstance(peer, DnsNamePeer) else peer.entity if isinstance(peer, EntityPeer) else repr(peer)
        raise OutputError(None, None, f"a NetworkPolicy cannot name the {type(peer).__name__} {what!r}: "
                          "NetworkPolicy v1 knows pods, namespaces and IP blocks only")
    docs[key] = _PeerDoc(json.dumps(value, sort_keys=True), value)
    return docs[key]


def _rules(rules: tuple[Rule, ...], peer_key: str, subject_ns: str, docs: dict) -> list[dict]:
    ports_of: dict[_PeerDoc, set[tuple[str, int, int | None]]] = defaultdict(set)
    for r in rules:
        ports_of[_peer_doc(r.peer, subject_ns, docs)].add((r.port.protocol, r.port.port, r.port.end_port))
    by_ports: dict[tuple, list[_PeerDoc]] = defaultdict(list)
    for peer, peer_ports in ports_of.items():
        by_ports[tuple(sorted(peer_ports, key=str))].append(peer)
    keyed = []
    for ports, plist in by_ports.items():
        plist = sorted(plist, key=lambda p: p.text)
        ordered = sorted(ports, key=lambda x: (x[1], x[0], x[2] or 0))
        rule = {
            peer_key: [p.value for p in plist],
            "ports": [_port(proto, port, end) for proto, port, end in ordered],
        }
        # By (port, protocol) list, then first peer: each peer sits in exactly one rule, so the
        # key is unique and the order deterministic.
        keyed.append(((tuple((port, proto) for proto, port, _ in ordered), plist[0].text), rule))
    return [rule for _, rule in sorted(keyed, key=lambda kr: kr[0])]


def _port(proto: str, port: int, end: int | None) -> dict:
    out: dict = {"port": port, "protocol": proto}
    if end is not None and end != port:
        out["endPort"] = end
    return out


def _default_deny(namespace: str, directions: tuple[str, ...]) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {"podSelector": {}, "policyTypes": list(directions)},
    }
