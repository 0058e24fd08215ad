"""A policy set compiled against an inventory: the matrices bulk evaluation and connectivity use.

The point is to touch each selector once, not once per connection. Pods that no policy can tell
apart (same namespace, same labels, same resolution of the named ports policies use) form one
*class*; addresses that no ipBlock can tell apart form one *atom*. Then, per direction:

- ``apply[c]``: the rules that govern class ``c`` (rules of policies selecting it);
- ``peer[e]``: the rules whose ``from``/``to`` admits entity ``e`` (a class or an atom);
- ``ports[k]``: the rules whose ports admit (protocol, port) pair ``k``; named ports are
  resolved per destination class and added on top.

Rows are bitsets over rules (uint64 words), so "is this connection allowed" is an AND of three
rows and a test for any bit, done for all distinct connections at once.

Semantics follow networking.k8s.io/v1: a pod is isolated in a direction when some policy
affecting that direction selects it; an isolated pod's traffic in that direction is allowed iff
some rule of those policies admits the peer and the port. ipBlocks never select pods (pod IPs
are ephemeral; the API says ipBlock is meant for cluster-external addresses) and selectors never
select addresses; a rule without peers admits both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from netpolgen.inventory import Inventory, Pod
from netpolgen.policy.conns import ConnSet
from netpolgen.policy.ipspace import IPRange, Partition
from netpolgen.policy.model import DIRECTIONS, NetworkPolicy, PolicyPeer, PolicyRule, RuleRef
from netpolgen.selectors import LabelSelector


def pack_bits(matrix: np.ndarray) -> np.ndarray:
    """(n, r) booleans → (n, w) uint64 bitsets, ``w = ceil(r / 64)`` (at least 1)."""
    n, r = matrix.shape
    words = max(1, (r + 63) // 64)
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :r] = matrix
    return np.ascontiguousarray(np.packbits(padded, axis=1, bitorder="little")).view(np.uint64)


def bit_indices(row: np.ndarray) -> list[int]:
    """The set bits of one packed row."""
    bits = np.unpackbits(row.view(np.uint8), bitorder="little")
    return np.flatnonzero(bits).tolist()


class LabelTable:
    """Label sets (one per row) indexed so that a selector matches all rows with a few array
    operations, and each distinct selector is matched once."""

    def __init__(self, label_sets: Sequence[Mapping[str, str]]) -> None:
        self.n = len(label_sets)
        values: dict[str, dict[int, str]] = {}
        for i, labels in enumerate(label_sets):
            for k, v in labels.items():
                values.setdefault(k, {})[i] = v
        self._codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        for k, by_row in values.items():
            vocab: dict[str, int] = {}
            codes = np.full(self.n, -1, dtype=np.int32)
            for i, v in by_row.items():
                codes[i] = vocab.setdefault(v, len(vocab))
            self._codes[k] = (codes, vocab)
        self._cache: dict[LabelSelector, np.ndarray] = {}

    def match(self, sel: LabelSelector) -> np.ndarray:
        hit = self._cache.get(sel)
        if hit is not None:
            return hit
        m = np.ones(self.n, dtype=bool)
        for key, value in sel.match_labels:
            codes, vocab = self._codes.get(key, (None, {}))
            if codes is None or value not in vocab:
                m[:] = False
                break
            m &= codes == vocab[value]
        for req in sel.match_expressions:
            codes, vocab = self._codes.get(req.key, (None, {}))
            if req.operator in ("In", "NotIn"):
                wanted = [vocab[v] for v in req.values if v in vocab]
                inside = np.isin(codes, wanted) if codes is not None else np.zeros(self.n, dtype=bool)
                m &= inside if req.operator == "In" else ~inside
            elif req.operator == "Exists":
                m &= codes >= 0 if codes is not None else False
            else:  # DoesNotExist
                m &= codes < 0 if codes is not None else True
        self._cache[sel] = m
        return m


@dataclass(frozen=True)
class CompiledRule:
    ref: RuleRef
    rule: PolicyRule
    policy_index: int  # into Compiled.policies
    numeric: ConnSet  # what the rule's numeric (and port-less) items allow
    named: tuple[tuple[str, str], ...]  # (name, protocol) of its named ports

    def conns(self, named_ports: Mapping[tuple[str, str], int] | None) -> ConnSet:
        """All the rule allows towards a destination whose named ports are ``named_ports``."""
        if not self.named or not named_ports:
            return self.numeric
        out = self.numeric
        for name, proto in self.named:
            port = named_ports.get((name, proto))
            if port is not None:
                out = out | ConnSet.of(proto, port, port)
        return out


class DirectionTables:
    """Everything about one direction (ingress or egress)."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.policy_ids: list[int] = []  # policies affecting this direction
        self.rules: list[CompiledRule] = []
        self.selects: np.ndarray = np.zeros((0, 0), dtype=bool)  # (classes, policies here)
        self.isolated: np.ndarray = np.zeros(0, dtype=bool)  # per class
        self.apply: np.ndarray = np.zeros((0, 1), dtype=np.uint64)  # packed (classes, rules)
        self.peer: np.ndarray = np.zeros((0, 1), dtype=np.uint64)  # packed (entities, rules)
        self.partitions: dict[int, Partition] = {}  # family → atoms of the *other* end's addresses
        self.atom_offset: dict[int, int] = {}  # family → entity index of its first atom
        self.unknown_entity = 0  # entity index standing for an unreadable address
        self.named_rule_mask: np.ndarray | None = None  # packed row of rules with named ports
        # class → {(protocol, port): packed rules whose named port resolves to it on the class}
        self.named_by_class: list[dict[tuple[str, int], np.ndarray]] = []

    @property
    def words(self) -> int:
        return self.apply.shape[1]


class Compiled:
    """A policy set compiled over an inventory. See the module docstring."""

    def __init__(
        self,
        inventory: Inventory,
        policies: Iterable[NetworkPolicy],
        *,
        host_network_as_pods: bool = False,
        extra_ranges: Mapping[str, Iterable[IPRange]] | None = None,
    ) -> None:
        self.inventory = inventory
        self.policies: list[NetworkPolicy] = sorted(policies, key=lambda p: p.key)
        self.host_network_as_pods = host_network_as_pods
        # The pods policies can select. hostNetwork pods share their node's address and are
        # reached only by ipBlock, unless asked otherwise (np-guard treats them as pods).
        self.pods: list[Pod] = [p for p in inventory.pods if host_network_as_pods or not p.host_network]
        self._pod_index = {id(p): i for i, p in enumerate(self.pods)}

        named_in_use = {(spec.port, spec.protocol) for pol in self.policies for d in DIRECTIONS
                        for r in pol.rules(d) for spec in r.ports if spec.is_named}
        self._build_classes(named_in_use)
        self._build_namespaces()
        self.tables = {d: self._build_direction(d, (extra_ranges or {}).get(d, ())) for d in DIRECTIONS}

    # ----- pods → classes ---------------------------------------------------------------------

    def _build_classes(self, named_in_use: set[tuple[str, str]]) -> None:
        signature_to_class: dict[tuple, int] = {}
        self.pod_class = np.zeros(len(self.pods), dtype=np.int64)
        self.class_namespace: list[str] = []
        self.class_labels: list[dict[str, str]] = []
        self.class_named_ports: list[dict[tuple[str, str], int]] = []
        self.class_pods: list[list[int]] = []
        for i, pod in enumerate(self.pods):
            named = tuple(sorted(
                (cp.name, cp.protocol, cp.port) for cp in pod.ports if (cp.name, cp.protocol) in named_in_use
            ))
            sig = (pod.namespace, tuple(sorted(pod.labels.items())), named)
            c = signature_to_class.get(sig)
            if c is None:
                c = signature_to_class[sig] = len(self.class_namespace)
                self.class_namespace.append(pod.namespace)
                self.class_labels.append(dict(pod.labels))
                # First container port of a name wins, as names are unique within a pod.
                ports: dict[tuple[str, str], int] = {}
                for name, proto, port in named:
                    ports.setdefault((name, proto), port)
                self.class_named_ports.append(ports)
                self.class_pods.append([])
            self.pod_class[i] = c
            self.class_pods[c].append(i)
        self.n_classes = len(self.class_namespace)
        self.label_table = LabelTable(self.class_labels)

    def _build_namespaces(self) -> None:
        names = sorted(set(self.inventory.namespaces) | set(self.class_namespace)
                       | {p.namespace for p in self.policies})
        self.namespace_names = names
        self.namespace_id = {n: i for i, n in enumerate(names)}
        self.ns_table = LabelTable([self.inventory.namespace_labels(n) for n in names])
        self.class_ns_id = np.array([self.namespace_id[n] for n in self.class_namespace], dtype=np.int64)

    def class_of(self, pod: Pod) -> int | None:
        i = self._pod_index.get(id(pod))
        return None if i is None else int(self.pod_class[i])

    # ----- policies → per-direction tables ----------------------------------------------------

    def policy_selects(self, policy: NetworkPolicy) -> np.ndarray:
        """Boolean per class: the policy's podSelector selects it (same namespace)."""
        ns_id = self.namespace_id.get(policy.namespace, -1)
        return (self.class_ns_id == ns_id) & self.label_table.match(policy.pod_selector)

    def peer_selects_classes(self, policy: NetworkPolicy, peer: PolicyPeer) -> np.ndarray:
        if peer.ip_block is not None:
            return np.zeros(self.n_classes, dtype=bool)
        if peer.namespace_selector is None:
            ns_ok = self.class_ns_id == self.namespace_id.get(policy.namespace, -1)
        else:
            ns_ok = self.ns_table.match(peer.namespace_selector)[self.class_ns_id]
        if peer.pod_selector is None:
            return ns_ok
        return ns_ok & self.label_table.match(peer.pod_selector)

    def _build_direction(self, direction: str, extra: Iterable[IPRange]) -> DirectionTables:
        t = DirectionTables(direction)
        t.policy_ids = [i for i, p in enumerate(self.policies) if p.affects(direction)]
        for pi in t.policy_ids:
            pol = self.policies[pi]
            for rule in pol.rules(direction):
                numeric = ConnSet.all() if rule.all_ports else ConnSet.none()
                for spec in rule.ports:
                    if not spec.is_named:
                        numeric = numeric | spec.conns()
                named = tuple((str(s.port), s.protocol) for s in rule.ports if s.is_named)
                t.rules.append(CompiledRule(pol.ref(rule), rule, pi, numeric, named))
        n_rules = len(t.rules)

        selects = np.zeros((self.n_classes, len(t.policy_ids)), dtype=bool)
        for j, pi in enumerate(t.policy_ids):
            selects[:, j] = self.policy_selects(self.policies[pi])
        t.selects = selects
        t.isolated = selects.any(axis=1) if len(t.policy_ids) else np.zeros(self.n_classes, dtype=bool)
        col_of_policy = {pi: j for j, pi in enumerate(t.policy_ids)}
        rule_cols = np.array([col_of_policy[r.policy_index] for r in t.rules], dtype=np.int64)
        t.apply = pack_bits(selects[:, rule_cols] if n_rules else np.zeros((self.n_classes, 0), dtype=bool))

        # Atoms of the peer addresses this direction's ipBlocks talk about.
        ranges: dict[int, list[IPRange]] = {4: [], 6: []}
        for cr in t.rules:
            for peer in cr.rule.peers:
                if peer.ip_block is not None:
                    for r in peer.ip_block.ranges:
                        ranges[r.family].append(r)
        for r in extra:
            ranges[r.family].append(r)
        offset = self.n_classes
        for family in (4, 6):
            t.partitions[family] = Partition(family, ranges[family])
            t.atom_offset[family] = offset
            offset += len(t.partitions[family])
        # The last entity is "an address we could not read": only peer-less rules admit it.
        t.unknown_entity = offset
        n_entities = offset + 1

        peer = np.zeros((n_entities, n_rules), dtype=bool)
        for j, cr in enumerate(t.rules):
            pol = self.policies[cr.policy_index]
            if cr.rule.all_peers:
                peer[:, j] = True
                continue
            for p in cr.rule.peers:
                if p.ip_block is None:
                    peer[: self.n_classes, j] |= self.peer_selects_classes(pol, p)
                    continue
                for family in (4, 6):
                    part = t.partitions[family]
                    off = t.atom_offset[family]
                    for r in p.ip_block.ranges:
                        if r.family != family:
                            continue
                        # Atoms are cut at every block boundary: each lies wholly in or out.
                        lo = part.index_of(r.start)
                        hi = part.index_of(r.end)
                        peer[off + lo: off + hi + 1, j] = True
        t.peer = pack_bits(peer)

        named_rules = [j for j, cr in enumerate(t.rules) if cr.named]
        if named_rules:
            mask = np.zeros((1, n_rules), dtype=bool)
            mask[0, named_rules] = True
            t.named_rule_mask = pack_bits(mask)[0]
        t.named_by_class = []
        for c in range(self.n_classes):
            table: dict[tuple[str, int], np.ndarray] = {}
            ports = self.class_named_ports[c]
            for j in named_rules:
                for name, proto in t.rules[j].named:
                    port = ports.get((name, proto))
                    if port is None:
                        continue
                    row = table.get((proto, port))
                    if row is None:
                        row = table[(proto, port)] = np.zeros(t.words, dtype=np.uint64)
                    row[j // 64] |= np.uint64(1) << np.uint64(j % 64)
            t.named_by_class.append(table)
        return t

    # ----- helpers for callers ----------------------------------------------------------------

    def atom_entity(self, direction: str, family: int, value: int) -> int:
        """Entity index of the atom holding address ``value`` in ``direction``'s tables."""
        t = self.tables[direction]
        return t.atom_offset[family] + t.partitions[family].index_of(value)

    def atoms(self, direction: str) -> list[tuple[int, IPRange]]:
        """(entity index, range) of every atom of ``direction``'s peer address space."""
        t = self.tables[direction]
        out = []
        for family in (4, 6):
            off = t.atom_offset[family]
            out.extend((off + i, a) for i, a in enumerate(t.partitions[family].atoms()))
        return out

    def isolating_policies(self, direction: str, cls: int) -> list[str]:
        """The policies isolating class ``cls`` in ``direction`` (sorted keys)."""
        t = self.tables[direction]
        cols = np.flatnonzero(t.selects[cls]) if t.selects.size else []
        return [self.policies[t.policy_ids[j]].key for j in cols]
