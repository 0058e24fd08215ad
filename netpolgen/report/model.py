"""What a report says, as plain frozen records: every renderer (HTML, Markdown, JSON, junit)
reads this one model, so the forms cannot disagree."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Arrow and rule statuses. new: allowed by a rule the baseline lacks (everything, without a
# baseline); unchanged: allowed as before (by a rule the baseline holds, or no policy governs
# it); removed: a baseline rule nothing used over the window; denied: observed, and the policies
# deny it (a self-check finding).
NEW, UNCHANGED, REMOVED, DENIED = "new", "unchanged", "removed", "denied"
STATUSES = (NEW, UNCHANGED, REMOVED, DENIED)
OUTSIDE_CLIENTS = "outside: clients"
OUTSIDE_SERVERS = "outside: servers"
NODES_GROUP = "nodes / hostNetwork"


@dataclass(frozen=True)
class Node:
    """A box in the picture: a workload class (its pods share one selector) or an address."""

    id: str
    label: str
    group: str  # the namespace, or one of the outside/node groups
    kind: str  # pod, external, node
    detail: str = ""  # tooltip: full name, DNS names, why it is low-confidence


@dataclass(frozen=True)
class Edge:
    """An arrow: one client, one server, the ports between them, and one status."""

    src: str  # Node.id
    dst: str
    ports: tuple[str, ...]  # "TCP 5432"
    status: str  # new / unchanged / removed / denied
    connections: int = 0


@dataclass(frozen=True)
class RuleRow:
    """One rule of a policy with its evidence over the window."""

    policy: str  # namespace/name
    direction: str
    index: int
    text: str
    status: str  # new / unchanged / removed (relative to the baseline; new without one)
    edges: int
    connections: int
    packets: int
    bytes: int
    first_seen: str  # ISO 8601, "" when unknown
    last_seen: str
    files: tuple[str, ...]
    example_src: str
    example_dst: str
    note: str = ""

    @property
    def ref(self) -> str:
        return f"{self.policy} {self.direction}[{self.index}]"


@dataclass(frozen=True)
class PolicyView:
    key: str  # namespace/name
    namespace: str
    name: str
    workload: str
    status: str  # new / changed / unchanged / removed
    rules: tuple[RuleRow, ...]
    path: str = ""  # <namespace>/<name>.yaml


@dataclass(frozen=True)
class Coverage:
    quiet_namespaces: tuple[tuple[str, int], ...] = ()  # (namespace, pods) with no traffic seen
    low_confidence: tuple[tuple[str, str], ...] = ()  # (workload, why)
    unresolved: tuple[tuple[str, str], ...] = ()  # (address, why)
    unresolved_connections: int = 0
    label_classes: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (namespace, labels, workloads)
    widened: tuple[tuple[str, str], ...] = ()  # (policy, cidr wider than one address)
    not_selectable: tuple[str, ...] = ()  # workloads no selector could name (no policy written)


@dataclass(frozen=True)
class CheckView:
    checked: int = 0
    denied: tuple[str, ...] = ()
    unavailable: str = ""

    @property
    def passed(self) -> bool:
        return not self.unavailable and not self.denied


@dataclass(frozen=True)
class SourceView:
    path: str
    format: str
    records: int


@dataclass(frozen=True)
class Report:
    title: str
    window: tuple[str, str] | None
    sources: tuple[SourceView, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    policies: tuple[PolicyView, ...]
    coverage: Coverage
    self_check: CheckView
    baseline: str = ""  # what statuses compare against ("" : nothing, everything is new)
    connections: int = 0
    files_known: bool = True
    unused: tuple[RuleRow, ...] = field(default=())  # baseline rules nothing used over the window

    def to_json(self) -> dict:
        """The JSON form (``netpolgen/schemas/generate.schema.json``)."""
        doc = asdict(self)
        doc["window"] = {"first_seen": self.window[0], "last_seen": self.window[1]} if self.window else None
        for key in ("quiet_namespaces", "low_confidence", "unresolved", "label_classes", "widened"):
            doc["coverage"][key] = [list(x) for x in doc["coverage"][key]]
        doc["coverage"]["quiet_namespaces"] = [{"namespace": n, "pods": p} for n, p in self.coverage.quiet_namespaces]
        doc["coverage"]["low_confidence"] = [{"workload": w, "why": y} for w, y in self.coverage.low_confidence]
        doc["coverage"]["unresolved"] = [{"address": a, "why": y} for a, y in self.coverage.unresolved]
        doc["coverage"]["label_classes"] = [{"namespace": n, "labels": lab, "workloads": list(ws)}
                                            for n, lab, ws in self.coverage.label_classes]
        doc["coverage"]["widened"] = [{"policy": p, "cidr": c} for p, c in self.coverage.widened]
        doc["self_check"]["passed"] = self.self_check.passed
        return doc
