"""The rules every namespace shares: what a cluster-wide baseline (a
CiliumClusterwideNetworkPolicy, a ClusterNetworkPolicy of the Baseline tier) states once.

A rule (direction, peer, port) is shared when some workload of every namespace of the model has
it, with a workload or outside-address peer (DNS to kube-dns, scrapes from a monitoring
namespace, an outside API every namespace calls).
With a single namespace only DNS counts: "every namespace" of one is that namespace's own
rules, and a baseline would hand them to workloads never seen to need them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netpolgen.model import EGRESS, INGRESS, CidrPeer, PolicyModel, Rule, WorkloadPeer

DNS_PORT = 53


@dataclass(frozen=True)
class SharedRules:
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    namespaces: tuple[str, ...] = ()
    _keys: frozenset = field(default=frozenset(), compare=False)

    @property
    def empty(self) -> bool:
        return not self.ingress and not self.egress

    def has(self, namespace: str, direction: str, rule: Rule) -> bool:
        return namespace in self.namespaces and (direction, rule.peer, rule.port) in self._keys


def shared_rules(model: PolicyModel) -> SharedRules:
    per_ns: dict[str, dict[tuple, Rule]] = {ns: {} for ns in model.namespaces}
    for w in model.workloads:
        table = per_ns.setdefault(w.namespace, {})
        for direction, dir_rules in ((INGRESS, w.ingress), (EGRESS, w.egress)):
            for r in dir_rules:
                key = (direction, r.peer, r.port)
                table[key] = Rule(r.peer, r.port, table[key].evidence.merged(r.evidence)) if key in table else r
    if not per_ns or any(not t for t in per_ns.values()):
        return SharedRules()
    common = set.intersection(*(set(t) for t in per_ns.values()))
    several = len(per_ns) > 1
    keys = frozenset(
        k for k in common
        if isinstance(k[1], (WorkloadPeer, CidrPeer))
        and (several or (k[0] == EGRESS and k[2].port == DNS_PORT))
    )
    def rules(direction: str) -> tuple[Rule, ...]:
        out = []
        for k in sorted((k for k in keys if k[0] == direction), key=repr):
            ev = None
            for t in per_ns.values():
                ev = t[k].evidence if ev is None else ev.merged(t[k].evidence)
            out.append(Rule(k[1], k[2], ev))  # type: ignore[arg-type]
        return tuple(out)
    return SharedRules(rules(INGRESS), rules(EGRESS), tuple(sorted(per_ns)), keys)
