"""The engine: is a connection allowed by a set of NetworkPolicies, and which rules decided.

Two paths with one meaning:
- ``evaluate`` walks the policy model directly for one connection and keeps every reason; it
  is the readable statement of the semantics and what ``explain`` prints;
- ``evaluate_flows`` answers a whole table at once over the compiled bitsets (``compiled.py``),
  grouping identical (source, destination, port) questions so that a million observed
  connections cost a few array operations.
Tests hold the two to the same answers.

A connection is allowed iff the source's egress allows it and the destination's ingress allows
it. A direction of a pod is isolated when a policy affecting that direction selects the pod;
then some rule of those policies must admit the peer and the port. Non-pod endpoints (external
addresses, nodes, hostNetwork pods) have no policy of their own. Traffic between a pod and the
node it runs on is always allowed (as Kubernetes documents).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from netpolgen.errors import InventoryError
from netpolgen.inventory import Inventory, Pod
from netpolgen.policy.compiled import Compiled, DirectionTables, pack_bits
from netpolgen.policy.ipspace import parse_ip
from netpolgen.policy.model import EGRESS, INGRESS, NetworkPolicy, PolicyRule, RuleRef
from netpolgen.policy.verdict import DirectionVerdict, Endpoint, Verdict

if TYPE_CHECKING:
    from netpolgen.policy.connectivity import Connectivity

_CHUNK = 32768  # distinct questions evaluated per block (bounds memory: chunk × rule words)
_MIN_GROUP = 256  # questions below which an apply group is evaluated with other small ones
NODE_LOCAL_NOTE = "traffic between a pod and its own node is always allowed"
FLOW_COLUMNS = ("src_pod", "src_ip", "dst_pod", "dst_ip", "dst_port", "proto")


@dataclass(frozen=True)
class _Side:
    """A resolved endpoint: the selectable pod, or the parsed address."""

    endpoint: Endpoint
    pod: Pod | None
    addr: tuple[int, int] | None  # (family, value)


class Engine:
    """NetworkPolicy evaluation over one inventory. See the module docstring."""

    def __init__(
        self,
        inventory: Inventory,
        policies: Iterable[NetworkPolicy],
        *,
        host_network_as_pods: bool = False,
    ) -> None:
        self.inventory = inventory
        self.compiled = Compiled(inventory, policies, host_network_as_pods=host_network_as_pods)
        self.policies: list[NetworkPolicy] = self.compiled.policies
        self.host_network_as_pods = host_network_as_pods
        self._selectable = {id(p) for p in self.compiled.pods}

    # ----- rules ------------------------------------------------------------------------------

    def rules(self) -> list[tuple[RuleRef, PolicyRule]]:
        """Every rule that counts (rules of a direction a policy does not affect are ignored)."""
        return [(cr.ref, cr.rule) for d in (INGRESS, EGRESS) for cr in self.compiled.tables[d].rules]

    def rule_text(self) -> dict[RuleRef, str]:
        return {ref: rule.describe() for ref, rule in self.rules()}

    def connectivity(self, workload_name: Callable[[Pod], str] | None = None) -> "Connectivity":
        """Workload-level connectivity of this policy set (see ``policy.connectivity``)."""
        from netpolgen.policy.connectivity import compute_connectivity

        return compute_connectivity(self.inventory, self.policies, workload_name=workload_name, compiled=self.compiled)

    # ----- one connection, with reasons ---------------------------------------------------------

    def endpoint(self, text: str) -> Endpoint:
        return self._side(text).endpoint

    def _side(self, text: str) -> _Side:
        text = str(text).strip()
        pod = self.inventory.pod(text) if "/" in text else None
        if pod is not None:
            workload = str(self.inventory.workload_of(pod))
            if id(pod) in self._selectable:
                ip = pod.ips[0] if pod.ips else ""
                return _Side(Endpoint(text, pod.key, workload, ip), pod, None)
            ip = pod.ips[0] if pod.ips else pod.host_ip
            note = "hostNetwork pod: it has its node's address, which only ipBlocks can select"
            return _Side(Endpoint(text, "", workload, ip, note), None, parse_ip(ip) if ip else None)
        addr = parse_ip(text)
        if addr is None:
            raise InventoryError(None, text, "not a pod of the inventory (namespace/name) nor an IP address")
        return _Side(Endpoint(text, ip=text), None, addr)

    def evaluate(self, src: str, dst: str, port: int, proto: str) -> Verdict:
        """Evaluate one connection. ``src``/``dst`` are pod keys ("namespace/name") or addresses."""
        proto = str(proto).upper()
        port = int(port)
        s, d = self._side(src), self._side(dst)
        notes = [n for n in (s.endpoint.note, d.endpoint.note) if n]
        if _node_local(s, d) or _node_local(d, s):
            notes.append(NODE_LOCAL_NOTE)
            return Verdict(
                s.endpoint, d.endpoint, port, proto,
                DirectionVerdict(EGRESS, True, False, reason=NODE_LOCAL_NOTE),
                DirectionVerdict(INGRESS, True, False, reason=NODE_LOCAL_NOTE),
                tuple(notes),
            )
        egress = self._direction(EGRESS, s, d, d, port, proto)
        ingress = self._direction(INGRESS, d, s, d, port, proto)
        return Verdict(s.endpoint, d.endpoint, port, proto, egress, ingress, tuple(notes))

    def _direction(self, direction: str, selected: _Side, peer: _Side, dst: _Side, port: int, proto: str) -> DirectionVerdict:
        if selected.pod is None:
            role = "source" if direction == EGRESS else "destination"
            return DirectionVerdict(direction, True, False, reason=f"the {role} is not a pod: no {direction} policy applies")
        pod = selected.pod
        policies = [p for p in self.policies
                    if p.affects(direction) and p.namespace == pod.namespace and p.pod_selector.matches(pod.labels)]
        if not policies:
            return DirectionVerdict(direction, True, False, reason=f"no policy selects the pod for {direction}")
        named = dst.pod.named_port if dst.pod is not None else None
        admitted = tuple(
            p.ref(r) for p in policies for r in p.rules(direction)
            if self._peer_admitted(p, r, peer) and (r.all_ports or any(s.matches(proto, port, named) for s in r.ports))
        )
        keys = tuple(p.key for p in policies)
        if admitted:
            return DirectionVerdict(direction, True, True, keys, admitted)
        what = "from" if direction == INGRESS else "to"
        reason = f"no {direction} rule of these policies admits traffic {what} {peer.endpoint} on {proto}/{port}"
        return DirectionVerdict(direction, False, True, keys, (), reason)

    def _peer_admitted(self, policy: NetworkPolicy, rule: PolicyRule, peer: _Side) -> bool:
        if rule.all_peers:
            return True
        for p in rule.peers:
            if p.ip_block is not None:
                if peer.addr is not None and p.ip_block.contains(*peer.addr):
                    return True
                continue
            if peer.pod is None:
                continue
            if p.namespace_selector is None:
                ns_ok = peer.pod.namespace == policy.namespace
            else:
                ns_ok = p.namespace_selector.matches(self.inventory.namespace_labels(peer.pod.namespace))
            if ns_ok and (p.pod_selector is None or p.pod_selector.matches(peer.pod.labels)):
                return True
        return False

    # ----- many connections at once -----------------------------------------------------------

    def evaluate_flows(self, df: pd.DataFrame) -> pd.DataFrame:
        """Evaluate every row of ``df`` (columns ``src_pod``, ``src_ip``, ``dst_pod``, ``dst_ip``,
        ``dst_port``, ``proto``; pod keys may be empty). Returns a frame on ``df``'s index with
        ``allowed``, ``egress_allowed``, ``ingress_allowed``, ``egress_isolated``,
        ``ingress_isolated``, ``egress_policies``/``ingress_policies`` (the isolating policies,
        comma-joined), ``isolating_policies`` (those of the denying directions, for denied rows)
        and ``node_local``."""
        q = _Questions(self, df)
        n = len(df)
        egress_allowed = np.ones(n, dtype=bool)
        ingress_allowed = np.ones(n, dtype=bool)
        for direction, allowed in ((EGRESS, egress_allowed), (INGRESS, ingress_allowed)):
            rows, inverse, keys = q.distinct(direction)
            if not len(rows):
                continue
            verdict = np.zeros(len(keys[0]), dtype=bool)
            for idx, _, bits in q.blocks(direction, keys):
                verdict[idx] = bits.any(axis=1)
            allowed[rows] = verdict[inverse]
        egress_allowed |= q.node_local
        ingress_allowed |= q.node_local
        allowed = egress_allowed & ingress_allowed

        eg_pol = q.isolating_text(EGRESS, q.src_class)
        in_pol = q.isolating_text(INGRESS, q.dst_class)
        deciding = self._deciding_text(q, egress_allowed, ingress_allowed, eg_pol, in_pol)
        text = lambda a: pd.Series(a, index=df.index, dtype=object)  # noqa: E731 (object: no str conversion cost)
        return pd.DataFrame(
            {
                "allowed": allowed,
                "egress_allowed": egress_allowed,
                "ingress_allowed": ingress_allowed,
                "egress_isolated": q.isolated(EGRESS, q.src_class),
                "ingress_isolated": q.isolated(INGRESS, q.dst_class),
                "egress_policies": text(eg_pol),
                "ingress_policies": text(in_pol),
                "isolating_policies": text(deciding),
                "node_local": q.node_local,
            },
            index=df.index,
        )

    def _deciding_text(self, q: "_Questions", egress_allowed: np.ndarray, ingress_allowed: np.ndarray,
                       eg_pol: np.ndarray, in_pol: np.ndarray) -> np.ndarray:
        """For denied rows, the isolating policies of the denying direction(s), comma-joined.
        One direction: that side's text as is; both: the union, once per distinct pair of texts."""
        out = np.full(q.n, "", dtype=object)
        eg_only = ~egress_allowed & ingress_allowed
        in_only = egress_allowed & ~ingress_allowed
        out[eg_only] = eg_pol[eg_only]
        out[in_only] = in_pol[in_only]
        both = np.flatnonzero(~egress_allowed & ~ingress_allowed)
        if len(both):
            pairs = pd.Series(eg_pol[both]) + "|" + pd.Series(in_pol[both])
            codes, uniques = pd.factorize(pairs)
            texts = [",".join(sorted({x for x in u.replace("|", ",").split(",") if x})) for u in uniques]
            out[both] = np.array(texts, dtype=object)[np.asarray(codes)]
        return out

    def rule_usage(self, df: pd.DataFrame, weights: np.ndarray | pd.Series | None = None) -> dict[RuleRef, int]:
        """For every rule, the total weight (default: row count) of the rows of ``df`` it admits in
        its direction. A rule at 0 admitted nothing observed."""
        q = _Questions(self, df)
        w = np.ones(len(df), dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
        out: dict[RuleRef, int] = {}
        for direction in (EGRESS, INGRESS):
            t = self.compiled.tables[direction]
            counts = np.zeros(t.words * 64, dtype=np.int64)
            rows, inverse, keys = q.distinct(direction)
            if len(rows):
                qw = np.bincount(inverse, weights=w[rows], minlength=len(keys[0])).astype(np.int64)
                for idx, words, bits in q.blocks(direction, keys, chunk=4096):
                    unpacked = np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")
                    counts[_rule_bits(words)] += qw[idx] @ unpacked.astype(np.int64)
            for j, cr in enumerate(t.rules):
                out[cr.ref] = int(counts[j])
        return out

    def rule_rows(self, df: pd.DataFrame) -> dict[RuleRef, np.ndarray]:
        """For every rule, the (sorted, positional) rows of ``df`` it admits in its direction; a
        rule absent from the result admitted none. The same bitsets as ``rule_usage``, kept per row
        so that callers can gather any evidence of the rows (times, files, examples)."""
        q = _Questions(self, df)
        out: dict[RuleRef, np.ndarray] = {}
        for direction in (EGRESS, INGRESS):
            t = self.compiled.tables[direction]
            rows, inverse, keys = q.distinct(direction)
            if not len(rows):
                continue
            hit_q, hit_rule = [], []
            for idx, words, bits in q.blocks(direction, keys, chunk=4096):
                if not bits.shape[1]:
                    continue
                unpacked = np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")
                qi, bj = np.nonzero(unpacked)
                hit_q.append(idx[qi])
                hit_rule.append(_rule_bits(words)[bj])
            if not hit_q:
                continue
            questions, rules = np.concatenate(hit_q), np.concatenate(hit_rule)
            # Rows of each question, contiguous after one sort.
            order = np.argsort(inverse, kind="stable")
            starts = np.searchsorted(inverse[order], np.arange(len(keys[0])), side="left")
            ends = np.searchsorted(inverse[order], np.arange(len(keys[0])), side="right")
            by_rule = np.argsort(rules, kind="stable")
            rules, questions = rules[by_rule], questions[by_rule]
            bounds = np.flatnonzero(np.diff(rules)) + 1
            for rs, qs in zip(np.split(rules, bounds), np.split(questions, bounds), strict=True):
                j = int(rs[0])
                if j >= len(t.rules):
                    continue
                picked = np.concatenate([order[starts[k]: ends[k]] for k in qs])
                out[t.rules[j].ref] = np.sort(rows[picked])
        return out


def _node_local(a: _Side, b: _Side) -> bool:
    """``a`` is an address equal to the node of pod ``b``."""
    if a.pod is not None or b.pod is None or a.addr is None or not b.pod.host_ip:
        return False
    return parse_ip(b.pod.host_ip) == a.addr


class _Questions:
    """A flow table turned into entity indices, and the distinct questions it asks."""

    def __init__(self, engine: Engine, df: pd.DataFrame) -> None:
        self.engine = engine
        missing = [col for col in FLOW_COLUMNS if col not in df.columns]
        if missing:
            raise ValueError(f"evaluate_flows needs columns {', '.join(FLOW_COLUMNS)}; missing: {', '.join(missing)}")
        c = engine.compiled
        self.c = c
        n = len(df)
        self.n = n
        src_pod = _text_column(df, "src_pod", n)
        dst_pod = _text_column(df, "dst_pod", n)
        src_ip = _text_column(df, "src_ip", n)
        dst_ip = _text_column(df, "dst_ip", n)
        ports = pd.to_numeric(df["dst_port"], errors="coerce").fillna(-1).to_numpy(dtype=np.int64) if n else np.zeros(0, np.int64)
        protos = _text_column(df, "proto", n)

        # Pod keys → class (or -1: not a selectable pod; the address stands instead).
        self.src_class, src_host, src_fallback_ip = self._classes(src_pod)
        self.dst_class, dst_host, dst_fallback_ip = self._classes(dst_pod)
        src_ip = np.where((src_ip == "") & (src_fallback_ip != ""), src_fallback_ip, src_ip)
        dst_ip = np.where((dst_ip == "") & (dst_fallback_ip != ""), dst_fallback_ip, dst_ip)

        # Addresses → canonical text and atoms of the direction that looks at them.
        self.src_entity_in = self.src_class.copy()  # the source as an ingress peer
        self.dst_entity_eg = self.dst_class.copy()  # the destination as an egress peer
        src_canon = self._atoms(src_ip, self.src_class < 0, INGRESS, self.src_entity_in)
        dst_canon = self._atoms(dst_ip, self.dst_class < 0, EGRESS, self.dst_entity_eg)

        # Pod ↔ its own node: always allowed.
        self.node_local = ((self.src_class < 0) & (self.dst_class >= 0) & (src_canon != "") & (src_canon == dst_host)) | (
            (self.dst_class < 0) & (self.src_class >= 0) & (dst_canon != "") & (dst_canon == src_host)
        )

        # (protocol, port) pairs.
        pair_codes, uniques = pd.factorize(pd.Series(protos).str.upper() + "/" + pd.Series(ports).astype(str))
        self.pair = np.asarray(pair_codes, dtype=np.int64)
        self.pair_proto = [u.split("/")[0] for u in uniques]
        self.pair_port = [int(u.split("/")[1]) for u in uniques]
        self._port_match: dict[str, np.ndarray] = {}

    # -- preparation --

    def _classes(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(keys)
        cls = np.full(len(uniques), -1, dtype=np.int64)
        host = np.full(len(uniques), "", dtype=object)
        fallback = np.full(len(uniques), "", dtype=object)
        for i, key in enumerate(uniques):
            if not key:
                continue
            pod = self.engine.inventory.pod(key)
            if pod is None:
                continue
            k = self.c.class_of(pod)
            if k is None:  # hostNetwork: its address is what policies see
                fallback[i] = pod.ips[0] if pod.ips else pod.host_ip
                continue
            cls[i] = k
            parsed = parse_ip(pod.host_ip) if pod.host_ip else None
            host[i] = _canon(parsed) if parsed else ""
        codes = np.asarray(codes)
        return cls[codes], host[codes], fallback[codes]

    def _atoms(self, ips: np.ndarray, need: np.ndarray, direction: str, entity: np.ndarray) -> np.ndarray:
        codes, uniques = pd.factorize(ips)
        codes = np.asarray(codes)
        t = self.c.tables[direction]
        ent = np.full(len(uniques), t.unknown_entity, dtype=np.int64)
        canon = np.full(len(uniques), "", dtype=object)
        for i, ip in enumerate(uniques):
            parsed = parse_ip(ip) if ip else None
            if parsed is None:
                continue
            canon[i] = _canon(parsed)
            ent[i] = self.c.atom_entity(direction, *parsed)
        entity[need] = ent[codes[need]]
        return canon[codes]

    # -- questions --

    def isolated(self, direction: str, cls: np.ndarray) -> np.ndarray:
        iso = self.c.tables[direction].isolated
        out = np.zeros(len(cls), dtype=bool)
        pods = cls >= 0
        out[pods] = iso[cls[pods]]
        return out

    def isolating_text(self, direction: str, cls: np.ndarray) -> np.ndarray:
        text = np.array([",".join(self.c.isolating_policies(direction, k)) for k in range(self.c.n_classes)] + [""],
                        dtype=object)
        return text[np.where(cls >= 0, cls, len(text) - 1)]

    def distinct(self, direction: str) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Rows whose selected pod is isolated in ``direction``, the index of each row's
        distinct question, and the questions (selected class, peer entity, port pair)."""
        if direction == EGRESS:
            sel, peer = self.src_class, self.dst_entity_eg
        else:
            sel, peer = self.dst_class, self.src_entity_in
        rows = np.flatnonzero(self.isolated(direction, sel) & ~self.node_local)
        if not len(rows):
            empty = np.zeros(0, dtype=np.int64)
            return rows, empty, (empty, empty, empty)
        n_ent = self.c.tables[direction].unknown_entity + 1
        n_pair = max(len(self.pair_proto), 1)
        key = (sel[rows] * n_ent + peer[rows]) * n_pair + self.pair[rows]
        inverse, uniq = pd.factorize(key)
        uniq = np.asarray(uniq, dtype=np.int64)
        pair = uniq % n_pair
        rest = uniq // n_pair
        return rows, np.asarray(inverse), (rest // n_ent, rest % n_ent, pair)

    def port_match(self, direction: str) -> np.ndarray:
        """(pairs, port sets) booleans: the direction's port set admits the (protocol, port) pair."""
        hit = self._port_match.get(direction)
        if hit is not None:
            return hit
        t = self.c.tables[direction]
        protos = np.array(self.pair_proto, dtype=object)
        ports = np.array(self.pair_port, dtype=np.int64)
        of_proto: dict[str, np.ndarray] = {}
        m = np.zeros((len(protos), len(t.port_sets)), dtype=bool)
        for k, conns in enumerate(t.port_sets):
            if conns is None:  # no ports listed: every pair
                m[:, k] = True
                continue
            for proto, ranges in conns.by_proto:
                rows = of_proto.get(proto)
                if rows is None:
                    rows = of_proto[proto] = np.flatnonzero(protos == proto)
                # Ranges are sorted and disjoint: the one starting at or before the port decides.
                starts = np.array([lo for lo, _ in ranges], dtype=np.int64)
                ends = np.array([hi for _, hi in ranges], dtype=np.int64)
                at = np.searchsorted(starts, ports[rows], side="right") - 1
                m[rows, k] = (at >= 0) & (ports[rows] <= ends[np.maximum(at, 0)])
        self._port_match[direction] = m
        return m

    def named_lookup(self, direction: str) -> tuple[np.ndarray, np.ndarray]:
        """The direction's named-port entries for the pairs asked about: sorted keys
        ``class * pairs + pair`` and, for each, its row in ``named_rows``."""
        t = self.c.tables[direction]
        pair_of = {(proto, port): k for k, (proto, port) in enumerate(zip(self.pair_proto, self.pair_port, strict=True))}
        n_pair = max(len(self.pair_proto), 1)
        keys, rows = [], []
        for row, (cls, proto, port) in enumerate(t.named_entries):
            k = pair_of.get((proto, port))
            if k is not None:
                keys.append(cls * n_pair + k)
                rows.append(row)
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        return np.array(keys, dtype=np.int64)[order], np.array(rows, dtype=np.int64)[order]

    def blocks(self, direction: str, keys: tuple[np.ndarray, np.ndarray, np.ndarray],
               chunk: int = _CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per block of questions: their indices, the rule words read, and packed rows (over
        those words) of the rules that admit each question. A question's rules all lie in the
        words its selected class's apply row uses, so questions are taken group by group; small
        groups go together over the union of their words."""
        t: DirectionTables = self.c.tables[direction]
        sel, peer, pair = keys
        group = t.apply_group[sel]
        order = np.argsort(group, kind="stable")
        ids, starts, counts = np.unique(group[order], return_index=True, return_counts=True)
        batches = [(np.sort(order[a: a + n]), t.group_words[g]) for g, a, n in zip(ids, starts, counts, strict=True) if n >= _MIN_GROUP]
        small = counts < _MIN_GROUP
        if small.any():
            idx = np.sort(np.concatenate([order[a: a + n] for a, n in zip(starts[small], counts[small], strict=True)]))
            words = np.unique(np.concatenate([t.group_words[g] for g in ids[small]]))
            batches.append((idx, words))

        match = self.port_match(direction)
        # Named ports resolve on the destination pod: the selected pod for ingress, the peer
        # (when a pod) for egress.
        named_cls = sel if direction == INGRESS else np.where(peer < self.c.n_classes, peer, -1)
        named_keys, named_rows = self.named_lookup(direction) if t.named_entries else (None, None)
        n_pair = max(len(self.pair_proto), 1)
        for idx, words in batches:
            if not len(words):  # no rule governs these classes: nothing is admitted
                yield idx, words, np.zeros((len(idx), 0), dtype=np.uint64)
                continue
            port_sets = t.rule_port_set[_rule_bits(words)]
            for start in range(0, len(idx), chunk):
                q = idx[start: start + chunk]
                b = t.apply[sel[q][:, None], words] & t.peer[peer[q][:, None], words]
                pairs, at = np.unique(pair[q], return_inverse=True)
                p = pack_bits(match[pairs][:, port_sets])[at.reshape(-1)]
                if named_keys is not None and named_rows is not None and len(named_keys):
                    nk = np.where(named_cls[q] >= 0, named_cls[q] * n_pair + pair[q], -1)
                    pos = np.minimum(np.searchsorted(named_keys, nk), len(named_keys) - 1)
                    found = np.flatnonzero(named_keys[pos] == nk)
                    if len(found):
                        p[found] |= t.named_rows[named_rows[pos[found]][:, None], words]
                yield q, words, b & p


def _rule_bits(words: np.ndarray) -> np.ndarray:
    """The rule indices (bit positions) of packed words ``words``, in unpacking order."""
    return (words[:, None] * 64 + np.arange(64)).reshape(-1)


def _text_column(df: pd.DataFrame, name: str, n: int) -> np.ndarray:
    if name not in df.columns:
        return np.full(n, "", dtype=object)
    s = df[name]
    return s.where(s.notna(), "").astype(str).to_numpy(dtype=object)


def _canon(parsed: tuple[int, int]) -> str:
    family, value = parsed
    return str(ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value))
