"""What the engine says about one connection, and why — the records behind ``explain``."""

from __future__ import annotations

from dataclasses import dataclass, field

from netpolgen.policy.model import RuleRef


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection as the engine sees it: a pod policies can select, or an address
    (external, node, hostNetwork pod) that only ipBlocks can."""

    text: str  # what the caller gave
    pod: str = ""  # "namespace/name" when a selectable pod
    workload: str = ""  # its workload, for display
    ip: str = ""  # the address, when known
    note: str = ""  # e.g. why a pod key is treated as an address

    @property
    def is_pod(self) -> bool:
        return bool(self.pod)

    def to_json(self) -> dict:
        return {"given": self.text, "pod": self.pod, "workload": self.workload, "ip": self.ip,
                **({"note": self.note} if self.note else {})}

    def __str__(self) -> str:
        if self.pod:
            return f"{self.pod} ({self.workload})" if self.workload else self.pod
        return self.ip or self.text


@dataclass(frozen=True)
class DirectionVerdict:
    """One direction: egress at the source, or ingress at the destination."""

    direction: str
    allowed: bool
    isolated: bool  # some policy affecting this direction selects the pod
    policies: tuple[str, ...] = ()  # the isolating policies ("namespace/name")
    rules: tuple[RuleRef, ...] = ()  # the rules that admit the connection
    reason: str = ""

    def to_json(self) -> dict:
        return {
            "allowed": self.allowed,
            "isolated": self.isolated,
            "policies": list(self.policies),
            "rules": [str(r) for r in self.rules],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    src: Endpoint
    dst: Endpoint
    port: int
    proto: str
    egress: DirectionVerdict
    ingress: DirectionVerdict
    notes: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    @property
    def egress_allowed(self) -> bool:
        return self.egress.allowed

    @property
    def ingress_allowed(self) -> bool:
        return self.ingress.allowed

    @property
    def deciding_policies(self) -> tuple[str, ...]:
        """The policies that decided: the isolating ones of each denying direction when denied,
        else of each isolated direction."""
        dirs = [d for d in (self.egress, self.ingress) if not d.allowed] if not self.allowed else [
            d for d in (self.egress, self.ingress) if d.isolated
        ]
        return tuple(sorted({p for d in dirs for p in d.policies}))

    def to_json(self) -> dict:
        return {
            "src": self.src.to_json(),
            "dst": self.dst.to_json(),
            "port": self.port,
            "protocol": self.proto,
            "allowed": self.allowed,
            "egress": self.egress.to_json(),
            "ingress": self.ingress.to_json(),
            "notes": list(self.notes),
        }


def format_verdict(v: Verdict, rule_text: dict[RuleRef, str] | None = None) -> str:
    """The ``explain`` text: the answer, then each direction with its policies and rules."""
    lines = [f"{v.src} -> {v.dst} {v.proto}/{v.port}: {'ALLOWED' if v.allowed else 'DENIED'}"]
    for note in v.notes:
        lines.append(f"  note: {note}")
    for d, end in ((v.egress, v.src), (v.ingress, v.dst)):
        label = f"  {d.direction:<7} at {end}:"
        if not d.isolated:
            lines.append(f"{label} {'allowed' if d.allowed else 'denied'} ({d.reason})")
            continue
        lines.append(f"{label} {'allowed' if d.allowed else 'denied'}")
        lines.append(f"           isolated by {', '.join(d.policies)}")
        if d.rules:
            for r in d.rules:
                extra = f": {rule_text[r]}" if rule_text and r in rule_text else ""
                lines.append(f"           admitted by {r}{extra}")
        else:
            lines.append(f"           {d.reason}")
    return "\n".join(lines) + "\n"
