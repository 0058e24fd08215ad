"""The rule model: what synthesis decided, before any output kind is chosen.

Aggregation gives edges; synthesis turns them into this model; a renderer
(``netpolgen.renderers``) turns the model into documents of one kind (NetworkPolicy today), and
the self-check evaluates the *rendered* documents against the edges the model came from.

Frozen dataclasses, not attrs or pydantic: the model is plain immutable data built in one
place and read by renderers and reports, hashable where rules are grouped, with no validation
layer to pay for (synthesis is the only producer, and the schema tests check what renderers
write). Peers are a closed union of small classes so that a renderer can say which it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from netpolgen.inventory.model import WorkloadRef
from netpolgen.selectors import LabelSelector

INGRESS = "Ingress"
EGRESS = "Egress"


@dataclass(frozen=True, order=True)
class PortSpec:
    """A protocol and a port, or a port range ``port..end_port`` (inclusive)."""

    protocol: str
    port: int
    end_port: int | None = None


@dataclass(frozen=True)
class Evidence:
    """What a rule rests on: how many observed connections, and when."""

    connections: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    sources: tuple[str, ...] = ()

    def merged(self, other: "Evidence") -> "Evidence":
        return Evidence(
            self.connections + other.connections,
            _min(self.first_seen, other.first_seen),
            _max(self.last_seen, other.last_seen),
            tuple(sorted(set(self.sources) | set(other.sources))),
        )


@dataclass(frozen=True)
class WorkloadPeer:
    """The pods of a workload class (one selector) in a namespace."""

    namespace: str
    selector: LabelSelector
    workload: str  # the class's WorkloadRef text, for people


@dataclass(frozen=True)
class NamespacePeer:
    """Every pod of a namespace."""

    namespace: str


@dataclass(frozen=True)
class NodePeer:
    """A node address (or a hostNetwork pod's): policies reach it by address only."""

    address: str


@dataclass(frozen=True)
class CidrPeer:
    """Addresses outside the cluster."""

    cidr: str


@dataclass(frozen=True)
class DnsNamePeer:
    """An outside destination by the name DNS answered for it."""

    name: str


@dataclass(frozen=True)
class EntityPeer:
    """A well-known group of endpoints (Cilium's ``world``, ``host``, ``kube-apiserver``...)."""

    entity: str


Peer = Union[WorkloadPeer, NamespacePeer, NodePeer, CidrPeer, DnsNamePeer, EntityPeer]
PEER_KINDS: tuple[type, ...] = (WorkloadPeer, NamespacePeer, NodePeer, CidrPeer, DnsNamePeer, EntityPeer)


@dataclass(frozen=True)
class Rule:
    """One peer allowed on one port, with the evidence for it."""

    peer: Peer
    port: PortSpec
    evidence: Evidence = field(default_factory=Evidence, compare=False)


@dataclass(frozen=True)
class WorkloadRules:
    """Everything one selected workload class may do: its ingress and egress rules."""

    subject: WorkloadRef  # the workload, or the first member of its label class
    selector: LabelSelector
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    members: tuple[WorkloadRef, ...] = ()  # a label class's workloads (empty: just the subject)
    merge_reason: str = ""  # why the members could not be told apart
    dns_names: tuple[str, ...] = ()  # "address=name,name" of egress peers DNS named
    widening: tuple[str, ...] = ()  # what CIDR aggregation widened, one line per rule (cidrs.py)

    @property
    def namespace(self) -> str:
        return self.subject.namespace


@dataclass(frozen=True)
class PolicyModel:
    """The decision for a run: the namespaces made deny-by-default and each workload's rules."""

    namespaces: tuple[str, ...]
    workloads: tuple[WorkloadRules, ...]
    directions: tuple[str, ...] = (INGRESS, EGRESS)  # isolated by the namespace default-deny


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
