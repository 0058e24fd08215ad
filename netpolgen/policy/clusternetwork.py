"""ClusterNetworkPolicy (``policy.networking.k8s.io/v1alpha2``, network-policy-api v0.2.0):
parsing, and the tiers around NetworkPolicy evaluation.

Per direction of a connection (egress at the source pod, ingress at the destination pod), as
the API reference orders it (network-policy-api.sigs.k8s.io, "ClusterNetworkPolicy"):
1. Admin tier policies selecting the pod, by ascending ``priority`` (then name), rules in order:
   the first rule matching peer and port decides: ``Accept`` allows, ``Deny`` denies, ``Pass``
   skips the rest of the Admin tier and goes to NetworkPolicy;
2. NetworkPolicy: if one isolates the pod in the direction, its verdict stands;
3. Baseline tier policies likewise: ``Accept`` or ``Deny``; ``Pass`` or no match allows.
A direction whose end is not a pod (an outside address, a node) is not subject to any of them.
The NetworkPolicy verdicts come from the engine; the tiers are walked per question here
(a self-check asks one question per observed edge, not per packet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from netpolgen.errors import PolicyError
from netpolgen.inventory import Inventory, Pod
from netpolgen.policy.ipspace import IPRange, cidr_range, parse_ip
from netpolgen.selectors import LabelSelector, parse_selector

KIND = "ClusterNetworkPolicy"
TIERS = ("Admin", "Baseline")
ACTIONS = ("Accept", "Deny", "Pass")


@dataclass(frozen=True)
class TierPeer:
    namespaces: LabelSelector | None = None  # pods of the namespaces it selects
    pods: tuple[LabelSelector, LabelSelector] | None = None  # (namespace selector, pod selector)
    networks: tuple[IPRange, ...] = ()


@dataclass(frozen=True)
class TierPort:
    protocol: str | None  # None: the rule has no protocols (every port of every protocol)
    start: int = 0
    end: int = 0
    named: str = ""


@dataclass(frozen=True)
class TierRule:
    action: str
    peers: tuple[TierPeer, ...]
    ports: tuple[TierPort, ...]
    name: str = ""


@dataclass(frozen=True)
class TieredPolicy:
    name: str
    tier: str
    priority: int
    subject_namespaces: LabelSelector | None
    subject_pods: tuple[LabelSelector, LabelSelector] | None
    ingress: tuple[TierRule, ...] = ()
    egress: tuple[TierRule, ...] = ()


def parse_cluster_network_policies(objs: Iterable[Mapping[str, Any]], file: str | None = None) -> list[TieredPolicy]:
    out = []
    for i, obj in enumerate(objs, start=1):
        if obj.get("kind") != KIND:
            continue
        where = f"object {i} ({KIND} {(obj.get('metadata') or {}).get('name', '?')})"
        try:
            out.append(_policy(obj))
        except (ValueError, KeyError, TypeError) as e:
            raise PolicyError(file, where, str(e)) from None
    return out


def _policy(obj: Mapping[str, Any]) -> TieredPolicy:
    spec = obj["spec"]
    tier = spec["tier"]
    if tier not in TIERS:
        raise ValueError(f"spec.tier: {tier!r} is not Admin or Baseline")
    subject = spec["subject"]
    ns_sel = parse_selector(subject["namespaces"], "spec.subject.namespaces") if "namespaces" in subject else None
    pods = _pods(subject["pods"], "spec.subject.pods") if "pods" in subject else None
    if ns_sel is None and pods is None:
        raise ValueError("spec.subject: namespaces or pods required")
    return TieredPolicy(
        str(obj["metadata"]["name"]), tier, int(spec["priority"]), ns_sel, pods,
        tuple(_rule(r, "from", f"spec.ingress[{i}]") for i, r in enumerate(spec.get("ingress") or [])),
        tuple(_rule(r, "to", f"spec.egress[{i}]") for i, r in enumerate(spec.get("egress") or [])),
    )


def _pods(raw: Mapping[str, Any], path: str) -> tuple[LabelSelector, LabelSelector]:
    return (parse_selector(raw.get("namespaceSelector") or {}, f"{path}.namespaceSelector"),
            parse_selector(raw.get("podSelector") or {}, f"{path}.podSelector"))


def _rule(raw: Mapping[str, Any], key: str, path: str) -> TierRule:
    action = raw["action"]
    if action not in ACTIONS:
        raise ValueError(f"{path}.action: {action!r} is not one of {', '.join(ACTIONS)}")
    peers = []
    for j, p in enumerate(raw[key]):
        q = f"{path}.{key}[{j}]"
        unknown = set(p) - {"namespaces", "pods", "networks"}
        if unknown:
            raise ValueError(f"{q}: {', '.join(sorted(unknown))} not evaluated")
        if "namespaces" in p:
            peers.append(TierPeer(namespaces=parse_selector(p["namespaces"], f"{q}.namespaces")))
        if "pods" in p:
            peers.append(TierPeer(pods=_pods(p["pods"], f"{q}.pods")))
        if "networks" in p:
            peers.append(TierPeer(networks=tuple(cidr_range(c) for c in p["networks"])))
    ports = []
    for proto in raw.get("protocols") or []:
        if "destinationNamedPort" in proto:
            ports.append(TierPort("", named=str(proto["destinationNamedPort"])))
            continue
        for name, body in proto.items():
            dest = (body or {}).get("destinationPort") or {}
            if "number" in dest:
                ports.append(TierPort(name.upper(), int(dest["number"]), int(dest["number"])))
            elif "range" in dest:
                ports.append(TierPort(name.upper(), int(dest["range"]["start"]), int(dest["range"]["end"])))
            else:
                ports.append(TierPort(name.upper(), 1, 65535))
    return TierRule(action, tuple(peers), tuple(ports), str(raw.get("name", "")))


class TieredEngine:
    """ClusterNetworkPolicies around a NetworkPolicy engine (``Engine``); same questions, same
    answer columns (``allowed``, ``egress_allowed``, ``ingress_allowed`` ...)."""

    def __init__(self, inventory: Inventory, policies: list[TieredPolicy], np_engine: Any) -> None:
        self.inventory = inventory
        key = lambda p: (p.priority, p.name)  # noqa: E731
        self.admin = sorted((p for p in policies if p.tier == "Admin"), key=key)
        self.baseline = sorted((p for p in policies if p.tier == "Baseline"), key=key)
        self.np = np_engine

    def evaluate_flows(self, df: pd.DataFrame) -> pd.DataFrame:
        base = self.np.evaluate_flows(df)
        out = base.copy()
        rows = list(zip(df["src_pod"].fillna(""), df["src_ip"].fillna(""), df["dst_pod"].fillna(""),
                        df["dst_ip"].fillna(""), df["dst_port"], df["proto"], strict=True))
        eg = out["egress_allowed"].to_numpy(dtype=bool).copy()
        ing = out["ingress_allowed"].to_numpy(dtype=bool).copy()
        eg_iso = base["egress_isolated"].to_numpy(dtype=bool)
        in_iso = base["ingress_isolated"].to_numpy(dtype=bool)
        local = base["node_local"].to_numpy(dtype=bool)
        for i, (sp, sip, dp, dip, port, proto) in enumerate(rows):
            if local[i]:
                continue
            src, dst = self._pod(sp), self._pod(dp)
            port, proto = int(port), str(proto).upper()
            if src is not None:
                eg[i] = self._decide(src, "egress", dst, dip, port, proto, bool(eg_iso[i]), bool(eg[i]))
            if dst is not None:
                ing[i] = self._decide(dst, "ingress", src, sip, port, proto, bool(in_iso[i]), bool(ing[i]))
        out["egress_allowed"] = eg
        out["ingress_allowed"] = ing
        out["allowed"] = eg & ing
        return out

    def evaluate(self, subject: Pod, direction: str, peer: Pod | None, peer_ip: str, port: int, proto: str,
                 np_isolated: bool, np_allowed: bool) -> bool:
        return self._decide(subject, direction, peer, peer_ip, port, proto, np_isolated, np_allowed)

    def _pod(self, key: str) -> Pod | None:
        pod = self.inventory.pod(key) if key else None
        return None if pod is None or pod.host_network else pod

    def _decide(self, subject: Pod, direction: str, peer: Pod | None, peer_ip: str, port: int, proto: str,
                np_isolated: bool, np_allowed: bool) -> bool:
        target = subject if direction == "ingress" else peer  # whose named ports count
        action = self._first(self.admin, subject, direction, peer, peer_ip, port, proto, target)
        if action in ("Accept", "Deny"):
            return action == "Accept"
        if np_isolated:
            return np_allowed
        action = self._first(self.baseline, subject, direction, peer, peer_ip, port, proto, target)
        return action != "Deny"

    def _first(self, policies: list[TieredPolicy], subject: Pod, direction: str, peer: Pod | None, peer_ip: str,
               port: int, proto: str, target: Pod | None) -> str | None:
        for p in policies:
            if not self._selects(p.subject_namespaces, p.subject_pods, subject):
                continue
            for rule in (p.ingress if direction == "ingress" else p.egress):
                if self._peer_matches(rule, peer, peer_ip) and _port_matches(rule, port, proto, target):
                    if rule.action == "Pass":
                        return "Pass"
                    return rule.action
        return None

    def _selects(self, ns_sel: LabelSelector | None, pods: tuple[LabelSelector, LabelSelector] | None, pod: Pod) -> bool:
        ns_labels = self.inventory.namespace_labels(pod.namespace)
        if ns_sel is not None:
            return ns_sel.matches(ns_labels)
        assert pods is not None
        return pods[0].matches(ns_labels) and pods[1].matches(pod.labels)

    def _peer_matches(self, rule: TierRule, peer: Pod | None, peer_ip: str) -> bool:
        addr = parse_ip(peer.ips[0]) if peer is not None and peer.ips else parse_ip(peer_ip) if peer_ip else None
        for tp in rule.peers:
            if tp.networks:
                if addr is not None and any(r.contains(*addr) for r in tp.networks):
                    return True
            elif peer is not None and self._selects(tp.namespaces, tp.pods, peer):
                return True
        return False


def _port_matches(rule: TierRule, port: int, proto: str, target: Pod | None) -> bool:
    if not rule.ports:
        return True
    for p in rule.ports:
        if p.named:
            if target is not None and any(target.named_port(p.named, pr) == port for pr in (proto,)):
                return True
        elif p.protocol == proto and p.start <= port <= p.end:
            return True
    return False
