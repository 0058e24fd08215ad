"""Model passes that say a peer the way an output kind can: outside addresses by the DNS names
the flows carry for them (``DnsNamePeer``, Cilium's ``toFQDNs``), and node addresses by the
Hubble identity they were seen with (``EntityPeer``: ``host``, ``remote-node``,
``kube-apiserver``). The NetworkPolicy output never runs them: it can say neither.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Mapping

from netpolgen.model import CidrPeer, DnsNamePeer, EntityPeer, NodePeer, PolicyModel, Rule, WorkloadRules

# A node address seen with no Hubble identity (a capture, a flow log without labels) may be the
# pod's own node or another: both entities, as Cilium gives nodes no CIDR identity.
NODE_ENTITIES = ("host", "remote-node")


def names_by_address(w: WorkloadRules) -> dict[str, tuple[str, ...]]:
    """address -> the DNS names the flows carried for it (``WorkloadRules.dns_names``)."""
    out: dict[str, tuple[str, ...]] = {}
    for item in w.dns_names:
        addr, _, names = item.partition("=")
        out[addr] = tuple(sorted({_canonical(n) for n in names.split(",") if n.strip()}))
    return out


def _canonical(name: str) -> str:
    return name.strip().rstrip(".").lower()


def with_dns_names(model: PolicyModel) -> PolicyModel:
    """Egress to a named outside address becomes egress to each of its names, on the same port."""
    out = []
    for w in model.workloads:
        named = names_by_address(w)
        egress: list[Rule] = []
        for r in w.egress:
            addr = _single_address(r.peer)
            if addr is not None and named.get(addr):
                egress.extend(Rule(DnsNamePeer(n), r.port, r.evidence) for n in named[addr])
            else:
                egress.append(r)
        out.append(replace(w, egress=tuple(_dedupe(egress))))
    return replace(model, workloads=tuple(out))


def with_entities(model: PolicyModel, entities: Mapping[str, set[str]]) -> PolicyModel:
    """Node peers become the entities their address was seen as (``NODE_ENTITIES`` when unknown)."""
    def convert(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        res: list[Rule] = []
        for r in rules:
            if isinstance(r.peer, NodePeer):
                names = sorted(entities.get(r.peer.address) or NODE_ENTITIES)
                res.extend(Rule(EntityPeer(e), r.port, r.evidence) for e in names)
            else:
                res.append(r)
        return tuple(_dedupe(res))

    return replace(model, workloads=tuple(replace(w, ingress=convert(w.ingress), egress=convert(w.egress))
                                          for w in model.workloads))


def _single_address(peer: object) -> str | None:
    if isinstance(peer, CidrPeer):
        net = ipaddress.ip_network(peer.cidr, strict=False)
        if net.num_addresses == 1:
            return str(net.network_address)
    return None


def _dedupe(rules: list[Rule]) -> list[Rule]:
    """One rule per (peer, port), evidence merged: two addresses may share a name."""
    seen: dict[tuple, Rule] = {}
    for r in rules:
        key = (r.peer, r.port)
        seen[key] = Rule(r.peer, r.port, seen[key].evidence.merged(r.evidence)) if key in seen else r
    return list(seen.values())
