"""CIDR aggregation with a budget: a pass over the rule model that collapses a workload's
unnamed outside addresses into fewer, wider ``CidrPeer``s.

Per workload, direction and port, the outside addresses (``CidrPeer``s) are merged into at most
``max_cidrs`` CIDRs, greedily: the two neighbouring blocks whose common supernet adds the fewest
never-seen addresses merge first. A supernet is never shorter than the floor (``/24`` for IPv4,
``/48`` for IPv6 by default) and never touches a pod, Service or node address of the cluster: a
rule that cannot meet its budget under those limits keeps what it has, and says so. Ranges the
user passes (``known``) absorb the addresses inside them first; no cloud range is guessed.

Done on the model, not in a renderer, so every output kind gets the same CIDRs and the same
report of what was widened.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Union

from netpolgen.model import CidrPeer, PolicyModel, PortSpec, Rule

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
DEFAULT_FLOOR_V4 = 24
# /48 is the smallest allocation a site usually gets: wider and the rule spans organisations.
DEFAULT_FLOOR_V6 = 48


@dataclass(frozen=True)
class CidrBudget:
    max_cidrs: int  # per rule (one workload, direction and port)
    floor_v4: int = DEFAULT_FLOOR_V4
    floor_v6: int = DEFAULT_FLOOR_V6
    known: tuple[str, ...] = ()  # ranges the user vouches for (may be wider than the floor)


def aggregate_model(model: PolicyModel, budget: CidrBudget, forbidden: Iterable[Network | str]) -> PolicyModel:
    """``model`` with each rule's outside addresses collapsed within ``budget``; every widening
    is recorded on its WorkloadRules (``widening``)."""
    blocked = _networks(forbidden)
    known = _networks(budget.known)
    workloads = []
    for w in model.workloads:
        notes: list[str] = list(w.widening)
        ingress = _aggregate_rules(w.ingress, "ingress", budget, blocked, known, notes)
        egress = _aggregate_rules(w.egress, "egress", budget, blocked, known, notes)
        workloads.append(replace(w, ingress=ingress, egress=egress, widening=tuple(notes)))
    return replace(model, workloads=tuple(workloads))


def _aggregate_rules(rules: tuple[Rule, ...], direction: str, budget: CidrBudget, blocked: list[Network],
                     known: list[Network], notes: list[str]) -> tuple[Rule, ...]:
    by_port: dict[PortSpec, list[Rule]] = defaultdict(list)
    out: list[Rule] = []
    for r in rules:
        (by_port[r.port] if isinstance(r.peer, CidrPeer) else out).append(r)
    for port, group in sorted(by_port.items()):
        nets = [ipaddress.ip_network(r.peer.cidr, strict=False) for r in group]  # type: ignore[union-attr]
        merged = collapse(nets, budget, blocked, known)
        seen = sum(n.num_addresses for n in ipaddress.collapse_addresses(n for n in nets if n.version == 4)) + \
            sum(n.num_addresses for n in ipaddress.collapse_addresses(n for n in nets if n.version == 6))
        allowed = sum(n.num_addresses for n in merged)
        evidence = group[0].evidence
        for r in group[1:]:
            evidence = evidence.merged(r.evidence)
        if sorted(merged, key=_key) != sorted(set(nets), key=_key):
            over = " (over budget: the floor or the cluster's ranges stop further widening)" if len(merged) > budget.max_cidrs else ""
            notes.append(f"{direction} {port.protocol}/{port.port}: {len(set(nets))} CIDRs -> {len(merged)} "
                         f"({', '.join(str(n) for n in merged)}); {allowed - seen} never-seen addresses allowed{over}")
        for n in merged:
            # The merged rule carries the evidence of every address it covers.
            ev = evidence
            if len(merged) > 1:
                inside = [r for r, orig in zip(group, nets, strict=True) if orig.version == n.version and orig.subnet_of(n)]  # type: ignore[arg-type]
                ev = inside[0].evidence
                for r in inside[1:]:
                    ev = ev.merged(r.evidence)
            out.append(Rule(CidrPeer(str(n)), port, ev))
    return tuple(out)


def collapse(nets: list[Network], budget: CidrBudget, blocked: list[Network], known: list[Network]) -> list[Network]:
    """The fewest CIDRs (at most ``budget.max_cidrs`` where the limits allow) covering ``nets``."""
    out: list[Network] = []
    for version, floor in ((4, budget.floor_v4), (6, budget.floor_v6)):
        mine = [n for n in nets if n.version == version]
        if not mine:
            continue
        absorbed = []
        for n in mine:
            home = next((k for k in known if k.version == version and n.subnet_of(k)  # type: ignore[arg-type]
                         and not _touches(k, blocked)), None)
            absorbed.append(home or n)
        blocks = list(ipaddress.collapse_addresses(absorbed))  # type: ignore[arg-type, type-var]  # one IP version per call
        out.extend(_greedy(blocks, budget.max_cidrs - sum(1 for o in out), floor, blocked))
    return sorted(out, key=_key)


def _greedy(blocks: list[Network], limit: int, floor: int, blocked: list[Network]) -> list[Network]:
    blocks = sorted(blocks, key=_key)
    while len(blocks) > max(limit, 1):
        best: tuple[int, int, Network] | None = None
        for i in range(len(blocks) - 1):
            sup = _supernet(blocks[i], blocks[i + 1])
            if sup.prefixlen < floor or _touches(sup, blocked):
                continue
            cost = sup.num_addresses - sum(b.num_addresses for b in blocks if b.subnet_of(sup))  # type: ignore[arg-type, misc]
            if best is None or cost < best[0]:
                best = (cost, i, sup)
        if best is None:
            break
        sup = best[2]
        blocks = sorted([b for b in blocks if not b.subnet_of(sup)] + [sup], key=_key)  # type: ignore[arg-type]
    return blocks


def _supernet(a: Network, b: Network) -> Network:
    prefix = min(a.prefixlen, b.prefixlen)
    while not b.subnet_of(a.supernet(new_prefix=prefix)):  # type: ignore[arg-type]
        prefix -= 1
    return a.supernet(new_prefix=prefix)


def _touches(net: Network, blocked: list[Network]) -> bool:
    return any(b.version == net.version and net.overlaps(b) for b in blocked)  # type: ignore[arg-type]


def _networks(items: Iterable[Network | str]) -> list[Network]:
    return [n if not isinstance(n, str) else ipaddress.ip_network(n, strict=False) for n in items]


def _key(n: Network) -> tuple[int, int, int]:
    return (n.version, int(n.network_address), n.prefixlen)


def cluster_addresses(inventory: object, model: PolicyModel) -> list[Network]:
    """What a widened CIDR must never reach: the cluster's pod and Service ranges, every pod,
    Service and node address the inventory knows, and every node address the model names."""
    from netpolgen.model import NodePeer

    nets: list[Network] = list(getattr(inventory, "_cluster_networks", []))
    points: set[str] = set()
    for p in getattr(inventory, "pods", []):
        points.update(p.ips)
        if p.host_ip:
            points.add(p.host_ip)
    for s in getattr(inventory, "services", []):
        points.update(s.cluster_ips)
    for n in getattr(inventory, "nodes", []):
        points.update(getattr(n, "addresses", ()) or ())
    for w in model.workloads:
        for r in w.ingress + w.egress:
            if isinstance(r.peer, NodePeer):
                points.add(r.peer.address)
    for text in points:
        try:
            nets.append(ipaddress.ip_network(text))
        except ValueError:
            continue
    return nets
