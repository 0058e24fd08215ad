"""Helpers to run the engine the way np-guard netpol-analyzer reads its test directories.

np-guard names a pod's workload after the pod's *controlling owner reference* as written (a
ReplicaSet stays a ReplicaSet when the Deployment is not in the input), treats hostNetwork pods
like any other pod, and takes every object of a directory as input. These adapters reproduce
that reading; the engine itself is unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from netpolgen.inventory import Inventory, Pod, load_inventory
from netpolgen.policy import NetworkPolicy, load_policies
from netpolgen.policy.conns import ConnSet, parse_conn_text
from netpolgen.policy.ipspace import parse_ip


def npguard_workload(pod: Pod) -> str:
    owner = next((o for o in pod.owners if o.controller and o.kind != "Node"), None)
    if owner is None:
        return f"{pod.namespace}/{pod.name}[Pod]"
    return f"{pod.namespace}/{owner.name}[{owner.kind}]"


@dataclass
class Case:
    name: str
    inventory: Inventory
    policies: list[NetworkPolicy]


def load_case(root: Path, name: str) -> Case:
    d = str(root / "tests" / name)
    return Case(name, load_inventory([d]), load_policies([d]))


def expected_lines(path: Path, drop: str | None = None) -> list[str]:
    """The non-blank lines of an expected output, without those containing ``drop``."""
    return [line for line in path.read_text().splitlines() if line.strip() and not (drop and drop in line)]


def representative(case: Case, peer: str) -> str:
    """An endpoint the engine can evaluate for an np-guard peer: the first pod of a workload, or
    the first address of an ``a-b[External]`` range."""
    m = re.fullmatch(r"([0-9a-f.:]+)-([0-9a-f.:]+)\[External\]", peer)
    if m:
        return m.group(1)
    pods = sorted((p for p in case.inventory.pods if npguard_workload(p) == peer), key=lambda p: p.key)
    if not pods:
        raise KeyError(peer)
    return pods[0].key


# ----- np-guard explain outputs -----------------------------------------------------------------


@dataclass
class ExplainDirection:
    allowed: bool
    system_default: bool = False
    selecting: set[str] = field(default_factory=set)  # policies named as selecting the pod
    admitting: set[tuple[str, int]] = field(default_factory=set)  # (policy, rule number from 1)
    unsupported: bool = False  # AdminNetworkPolicy and the like


@dataclass
class ExplainGroup:
    src: str
    dst: str
    allowed: bool
    conns: str  # e.g. "TCP:[1-7069,7071-65535], UDP, SCTP"
    directions: dict[str, ExplainDirection] = field(default_factory=dict)

    def sample(self) -> tuple[str, int]:
        """One (protocol, port) the group is about: the first port of its first protocol."""
        first = self.conns.split(", ")[0]
        proto, _, ports = first.partition(":")
        port = int(ports.strip("[]").split(",")[0].split("-")[0]) if ports else 1
        return proto.strip(), port


_PAIR = re.compile(r"^Connections between (.+) => (.+):$")
_GROUP = re.compile(r"^\t(Allowed|Denied) (.+) due to the following policies and rules:$")
_DIRECTION = re.compile(r"^\t\t(Egress|Ingress) \((Allowed|Denied)\)( due to the system default)?")
_ADMITS = re.compile(r"NetworkPolicy '([^']+)' allows connections by (?:Egress|Ingress) rule #(\d+)")
_SELECTS = re.compile(r"NetworkPolicy '([^']+)' selects ")


def parse_explain(text: str) -> tuple[list[ExplainGroup], list[tuple[str, str]]]:
    """(groups with reasons, pairs allowed by the system default alone)."""
    groups: list[ExplainGroup] = []
    defaults: list[tuple[str, str]] = []
    pair: tuple[str, str] | None = None
    group: ExplainGroup | None = None
    direction: ExplainDirection | None = None
    in_default_list = False
    for line in text.splitlines():
        if line.startswith("# "):
            in_default_list = "due to the system default" in line
            continue
        if in_default_list and " => " in line and not line.startswith(("#", "-")):
            src, dst = line.split(" => ")
            defaults.append((src.strip(), dst.strip()))
            continue
        if m := _PAIR.match(line):
            pair, group, direction = (m.group(1), m.group(2)), None, None
            continue
        if pair and (m := _GROUP.match(line)):
            group = ExplainGroup(pair[0], pair[1], m.group(1) == "Allowed", m.group(2))
            groups.append(group)
            continue
        if group and (m := _DIRECTION.match(line)):
            direction = ExplainDirection(m.group(2) == "Allowed", bool(m.group(3)))
            group.directions[m.group(1).lower()] = direction
            continue
        if direction is not None:
            if "AdminNetworkPolicy" in line:
                direction.unsupported = True
            elif m := _ADMITS.search(line):
                direction.admitting.add((m.group(1), int(m.group(2))))
            elif m := _SELECTS.search(line):
                direction.selecting.add(m.group(1))
    return groups, defaults


def parse_pod_matrix(text: str) -> dict[tuple[str, str], ConnSet]:
    """np-guard's ``connections_map_output.txt``: pod x pod allowed connections."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^src: (\S+), dest: (\S+), allowed conns: (.+)$", line)
        if m:
            out[(m.group(1), m.group(2))] = parse_conn_text(m.group(3))
    return out


def is_address(text: str) -> bool:
    return parse_ip(text) is not None
