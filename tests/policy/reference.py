"""An independent NetworkPolicy evaluator for tests: raw policy dicts in, a boolean out.

Written straight from the networking.k8s.io/v1 API reference, deliberately naive and sharing no
code with ``netpolgen.policy`` (not the parser, not the selectors, not the IP code), so that
agreement between the two means something.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass
class RefPod:
    namespace: str
    name: str
    labels: dict[str, str]
    ip: str
    host_ip: str
    ports: list[tuple[str, str, int]] = field(default_factory=list)  # (name, protocol, number)
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def selector_matches(sel: dict | None, labels: dict[str, str]) -> bool:
    sel = sel or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and not (key in labels and labels[key] in values):
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def policy_types(pol: dict) -> list[str]:
    spec = pol["spec"]
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


class Reference:
    def __init__(self, pods: list[RefPod], namespace_labels: dict[str, dict[str, str]], policies: list[dict]) -> None:
        self.pods = {p.key: p for p in pods}
        self.ns_labels = namespace_labels
        self.policies = policies

    def _endpoint(self, text: str) -> tuple[RefPod | None, str]:
        """(selectable pod, address). A hostNetwork pod is its address."""
        pod = self.pods.get(text)
        if pod is None:
            return None, text
        if pod.host_network:
            return None, pod.ip
        return pod, pod.ip

    def _ns_of(self, pol: dict) -> str:
        return pol["metadata"].get("namespace") or "default"

    def _peer_ok(self, pol: dict, peers: list | None, pod: RefPod | None, addr: str) -> bool:
        if not peers:
            return True
        for peer in peers:
            if peer.get("ipBlock") is not None:
                if pod is not None:
                    continue  # ipBlocks are for addresses outside the pod network
                ip = ipaddress.ip_address(addr)
                block = peer["ipBlock"]
                net = ipaddress.ip_network(block["cidr"], strict=False)
                if ip.version == net.version and ip in net and not any(
                    ip in ipaddress.ip_network(x, strict=False) for x in block.get("except") or []
                ):
                    return True
                continue
            if pod is None:
                continue
            if peer.get("namespaceSelector") is not None:
                ns_ok = selector_matches(peer["namespaceSelector"], self.ns_labels.get(pod.namespace, {}))
            else:
                ns_ok = pod.namespace == self._ns_of(pol)
            if ns_ok and (peer.get("podSelector") is None or selector_matches(peer["podSelector"], pod.labels)):
                return True
        return False

    @staticmethod
    def _port_ok(ports: list | None, proto: str, port: int, dst: RefPod | None) -> bool:
        if not ports:
            return True
        for p in ports:
            if (p.get("protocol") or "TCP") != proto:
                continue
            value = p.get("port")
            if value is None:
                return True
            if isinstance(value, int):
                if value <= port <= (p.get("endPort") or value):
                    return True
            elif dst is not None and any(n == value and pr == proto and num == port for n, pr, num in dst.ports):
                return True
        return False

    def _direction(self, direction: str, selected: RefPod | None, peer: RefPod | None, peer_addr: str,
                   dst: RefPod | None, port: int, proto: str) -> bool:
        if selected is None:
            return True
        pols = [p for p in self.policies
                if direction.capitalize() in policy_types(p)
                and self._ns_of(p) == selected.namespace
                and selector_matches(p["spec"].get("podSelector"), selected.labels)]
        if not pols:
            return True
        key = "from" if direction == "ingress" else "to"
        for pol in pols:
            for rule in pol["spec"].get(direction) or []:
                rule = rule or {}
                if self._peer_ok(pol, rule.get(key), peer, peer_addr) and self._port_ok(rule.get("ports"), proto, port, dst):
                    return True
        return False

    def allowed(self, src: str, dst: str, port: int, proto: str) -> tuple[bool, bool]:
        """(egress allowed, ingress allowed)."""
        s_pod, s_addr = self._endpoint(src)
        d_pod, d_addr = self._endpoint(dst)
        # A pod and its own node may always talk.
        if s_pod is None and d_pod is not None and d_pod.host_ip and ipaddress.ip_address(s_addr) == ipaddress.ip_address(d_pod.host_ip):
            return True, True
        if d_pod is None and s_pod is not None and s_pod.host_ip and ipaddress.ip_address(d_addr) == ipaddress.ip_address(s_pod.host_ip):
            return True, True
        egress = self._direction("egress", s_pod, d_pod, d_addr, d_pod, port, proto)
        ingress = self._direction("ingress", d_pod, s_pod, s_addr, d_pod, port, proto)
        return egress, ingress
