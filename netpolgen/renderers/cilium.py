"""The rule model as CiliumNetworkPolicy (``cilium.io/v2``), and optionally one
CiliumClusterwideNetworkPolicy holding the rules every namespace shares.

- ``endpointSelector`` is the workload's selector; a peer is ``fromEndpoints``/``toEndpoints``
  with the namespace as the ``k8s:io.kubernetes.pod.namespace`` label inside the same selector
  (one selector: namespace AND labels), outside addresses ``toCIDRSet``, nodes ``toEntities``
  (Cilium gives nodes no CIDR identity), and outside names ``toFQDNs``.
- ``toFQDNs`` only learns addresses from DNS answers Cilium's DNS proxy sees: every port-53
  egress of a workload with FQDN rules carries ``rules.dns`` with those names (``matchName``;
  ``matchPattern`` only for the patterns the user asked for).
- Cilium allows no two kinds of L3 peer in one rule (``toEndpoints`` with ``toCIDRSet``...): a
  rule holds one kind, and the peers of that kind sharing a port set.
- Default deny: Cilium isolates an endpoint in a direction once a rule selecting it has that
  section, and an *empty* list counts as absent (docs.cilium.io, "Policy Enforcement Modes";
  the ``Rule`` reference: "If omitted or empty, this rule does not apply"). So the namespace
  default-deny selects ``{}`` with one empty rule per direction (``[{}]``, which admits nothing)
  and says ``enableDefaultDeny`` explicitly.
"""

from __future__ import annotations

import fnmatch
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from netpolgen.baseline import SharedRules, shared_rules
from netpolgen.model import (
    EGRESS,
    INGRESS,
    CidrPeer,
    DnsNamePeer,
    EntityPeer,
    NodePeer,
    Peer,
    PolicyModel,
    Rule,
    WorkloadPeer,
    WorkloadRules,
)
from netpolgen.renderers.naming import MANAGED_BY, disambiguate_names, policy_name_and_annotations

API_VERSION = "cilium.io/v2"
KIND = "CiliumNetworkPolicy"
CLUSTERWIDE_KIND = "CiliumClusterwideNetworkPolicy"
NAMESPACE_LABEL = "k8s:io.kubernetes.pod.namespace"
DNS_PORT = 53


@dataclass(frozen=True)
class CiliumOptions:
    egress: bool = True
    fqdn_patterns: tuple[str, ...] = ()  # names matching one are written as this matchPattern
    # Extra ``rules.dns`` matchPatterns on every port-53 rule that carries DNS rules: lookups the
    # flows cannot show (in-cluster Service names, search-domain expansions) that the DNS proxy
    # must still answer. toFQDNs is unchanged by them.
    dns_patterns: tuple[str, ...] = ()
    clusterwide: bool = False  # shared rules in one CiliumClusterwideNetworkPolicy


@dataclass(frozen=True)
class _Doc:
    text: str
    value: dict = field(hash=False, compare=False)


class CiliumRenderer:
    kinds: tuple[str, ...] = (KIND, CLUSTERWIDE_KIND)
    peer_kinds: tuple[type, ...] = (WorkloadPeer, NodePeer, CidrPeer, DnsNamePeer, EntityPeer)

    def __init__(self, options: CiliumOptions | None = None) -> None:
        self.opts = options or CiliumOptions()

    def render(self, model: PolicyModel) -> list[dict]:
        shared = shared_rules(model) if self.opts.clusterwide else SharedRules()
        policies = [p for p in (self._workload_policy(w, shared) for w in model.workloads) if p is not None]
        deny = [_default_deny(ns, model.directions) for ns in model.namespaces]
        ordered = deny + sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
        disambiguate_names(ordered)
        if self.opts.clusterwide and not shared.empty:
            ordered.insert(0, self._clusterwide(model, shared))
        return ordered

    def _workload_policy(self, w: WorkloadRules, shared: SharedRules) -> dict | None:
        ingress = tuple(r for r in w.ingress if not shared.has(w.namespace, INGRESS, r))
        egress = tuple(r for r in w.egress if not shared.has(w.namespace, EGRESS, r)) if self.opts.egress else ()
        if not ingress and not egress:
            return None
        spec: dict = {"endpointSelector": _selector(w.selector.to_dict(), None)}
        if ingress:
            spec["ingress"] = self._rules(ingress, INGRESS, ())
        if egress:
            spec["egress"] = self._rules(egress, EGRESS, _fqdn_names(w.egress))
        name, annotations = policy_name_and_annotations(w)
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": f"allow-{name}", "namespace": w.namespace, "labels": dict(MANAGED_BY),
                         "annotations": annotations},
            "spec": spec,
        }

    def _clusterwide(self, model: PolicyModel, shared: SharedRules) -> dict:
        spec: dict = {"endpointSelector": {"matchExpressions": [
            {"key": NAMESPACE_LABEL, "operator": "In", "values": sorted(model.namespaces)}]}}
        # The shared DNS rule must let the proxy see every name any namespace's toFQDNs allows.
        names = tuple(sorted({r.peer.name for w in model.workloads for r in w.egress if isinstance(r.peer, DnsNamePeer)}))
        if shared.ingress:
            spec["ingress"] = self._rules(tuple(shared.ingress), INGRESS, ())
        if shared.egress and self.opts.egress:
            spec["egress"] = self._rules(tuple(shared.egress), EGRESS, names)
        return {
            "apiVersion": API_VERSION,
            "kind": CLUSTERWIDE_KIND,
            "metadata": {"name": "netpolgen-shared", "labels": dict(MANAGED_BY),
                         "annotations": {"netpolgen.io/namespaces": ", ".join(sorted(model.namespaces))}},
            "spec": spec,
        }

    def _rules(self, rules: tuple[Rule, ...], direction: str, fqdn_names: tuple[str, ...]) -> list[dict]:
        prefix = "from" if direction == INGRESS else "to"
        ports_of: dict[tuple[str, _Doc], set[tuple[str, int, int | None]]] = defaultdict(set)
        for r in rules:
            field_name, doc = self._peer(r.peer, prefix)
            ports_of[(field_name, doc)].add((r.port.protocol, r.port.port, r.port.end_port))
        grouped: dict[tuple[str, tuple], list[_Doc]] = defaultdict(list)
        for (field_name, doc), port_set in ports_of.items():
            grouped[(field_name, tuple(sorted(port_set, key=lambda x: (x[1], x[0], x[2] or 0))))].append(doc)
        out = []
        for (field_name, ports), docs in grouped.items():
            docs = sorted(set(docs), key=lambda d: d.text)
            values = [d.value for d in docs]
            if field_name.endswith("Entities"):
                values = sorted({v for vs in values for v in vs})
            rule: dict = {field_name: values, "toPorts": self._to_ports(ports, direction, fqdn_names)}
            out.append(((field_name, ports, docs[0].text), rule))
        return [rule for _, rule in sorted(out, key=lambda kr: kr[0])]

    def _peer(self, peer: Peer, prefix: str) -> tuple[str, _Doc]:
        if isinstance(peer, WorkloadPeer):
            value = _selector(peer.selector.to_dict(), peer.namespace)
            return f"{prefix}Endpoints", _Doc(json.dumps(value, sort_keys=True), value)
        if isinstance(peer, CidrPeer):
            v: dict = {"cidr": peer.cidr}
            return f"{prefix}CIDRSet", _Doc(peer.cidr, v)
        if isinstance(peer, EntityPeer):
            return f"{prefix}Entities", _Doc(peer.entity, [peer.entity])  # type: ignore[arg-type]
        if isinstance(peer, NodePeer):
            # Not turned into an entity by the caller (peers.with_entities): both node entities.
            return f"{prefix}Entities", _Doc(peer.address, ["host", "remote-node"])  # type: ignore[arg-type]
        if isinstance(peer, DnsNamePeer) and prefix == "to":
            pattern = self._pattern_of(peer.name)
            value = {"matchPattern": pattern} if pattern else {"matchName": peer.name}
            return "toFQDNs", _Doc(json.dumps(value, sort_keys=True), value)
        raise TypeError(f"CiliumNetworkPolicy cannot express a {type(peer).__name__} in {prefix}")

    def _pattern_of(self, name: str) -> str | None:
        return next((p for p in self.opts.fqdn_patterns if _pattern_matches(p, name)), None)

    def _to_ports(self, ports: tuple, direction: str, fqdn_names: tuple[str, ...]) -> list[dict]:
        items = [_port(proto, port, end) for proto, port, end in ports]
        dns = [i for (proto, port, _), i in zip(ports, items, strict=True) if port == DNS_PORT and proto in ("UDP", "TCP")]
        if direction != EGRESS or not dns or not fqdn_names:
            return [{"ports": items}]
        # The DNS proxy must see the lookups of every name toFQDNs allows.
        rules: list[dict] = []
        for value in sorted({self._pattern_of(n) or n for n in fqdn_names}):
            rules.append({"matchPattern": value} if value in self.opts.fqdn_patterns else {"matchName": value})
        rules.extend({"matchPattern": p} for p in sorted(set(self.opts.dns_patterns) - set(self.opts.fqdn_patterns)))
        others = [i for i in items if i not in dns]
        out = [{"ports": dns, "rules": {"dns": rules}}]
        if others:
            out.append({"ports": others})
        return out


def _fqdn_names(rules: tuple[Rule, ...]) -> tuple[str, ...]:
    return tuple(sorted({r.peer.name for r in rules if isinstance(r.peer, DnsNamePeer)}))


def _pattern_matches(pattern: str, name: str) -> bool:
    """Cilium's matchPattern: ``*`` alone matches every name; elsewhere ``*`` stands for DNS
    characters within one label (docs.cilium.io, "DNS based" policy)."""
    name, pattern = name.rstrip(".").lower(), pattern.rstrip(".").lower()
    if pattern == "*":
        return True
    return fnmatch.fnmatchcase(name, pattern) and name.count(".") == pattern.count(".")


def _selector(sel: dict, namespace: str | None) -> dict:
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else [dict(x) for x in v]) for k, v in sel.items()}
    if namespace is not None:
        labels: dict[str, str] = dict(out.get("matchLabels") or {})
        labels[NAMESPACE_LABEL] = namespace
        out["matchLabels"] = dict(sorted(labels.items()))
    return out


def _port(proto: str, port: int, end: int | None) -> dict:
    out: dict = {"port": str(port), "protocol": proto}
    if end is not None and end != port:
        out["endPort"] = end
    return out


def _default_deny(namespace: str, directions: tuple[str, ...]) -> dict:
    spec: dict = {"endpointSelector": {}}
    enable = {}
    if INGRESS in directions:
        spec["ingress"] = [{}]
        enable["ingress"] = True
    if EGRESS in directions:
        spec["egress"] = [{}]
        enable["egress"] = True
    spec["enableDefaultDeny"] = enable
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "default-deny", "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": spec,
    }
