"""A policy set compiled against an inventory: the matrices bulk evaluation and connectivity use.

The point is to touch each selector once, not once per connection. Pods that no policy can tell
apart (same namespace, same labels, same resolution of the named ports policies use) form one
*class*; addresses that no ipBlock can tell apart form one *atom*. Then, per direction:

- ``apply[c]``: the rules that govern class ``c`` (rules of policies selecting it);
- ``peer[e]``: the rules whose ``from``/``to`` admits entity ``e`` (a class or an atom);
- ``ports[k]``: the rules whose ports admit (protocol, port) pair ``k``; rules are labelled
  with their distinct numeric port set (``port_sets``), which the evaluator matches against the
  pairs it is asked about; named ports are resolved per destination class and added on top.

Rows are bitsets over rules (uint64 words), so "is this connection allowed" is an AND of three
rows and a test for any bit, done for all distinct connections at once. A class is governed by
few policies, whose rules sit in few words (rules are numbered policy by policy), so classes
with the same ``apply`` row form a *group*, and the evaluator reads only that group's words.

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


def _packed_row(indices: list[int], n: int) -> np.ndarray:
    """One packed row of ``n`` bits with ``indices`` set."""
    row = np.zeros((1, n), dtype=bool)
    row[0, indices] = True
    return pack_bits(row)[0]


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, inverse) of a 2-D uint64 bitset array, like ``np.unique(rows, axis=0,
    return_inverse=True)`` but without its sort of whole rows (slow for wide rows, and run once
    per isolated class): rows are hashed to one number, the hashes made unique, and the result
    checked row by row, falling back to ``np.unique`` in the unlikely event of a collision."""
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        return np.unique(rows, axis=0, return_inverse=True)
    words = rows.astype(np.uint64, copy=False)
    salt = (np.arange(1, words.shape[1] + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    with np.errstate(over="ignore"):
        mixed = words * salt
        mixed ^= mixed >> np.uint64(29)
        mixed *= np.uint64(0xBF58476D1CE4E5B9)
        h = np.bitwise_xor.reduce(mixed, axis=1) + np.add.reduce(mixed, axis=1)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    uniq = rows[first]
    inverse = inverse.reshape(-1)
    if not np.array_equal(uniq[inverse], rows):
        return np.unique(rows, axis=0, return_inverse=True)
    return uniq, inverse


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
        # Distinct numeric port sets; set 0 allows nothing (rules with named ports only, and the
        # padding bits of the last word), set 1 is a rule without ports (any protocol, any port).
        self.port_sets: list[ConnSet | None] = [ConnSet.none(), None]
        self.rule_port_set: np.ndarray = np.zeros(64, dtype=np.int64)  # per rule bit (words * 64)
        # Classes with the same apply row: group per class, and the nonzero words of each group.
        self.apply_group: np.ndarray = np.zeros(0, dtype=np.int64)
        self.group_words: list[np.ndarray] = []
        # Named ports resolved per class: (class, protocol, port) of each entry, and the packed
        # rules whose named port resolves to that port on that class, one row per entry.
        self.named_entries: list[tuple[int, str, int]] = []
        self.named_rows: np.ndarray = np.zeros((0, 1), dtype=np.uint64)

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
                        for r in pol.rules(d) for spec in r.ports if isinstance(spec.port, str)}
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
        self._build_rules(t)
        n_rules = len(t.rules)

        selects = np.zeros((self.n_classes, len(t.policy_ids)), dtype=bool)
        for j, pi in enumerate(t.policy_ids):
            selects[:, j] = self.policy_selects(self.policies[pi])
        t.selects = selects
        t.isolated = np.any(selects, axis=1) if len(t.policy_ids) else np.zeros(self.n_classes, dtype=bool)
        col_of_policy = {pi: j for j, pi in enumerate(t.policy_ids)}
        rule_cols = np.array([col_of_policy[r.policy_index] for r in t.rules], dtype=np.int64)
        t.apply = pack_bits(selects[:, rule_cols] if n_rules else np.zeros((self.n_classes, 0), dtype=bool))
        if self.n_classes:
            groups, inverse = unique_rows(t.apply)
            t.apply_group = inverse.reshape(-1).astype(np.int64)
            t.group_words = [np.flatnonzero(row) for row in groups]

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
        t.peer = pack_bits(self._peer_matrix(t, offset + 1))
        self._build_named(t)
        return t

    def _build_rules(self, t: DirectionTables) -> None:
        """The direction's rules in policy order, each with its numeric ports and port set
        worked out once per distinct port list (parsing shares equal lists)."""
        by_list: dict[int, tuple[ConnSet, tuple[tuple[str, str], ...], int]] = {}
        set_index: dict[ConnSet, int] = {}
        port_set: list[int] = []
        for pi in t.policy_ids:
            pol = self.policies[pi]
            for rule in pol.rules(t.direction):
                hit = by_list.get(id(rule.ports))  # the tuple lives as long as the policy
                if hit is None:
                    numeric = rule.conns()  # named ports resolve nowhere without a destination
                    if rule.all_ports:
                        index = 1
                    else:
                        index = 0 if numeric.is_empty else set_index.setdefault(numeric, len(set_index) + 2)
                    named = tuple((str(s.port), s.protocol) for s in rule.ports if s.is_named)
                    hit = by_list[id(rule.ports)] = (numeric, named, index)
                t.rules.append(CompiledRule(pol.ref(rule), rule, pi, hit[0], hit[1]))
                port_set.append(hit[2])
        t.port_sets = [ConnSet.none(), None, *set_index]
        t.rule_port_set = np.zeros(max(1, (len(t.rules) + 63) // 64) * 64, dtype=np.int64)
        t.rule_port_set[: len(port_set)] = port_set

    def _peer_matrix(self, t: DirectionTables, n_entities: int) -> np.ndarray:
        """(entities, rules) booleans: the rule's peers admit the entity. Each distinct peer (with
        the namespace it defaults to) is matched once, then set for all the rules naming it."""
        peer = np.zeros((n_entities, len(t.rules)), dtype=bool)
        every: list[int] = []
        distinct: dict[tuple[int, str], int] = {}  # (id(peer), policy namespace) → index
        by_content: dict[tuple[PolicyPeer, str], int] = {}
        entities: list[np.ndarray] = []
        rules_of: list[list[int]] = []
        for j, cr in enumerate(t.rules):
            if cr.rule.all_peers:
                every.append(j)
                continue
            pol = self.policies[cr.policy_index]
            for p in cr.rule.peers:
                key = (id(p), pol.namespace)  # peers live as long as their policy
                k = distinct.get(key)
                if k is None:
                    # Only a selector peer without namespaceSelector depends on the namespace.
                    own_ns = p.ip_block is None and p.namespace_selector is None
                    content = (p, pol.namespace if own_ns else "")
                    k = by_content.get(content)
                    if k is None:
                        k = by_content[content] = len(entities)
                        entities.append(self._peer_entities(t, pol, p))
                        rules_of.append([])
                    distinct[key] = k
                rules_of[k].append(j)
        for ents, rules in zip(entities, rules_of, strict=True):
            if len(ents):
                peer[np.ix_(ents, np.array(rules, dtype=np.int64))] = True
        peer[:, every] = True
        return peer

    def _peer_entities(self, t: DirectionTables, policy: NetworkPolicy, p: PolicyPeer) -> np.ndarray:
        """The entities (classes, or atoms of ``t``) that one peer of ``policy`` admits."""
        if p.ip_block is None:
            return np.flatnonzero(self.peer_selects_classes(policy, p))
        spans = []
        for r in p.ip_block.ranges:
            # Atoms are cut at every block boundary: each lies wholly in or out.
            part = t.partitions[r.family]
            off = t.atom_offset[r.family]
            spans.append(np.arange(off + part.index_of(r.start), off + part.index_of(r.end) + 1))
        return np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)

    def _build_named(self, t: DirectionTables) -> None:
        """Per class, the rules whose named ports resolve on it, by (protocol, port)."""
        named_rules = [j for j, cr in enumerate(t.rules) if cr.named]
        if not named_rules:
            return
        t.named_rule_mask = _packed_row(named_rules, len(t.rules))
        by_name: dict[tuple[str, str], list[int]] = {}
        for j in named_rules:
            for name_proto in t.rules[j].named:
                by_name.setdefault(name_proto, []).append(j)
        name_rows = {name_proto: _packed_row(rules, len(t.rules)) for name_proto, rules in by_name.items()}
        rows: dict[tuple[int, str, int], np.ndarray] = {}
        for c in range(self.n_classes):
            for (name, proto), port in self.class_named_ports[c].items():
                row = name_rows.get((name, proto))
                if row is None:
                    continue
                key = (c, proto, port)
                rows[key] = rows[key] | row if key in rows else row
        t.named_entries = list(rows)
        t.named_rows = np.array(list(rows.values()), dtype=np.uint64).reshape(len(rows), t.words)

    # ----- helpers for callers ----------------------------------------------------------------

    def atom_entity(self, direction: str, family: int, value: int) -> int:
        """Entity index of the atom holding address ``value`` in ``direction``'s tables."""
        t = self.tables[direction]
        return t.atom_offset[family] + t.partitions[family].index_of(value)

    def atoms(self, direction: str) -> list[tuple[int, IPRange]]:
        """(entity index, range) of every atom of ``direction``'s peer address space."""
        t = self.tables[direction]
        out: list[tuple[int, IPRange]] = []
        for family in (4, 6):
            off = t.atom_offset[family]
            out.extend((off + i, a) for i, a in enumerate(t.partitions[family].atoms()))
        return out

    def isolating_policies(self, direction: str, cls: int) -> list[str]:
        """The policies isolating class ``cls`` in ``direction`` (sorted keys)."""
        t = self.tables[direction]
        cols: np.ndarray | list[int] = np.flatnonzero(t.selects[cls]) if t.selects.size else []
        return [self.policies[t.policy_ids[j]].key for j in cols]
