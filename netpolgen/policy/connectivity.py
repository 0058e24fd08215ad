"""Workload-level connectivity: for every ordered pair of peers, what a policy set allows.

Peers are workloads (pods grouped by their owner; the naming is a parameter) and address
ranges: the atoms cut by the ipBlocks of ingress rules on the source side and of egress rules on
the destination side (np-guard netpol-analyzer's connlist shows them the same way). Pairs of
two addresses and a workload with itself are left out.

For each pair the allowed set is egress-at-source ∩ ingress-at-destination, computed once per
distinct (rules governing, rules admitting) combination over the compiled bitsets, so the cost
grows with the number of distinct pod classes, not with pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

from netpolgen.inventory import Inventory, Pod
from netpolgen.policy.compiled import Compiled, DirectionTables, bit_indices, unique_rows
from netpolgen.policy.conns import ConnSet
from netpolgen.policy.ipspace import IPRange
from netpolgen.policy.model import EGRESS, INGRESS, NetworkPolicy

WorkloadNamer = Callable[[Pod], str]


def external_name(r: IPRange) -> str:
    """How an address range is named as a peer: ``a.b.c.d-w.x.y.z[External]``."""
    return f"{r}[External]"


@dataclass
class Connectivity:
    """What a policy set allows between peers (only non-empty pairs are kept)."""

    conns: dict[tuple[str, str], ConnSet] = field(default_factory=dict)
    workloads: tuple[str, ...] = ()
    ip_ranges: dict[str, IPRange] = field(default_factory=dict)  # peer name → range
    ingress_isolated: frozenset[str] = frozenset()
    egress_isolated: frozenset[str] = frozenset()

    def lines(self) -> list[tuple[str, str, ConnSet]]:
        return [(s, d, c) for (s, d), c in sorted(self.conns.items())]


class _Interner:
    """ConnSets by small integer id (id 0 is "nothing"), with cached intersections and unions."""

    def __init__(self) -> None:
        self.sets: list[ConnSet] = [ConnSet.none(), ConnSet.all()]
        self._ids: dict[ConnSet, int] = {ConnSet.none(): 0, ConnSet.all(): 1}
        self._and: dict[tuple[int, int], int] = {}
        self._or: dict[tuple[int, int], int] = {}

    NONE = 0
    ALL = 1

    def id(self, c: ConnSet) -> int:
        i = self._ids.get(c)
        if i is None:
            i = self._ids[c] = len(self.sets)
            self.sets.append(c)
        return i

    def both(self, a: int, b: int) -> int:
        key = (a, b) if a <= b else (b, a)
        hit = self._and.get(key)
        if hit is None:
            hit = self._and[key] = self.id(self.sets[a] & self.sets[b])
        return hit

    def either(self, a: int, b: int) -> int:
        key = (a, b) if a <= b else (b, a)
        hit = self._or.get(key)
        if hit is None:
            hit = self._or[key] = self.id(self.sets[a] | self.sets[b])
        return hit


def compute_connectivity(
    inventory: Inventory,
    policies: Iterable[NetworkPolicy],
    *,
    workload_name: WorkloadNamer | None = None,
    host_network_as_pods: bool = False,
    include_ipv6: bool | None = None,
    extra_ranges: Mapping[str, Iterable[IPRange]] | None = None,
    compiled: Compiled | None = None,
) -> Connectivity:
    """Connectivity of ``policies`` over ``inventory``. ``workload_name`` groups pods (default:
    the inventory's workload, ``namespace/name[Kind]``). IPv6 ranges appear when a policy or a pod
    uses IPv6, unless ``include_ipv6`` says otherwise. ``extra_ranges`` adds cut points per
    direction (to compare two policy sets on common atoms)."""
    c = compiled or Compiled(inventory, policies, host_network_as_pods=host_network_as_pods, extra_ranges=extra_ranges)
    name_of = workload_name or (lambda pod: str(inventory.workload_of(pod)))
    if include_ipv6 is None:
        include_ipv6 = _uses_ipv6(c)
    families = (4, 6) if include_ipv6 else (4,)

    interner = _Interner()
    eg = _direction_matrix(c, c.tables[EGRESS], interner)  # (classes, entities): at source → to
    ing = _direction_matrix(c, c.tables[INGRESS], interner)  # (classes, entities): at dest ← from
    n = c.n_classes

    # class → class: egress at the source ∩ ingress at the destination.
    pair = np.zeros((n, n), dtype=np.int64)
    if n:
        e_ids, i_ids = eg[:, :n], ing[:, :n].T
        keys = e_ids * len(interner.sets) + i_ids
        uniq, inverse = np.unique(keys, return_inverse=True)
        width = len(interner.sets)
        combined = np.array([interner.both(int(k // width), int(k % width)) for k in uniq], dtype=np.int64)
        pair = combined[inverse.reshape(keys.shape)]

    # Workloads and their classes.
    classes_of: dict[str, set[int]] = {}
    for i, pod in enumerate(c.pods):
        classes_of.setdefault(name_of(pod), set()).add(int(c.pod_class[i]))
    names = sorted(classes_of)
    out = Connectivity(workloads=tuple(names))

    def union(ids: Iterable[int]) -> int:
        acc = interner.NONE
        for x in ids:
            acc = interner.either(acc, int(x))
        return acc

    # Most workloads are one pod class: their rows and columns are read straight from the
    # class matrices, a workload row at a time; only workloads of several classes take unions.
    class_lists = [sorted(classes_of[w]) for w in names]
    first = np.array([cl[0] for cl in class_lists], dtype=np.int64)
    several = [i for i, cl in enumerate(class_lists) if len(cl) > 1]

    def between(i: int, j: int) -> int:
        return union(pair[x, y] for x in class_lists[i] for y in class_lists[j])

    def workload_row(i: int) -> np.ndarray:
        if len(class_lists[i]) == 1:
            row = pair[first[i], first]  # a copy (fancy indexing)
            for j in several:
                row[j] = between(i, j)
        else:
            row = np.array([between(i, j) for j in range(len(names))], dtype=np.int64)
        row[i] = interner.NONE  # a workload with itself is not a pair
        return row

    for i, a in enumerate(names):
        row = workload_row(i)
        for j in np.flatnonzero(row != interner.NONE).tolist():
            out.conns[(a, names[j])] = interner.sets[int(row[j])]
    # Workloads and address atoms: egress atoms are destinations, ingress atoms sources.
    for direction, matrix in ((EGRESS, eg), (INGRESS, ing)):
        for ent, rng in c.atoms(direction):
            if rng.family not in families:
                continue
            peer = external_name(rng)
            column = matrix[first, ent]
            for i in several:
                column[i] = union(matrix[x, ent] for x in class_lists[i])
            for i in np.flatnonzero(column != interner.NONE).tolist():
                w = names[i]
                out.conns[(w, peer) if direction == EGRESS else (peer, w)] = interner.sets[int(column[i])]
                out.ip_ranges[peer] = rng
    out.ingress_isolated = frozenset(w for w in names if any(c.tables[INGRESS].isolated[x] for x in classes_of[w]))
    out.egress_isolated = frozenset(w for w in names if any(c.tables[EGRESS].isolated[x] for x in classes_of[w]))
    return out


def _uses_ipv6(c: Compiled) -> bool:
    if any(":" in ip for p in c.pods for ip in p.ips):
        return True
    return any(r.family == 6 for d in (INGRESS, EGRESS) for cr in c.tables[d].rules
               for peer in cr.rule.peers if peer.ip_block for r in peer.ip_block.ranges)


def _direction_matrix(c: Compiled, t: DirectionTables, interner: _Interner) -> np.ndarray:
    """(classes, entities) ConnSet ids: what the governed class allows with each peer entity in
    this direction (all, when the class is not isolated in it)."""
    n_ent = t.unknown_entity + 1
    out = np.full((c.n_classes, n_ent), interner.ALL, dtype=np.int64)
    cache: dict[tuple, int] = {}
    named_mask = t.named_rule_mask
    for cls in np.flatnonzero(t.isolated):
        masks = t.apply[cls][None, :] & t.peer  # (entities, words)
        uniq, inverse = unique_rows(masks)
        ids = np.zeros(len(uniq), dtype=np.int64)
        per_entity: dict[int, int] = {}
        for u, row in enumerate(uniq):
            has_named = named_mask is not None and bool((row & named_mask).any())
            if not has_named:
                key: tuple[bytes, tuple | None] = (row.tobytes(), None)
                hit = cache.get(key)
                if hit is None:
                    hit = cache[key] = interner.id(_union_rules(t, row, None))
                ids[u] = hit
            else:
                # Named ports resolve on the destination: the governed class for ingress, the
                # peer (when a pod class) for egress.
                for e in np.flatnonzero(inverse.reshape(-1) == u):
                    dst_cls = int(cls) if t.direction == INGRESS else (int(e) if e < c.n_classes else -1)
                    ports = c.class_named_ports[dst_cls] if dst_cls >= 0 else None
                    key = (row.tobytes(), tuple(sorted(ports.items())) if ports else ())
                    hit = cache.get(key)
                    if hit is None:
                        hit = cache[key] = interner.id(_union_rules(t, row, ports))
                    per_entity[int(e)] = hit
        out[cls] = ids[inverse.reshape(-1)]
        for entity, cid in per_entity.items():
            out[cls, entity] = cid
    return out


def _union_rules(t: DirectionTables, row: np.ndarray, named_ports: Mapping[tuple[str, str], int] | None) -> ConnSet:
    acc = ConnSet.none()
    for j in bit_indices(row):
        acc = acc | t.rules[j].conns(named_ports)
    return acc


def format_connlist(conn: Connectivity) -> str:
    """np-guard's connlist text: ``src => dst : conns``, one line per pair, sorted."""
    return "".join(f"{s} => {d} : {c}\n" for s, d, c in conn.lines())
