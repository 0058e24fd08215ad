"""The NetworkPolicy model (networking.k8s.io/v1), parsed and validated, as frozen records.

Semantics are carried by the shape, following the API reference:
- a rule with no peers (``from``/``to`` empty or missing) matches every peer, in or out of the
  cluster; a rule with no ports matches every port of every protocol;
- a peer is a pod/namespace selector pair (either may be absent: no restriction on that axis,
  but an absent namespaceSelector means the policy's own namespace), or an ipBlock;
- ``policy_types`` is always the effective list: when the document leaves it out, Ingress,
  plus Egress if the policy has egress rules (the API server's defaulting).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from netpolgen.policy.conns import PORT_MAX, PORT_MIN, ConnSet
from netpolgen.policy.ipspace import IPRange
from netpolgen.selectors import LabelSelector

INGRESS = "ingress"
EGRESS = "egress"
DIRECTIONS = (INGRESS, EGRESS)

NamedPortLookup = Callable[[str, str], "int | None"]  # (name, protocol) -> container port


@dataclass(frozen=True)
class PortSpec:
    """One ``ports`` item: a protocol and a number, a port range (endPort), a name, or nothing
    (every port of the protocol)."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    @property
    def is_named(self) -> bool:
        return isinstance(self.port, str)

    def span(self, named: NamedPortLookup | None = None) -> tuple[str, int, int] | None:
        """(protocol, first port, last port) this item allows towards a destination whose named
        ports ``named`` resolves (None: the destination has no pod, so named ports match nothing);
        None when it allows nothing there."""
        if self.port is None:
            return (self.protocol, PORT_MIN, PORT_MAX)
        if isinstance(self.port, str):
            resolved = named(self.port, self.protocol) if named else None
            return (self.protocol, resolved, resolved) if resolved is not None else None
        return (self.protocol, self.port, self.end_port or self.port)

    def conns(self, named: NamedPortLookup | None = None) -> ConnSet:
        """The connections this item allows (see ``span``)."""
        span = self.span(named)
        return ConnSet.none() if span is None else ConnSet.from_spans((span,))

    def matches(self, protocol: str, port: int, named: NamedPortLookup | None = None) -> bool:
        if protocol != self.protocol:
            return False
        if self.port is None:
            return True
        if isinstance(self.port, str):
            return named is not None and named(self.port, protocol) == port
        return self.port <= port <= (self.end_port or self.port)

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol} (all ports)"
        if self.end_port:
            return f"{self.protocol} {self.port}-{self.end_port}"
        return f"{self.protocol} {self.port}"


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    excepts: tuple[str, ...] = ()
    # The addresses the block covers: cidr minus excepts, as sorted disjoint ranges.
    ranges: tuple[IPRange, ...] = field(default=(), compare=False)

    def contains(self, family: int, value: int) -> bool:
        return any(r.contains(family, value) for r in self.ranges)

    def __str__(self) -> str:
        if self.excepts:
            return f"ipBlock {self.cidr} except {', '.join(self.excepts)}"
        return f"ipBlock {self.cidr}"


@dataclass(frozen=True)
class PolicyPeer:
    """One ``from``/``to`` item."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def __str__(self) -> str:
        if self.ip_block is not None:
            return str(self.ip_block)
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaces {describe_selector(self.namespace_selector)}")
        if self.pod_selector is not None:
            parts.append(f"pods {describe_selector(self.pod_selector)}")
        return " and ".join(parts)


@dataclass(frozen=True)
class PolicyRule:
    direction: str  # INGRESS or EGRESS
    index: int  # position in spec.ingress / spec.egress
    peers: tuple[PolicyPeer, ...] = ()  # empty: every peer
    ports: tuple[PortSpec, ...] = ()  # empty: every port

    @property
    def all_peers(self) -> bool:
        return not self.peers

    @property
    def all_ports(self) -> bool:
        return not self.ports

    def conns(self, named: NamedPortLookup | None = None) -> ConnSet:
        if not self.ports:
            return ConnSet.all()
        return ConnSet.from_spans(s for s in (p.span(named) for p in self.ports) if s is not None)

    def describe(self) -> str:
        peers = "any peer" if not self.peers else "; ".join(str(p) for p in self.peers)
        ports = "any port" if not self.ports else ", ".join(str(p) for p in self.ports)
        word = "from" if self.direction == INGRESS else "to"
        return f"{word} {peers}; on {ports}"


@dataclass(frozen=True)
class RuleRef:
    """Names one rule for reports: ``namespace/policy ingress[0]``."""

    policy: str  # "namespace/name"
    direction: str
    index: int

    def __str__(self) -> str:
        return f"{self.policy} {self.direction}[{self.index}]"


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    policy_types: tuple[str, ...] = ("Ingress",)  # effective, see module docstring
    file: str = field(default="", compare=False)
    where: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def affects(self, direction: str) -> bool:
        return ("Ingress" if direction == INGRESS else "Egress") in self.policy_types

    def rules(self, direction: str) -> tuple[PolicyRule, ...]:
        """The rules that count in ``direction``: none when the policy does not affect it (rules
        of a direction missing from policyTypes are ignored, as by the API)."""
        if not self.affects(direction):
            return ()
        return self.ingress if direction == INGRESS else self.egress

    def ref(self, rule: PolicyRule) -> RuleRef:
        return RuleRef(self.key, rule.direction, rule.index)


def describe_selector(sel: LabelSelector) -> str:
    """``{app=web, tier in (a,b)}``; ``{}`` (everything) for the empty selector."""
    terms = [f"{k}={v}" for k, v in sel.match_labels]
    for r in sel.match_expressions:
        if r.operator in ("In", "NotIn"):
            terms.append(f"{r.key} {r.operator.lower()} ({','.join(r.values)})")
        elif r.operator == "Exists":
            terms.append(r.key)
        else:
            terms.append(f"!{r.key}")
    return "{" + ", ".join(terms) + "}"
