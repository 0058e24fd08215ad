"""Diffs against existing policies.

- ``diff_observed``: observed (resolved) traffic vs a policy set — what the policies would deny
  (what breaks when they are enforced), which rules admitted nothing observed, and what they
  allow that was never observed.
- ``diff_policy_sets``: two policy sets over one inventory — per pair of peers, the
  connections added, removed or changed (np-guard netpol-analyzer's diff rows).

Both work at workload level: pods are grouped by workload (``namespace/name[Kind]``) and
addresses by the ranges the policies' ipBlocks cut (``a.b.c.d-w.x.y.z[External]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from netpolgen.inventory import Inventory
from netpolgen.policy.compiled import Compiled
from netpolgen.policy.connectivity import Connectivity, WorkloadNamer, compute_connectivity, external_name
from netpolgen.policy.conns import ConnSet
from netpolgen.policy.engine import Engine
from netpolgen.policy.ipspace import IPRange, merge_touching, parse_ip
from netpolgen.policy.model import EGRESS, INGRESS, NetworkPolicy, RuleRef

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
EVALUATED_KINDS = ("pod", "node", "external")


# ----- observed traffic vs a policy set -------------------------------------------------------


@dataclass(frozen=True)
class DeniedGroup:
    """Observed connections of one workload pair and port that the policies would deny."""

    src: str
    dst: str
    proto: str
    port: int
    connections: int
    packets: int
    bytes: int
    directions: str  # "egress", "ingress" or "egress+ingress": where it is denied
    policies: tuple[str, ...]  # the isolating policies of the denying direction(s)
    example: str  # one observed endpoint pair


@dataclass(frozen=True)
class UnusedRule:
    rule: RuleRef
    text: str
    selected_pods: int  # how many inventory pods the rule's policy selects


@dataclass(frozen=True)
class UnobservedPair:
    """What the policies allow from ``src`` to ``dst`` beyond what was observed."""

    src: str
    dst: str
    allowed: ConnSet
    observed: ConnSet

    @property
    def unobserved(self) -> ConnSet:
        return self.allowed - self.observed

    def describe(self) -> str:
        if self.allowed.is_all and not self.observed.is_empty:
            return f"All Connections except {self.observed}"
        return str(self.unobserved)


@dataclass
class ObservedDiff:
    denied: list[DeniedGroup] = field(default_factory=list)
    unused: list[UnusedRule] = field(default_factory=list)
    unobserved: list[UnobservedPair] = field(default_factory=list)
    open_ingress: list[str] = field(default_factory=list)  # workloads no policy isolates
    open_egress: list[str] = field(default_factory=list)
    policies: int = 0
    rules: int = 0
    rows: int = 0
    connections: int = 0
    denied_connections: int = 0
    unresolved_rows: int = 0
    unresolved_connections: int = 0
    source_denied_rows: int = 0

    @property
    def has_denied(self) -> bool:
        return bool(self.denied)


def diff_observed(
    resolved: pd.DataFrame,
    inventory: Inventory,
    policies: Iterable[NetworkPolicy],
    *,
    engine: Engine | None = None,
) -> ObservedDiff:
    """Compare resolved observed connections (``netpolgen.resolve`` columns) with ``policies``.

    Rows with an unresolved end (or a kind other than pod/node/external) are not evaluated but
    counted; rows the source itself reported as dropped are counted apart (they did not work
    before either, so they cannot tell what enforcement would break).
    """
    policies = list(policies)
    engine = engine or Engine(inventory, policies)
    out = ObservedDiff(policies=len(engine.policies), rules=len(engine.rules()))
    df = resolved
    kinds_ok = df["src_kind"].isin(EVALUATED_KINDS) & df["dst_kind"].isin(EVALUATED_KINDS)
    conns_col = _int_column(df, "connections", default=1)
    out.unresolved_rows = int((~kinds_ok).sum())
    out.unresolved_connections = int(conns_col[~kinds_ok.to_numpy()].sum())
    source_denied = df["verdict"].astype(str).eq("denied").to_numpy() if "verdict" in df.columns else np.zeros(len(df), bool)
    use = kinds_ok.to_numpy() & ~source_denied
    out.source_denied_rows = int((kinds_ok.to_numpy() & source_denied).sum())
    rows = df[use].reset_index(drop=True)
    weights = conns_col[use]
    out.rows = len(rows)
    out.connections = int(weights.sum())

    verdicts = engine.evaluate_flows(rows[["src_pod", "src_ip", "dst_pod", "dst_ip", "dst_port", "proto"]])
    denied_mask = ~verdicts["allowed"].to_numpy(dtype=bool)
    out.denied_connections = int(weights[denied_mask].sum())
    out.denied = _denied_groups(rows, verdicts, weights, denied_mask)

    usage = engine.rule_usage(rows, weights=weights)
    selected = _selected_pod_counts(engine.compiled)
    text = engine.rule_text()
    out.unused = [UnusedRule(ref, text[ref], selected.get(ref.policy, 0))
                  for ref, n in sorted(usage.items(), key=lambda kv: (kv[0].policy, kv[0].direction, kv[0].index)) if n == 0]

    conn = compute_connectivity(inventory, engine.policies, compiled=engine.compiled)
    observed = _observed_pairs(rows, engine.compiled)
    for (src, dst), allowed in sorted(conn.conns.items()):
        governed = src in conn.egress_isolated or dst in conn.ingress_isolated
        if not governed:
            continue
        seen = observed.get((src, dst), ConnSet.none())
        if not (allowed - seen).is_empty:
            out.unobserved.append(UnobservedPair(src, dst, allowed, seen & allowed))
    out.open_ingress = sorted(set(conn.workloads) - conn.ingress_isolated)
    out.open_egress = sorted(set(conn.workloads) - conn.egress_isolated)
    return out


def _int_column(df: pd.DataFrame, name: str, default: int) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), default, dtype=np.int64)
    return pd.to_numeric(df[name], errors="coerce").fillna(default).to_numpy(dtype=np.int64)


def _denied_groups(rows: pd.DataFrame, verdicts: pd.DataFrame, weights: np.ndarray, mask: np.ndarray) -> list[DeniedGroup]:
    if not mask.any():
        return []
    d = rows[mask].copy()
    v = verdicts[mask]
    d["_connections"] = weights[mask]
    d["_packets"] = _int_column(d, "packets", 0)
    d["_bytes"] = _int_column(d, "bytes", 0)
    eg, ing = v["egress_allowed"].to_numpy(), v["ingress_allowed"].to_numpy()
    d["_dirs"] = np.where(~eg & ~ing, "egress+ingress", np.where(~eg, "egress", "ingress"))
    d["_policies"] = v["isolating_policies"].to_numpy()
    src = d["src_pod"].where(d["src_pod"].astype(str) != "", d["src_ip"]).astype(str)
    dst = d["dst_pod"].where(d["dst_pod"].astype(str) != "", d["dst_ip"]).astype(str)
    d["_example"] = src + " -> " + dst
    out = []
    keys = ["src_workload", "dst_workload", "proto", "dst_port"]
    for (src, dst, proto, port), g in d.groupby(keys, sort=True):
        dirs = str(g["_dirs"].iloc[0]) if g["_dirs"].nunique() == 1 else "egress+ingress"
        pols = sorted({p for s in g["_policies"] for p in str(s).split(",") if p})
        out.append(DeniedGroup(str(src), str(dst), str(proto), int(port), int(g["_connections"].sum()),
                               int(g["_packets"].sum()), int(g["_bytes"].sum()), dirs, tuple(pols),
                               str(g["_example"].iloc[0])))
    return out


def _selected_pod_counts(c: Compiled) -> dict[str, int]:
    sizes = np.bincount(c.pod_class, minlength=c.n_classes) if c.n_classes else np.zeros(0, np.int64)
    return {p.key: int(sizes[c.policy_selects(p)].sum()) for p in c.policies}


def _observed_pairs(rows: pd.DataFrame, c: Compiled) -> dict[tuple[str, str], ConnSet]:
    """Observed (src peer, dst peer) → ports, with addresses named by the atoms connectivity
    uses (ingress atoms for sources, egress atoms for destinations)."""
    if rows.empty:
        return {}
    # One pass per distinct (ends, port) rather than per row: resolved tables can be large.
    cols = ["src_kind", "src_workload", "src_ip", "dst_kind", "dst_workload", "dst_ip", "proto", "dst_port"]
    rows = rows[cols].copy()
    rows.loc[rows["src_kind"] == "pod", "src_ip"] = ""
    rows.loc[rows["dst_kind"] == "pod", "dst_ip"] = ""
    rows = rows.drop_duplicates()

    def peer_names(kind: pd.Series, workload: pd.Series, ip: pd.Series, direction: str) -> list[str]:
        cache: dict[str, str] = {}
        out = []
        for k, w, a in zip(kind, workload, ip, strict=True):
            if k == "pod":
                out.append(str(w))
                continue
            name = cache.get(a)
            if name is None:
                parsed = parse_ip(str(a))
                if parsed is None:
                    name = str(w)
                else:
                    t = c.tables[direction]
                    name = external_name(t.partitions[parsed[0]].atom(t.partitions[parsed[0]].index_of(parsed[1])))
                cache[a] = name
            out.append(name)
        return out

    src = peer_names(rows["src_kind"], rows["src_workload"], rows["src_ip"], INGRESS)
    dst = peer_names(rows["dst_kind"], rows["dst_workload"], rows["dst_ip"], EGRESS)
    grouped: dict[tuple[str, str], dict[str, list[tuple[int, int]]]] = {}
    for s, d, proto, port in zip(src, dst, rows["proto"].astype(str).str.upper(), rows["dst_port"], strict=True):
        grouped.setdefault((s, d), {}).setdefault(proto, []).append((int(port), int(port)))
    return {k: ConnSet.from_mapping(v) for k, v in grouped.items()}


# ----- policy set vs policy set ---------------------------------------------------------------


@dataclass(frozen=True)
class PairDiff:
    kind: str  # added / removed / changed
    src: str
    dst: str
    old: ConnSet
    new: ConnSet
    workloads_info: str = ""  # "workload X added" when a peer exists on one side only


@dataclass
class PolicySetDiff:
    entries: list[PairDiff] = field(default_factory=list)
    old_label: str = "existing"
    new_label: str = "proposed"
    workloads: int = 0

    @property
    def equivalent(self) -> bool:
        return not self.entries

    def of_kind(self, kind: str) -> list[PairDiff]:
        return sorted((e for e in self.entries if e.kind == kind), key=lambda e: (e.src, e.dst))


def policy_ranges(*policy_sets: Iterable[NetworkPolicy]) -> dict[str, list[IPRange]]:
    """Every ipBlock range per direction, to cut both sides of a comparison at the same points."""
    out: dict[str, list[IPRange]] = {INGRESS: [], EGRESS: []}
    for policies in policy_sets:
        for p in policies:
            for d in (INGRESS, EGRESS):
                for r in p.rules(d):
                    for peer in r.peers:
                        if peer.ip_block is not None:
                            out[d].extend(peer.ip_block.ranges)
    return out


def diff_policy_sets(
    inventory: Inventory,
    old: Iterable[NetworkPolicy],
    new: Iterable[NetworkPolicy],
    *,
    old_label: str = "existing",
    new_label: str = "proposed",
    workload_name: WorkloadNamer | None = None,
) -> PolicySetDiff:
    """The connectivity ``new`` allows compared with ``old``, pair by pair, on one inventory."""
    old, new = list(old), list(new)
    cuts = policy_ranges(old, new)
    c_old = compute_connectivity(inventory, old, workload_name=workload_name, extra_ranges=cuts)
    c_new = compute_connectivity(inventory, new, workload_name=workload_name, extra_ranges=cuts)
    return PolicySetDiff(diff_connectivity(c_old, c_new), old_label, new_label, len(c_new.workloads))


def diff_connectivity(old: Connectivity, new: Connectivity) -> list[PairDiff]:
    """Pairwise difference of two connectivities computed on the same address atoms (pass
    ``extra_ranges=policy_ranges(a, b)`` to both); touching address ranges with the same
    difference are merged, as np-guard does."""
    old_w, new_w = set(old.workloads), set(new.workloads)
    ranges = {**old.ip_ranges, **new.ip_ranges}
    rows: dict[tuple[str, str], tuple[ConnSet, ConnSet]] = {}
    for key in set(old.conns) | set(new.conns):
        rows[key] = (old.conns.get(key, ConnSet.none()), new.conns.get(key, ConnSet.none()))

    # Merge touching ranges that share (other end, old, new).
    merged: dict[tuple[str, str], tuple[ConnSet, ConnSet]] = {}
    groups: dict[tuple[bool, str, ConnSet, ConnSet], list[IPRange]] = {}
    for (s, d), pair in rows.items():
        if s in ranges:
            groups.setdefault((True, d, *pair), []).append(ranges[s])
        elif d in ranges:
            groups.setdefault((False, s, *pair), []).append(ranges[d])
        else:
            merged[(s, d)] = pair
    for (src_is_ip, other, a, b), rs in groups.items():
        for r in merge_touching(rs):
            name = external_name(r)
            merged[(name, other) if src_is_ip else (other, name)] = (a, b)

    out = []
    for (s, d), (a, b) in sorted(merged.items()):
        if a == b:
            continue
        if a.is_empty:
            kind, known = ADDED, old_w
        elif b.is_empty:
            kind, known = REMOVED, new_w
        else:
            kind, known = CHANGED, None
        info = ""
        if known is not None:
            missing = [p for p in (s, d) if p not in ranges and p not in known]
            if missing:
                info = f"workload {' and '.join(missing)} {kind}"
        out.append(PairDiff(kind, s, d, a, b, info))
    return out


# ----- renderers ------------------------------------------------------------------------------


def format_npguard_diff(entries: Iterable[PairDiff]) -> str:
    """np-guard netpol-analyzer's diff text (ref1 = old, ref2 = new); empty when equivalent."""
    entries = list(entries)
    if not entries:
        return ""
    lines = ["Connectivity diff:"]
    for kind in (CHANGED, ADDED, REMOVED):
        block = []
        for e in entries:
            if e.kind != kind:
                continue
            line = f"diff-type: {kind}, source: {e.src}, destination: {e.dst}, ref1: {e.old}, ref2: {e.new}"
            if e.workloads_info:
                line += f", workloads-diff-info: {e.workloads_info}"
            block.append(line)
        lines.extend(sorted(block))
    return "\n".join(lines) + "\n"


def format_policy_set_diff(d: PolicySetDiff) -> str:
    """Readable text, grouped by kind of change, sorted."""
    if d.equivalent:
        return (f"The {d.old_label} and {d.new_label} policy sets allow the same connectivity "
                f"({d.workloads} workloads compared).\n")
    changed, added, removed = d.of_kind(CHANGED), d.of_kind(ADDED), d.of_kind(REMOVED)
    out = [f"Policy-set diff, {d.old_label} -> {d.new_label}: {len(changed)} changed, {len(added)} added, "
           f"{len(removed)} removed (pairs of workloads or address ranges)."]
    width = max(len(d.old_label), len(d.new_label)) + 1
    if changed:
        out += ["", "changed:"]
        for e in changed:
            out.append(f"  {e.src} -> {e.dst}")
            out.append(f"      {(d.old_label + ':').ljust(width)} {e.old}")
            out.append(f"      {(d.new_label + ':').ljust(width)} {e.new}")
    if added:
        out += ["", f"added (allowed only by {d.new_label}):"]
        out += [f"  {e.src} -> {e.dst}: {e.new}" + (f"  [{e.workloads_info}]" if e.workloads_info else "") for e in added]
    if removed:
        out += ["", f"removed (allowed only by {d.old_label}):"]
        out += [f"  {e.src} -> {e.dst}: {e.old}" + (f"  [{e.workloads_info}]" if e.workloads_info else "") for e in removed]
    return "\n".join(out) + "\n"


def policy_set_diff_json(d: PolicySetDiff) -> str:
    doc = {
        "equivalent": d.equivalent,
        "old": d.old_label,
        "new": d.new_label,
        "workloads": d.workloads,
        "diff": [
            {"type": e.kind, "src": e.src, "dst": e.dst, d.old_label: str(e.old), d.new_label: str(e.new),
             **({"workloads_info": e.workloads_info} if e.workloads_info else {})}
            for kind in (CHANGED, ADDED, REMOVED) for e in d.of_kind(kind)
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def format_observed_diff(d: ObservedDiff) -> str:
    """Readable text: a summary line, then denied, unused rules, unobserved, open workloads."""
    out = [f"Observed traffic vs {d.policies} existing policies ({d.rules} rules): "
           f"{d.connections} connections evaluated, {d.denied_connections} would be denied."]
    if d.denied:
        out += ["", "DENIED: observed connections the existing policies would deny (these break when enforced):"]
        for g in d.denied:
            out.append(f"  {g.src} -> {g.dst} {g.proto}/{g.port}  ({_count(g.connections, 'connection')})")
            out.append(f"      denied at {g.directions} by {', '.join(g.policies) or '-'}; e.g. {g.example}")
    else:
        out += ["", "DENIED: none; every observed connection is allowed."]
    if d.unused:
        out += ["", "UNUSED: rules that admitted no observed connection:"]
        for u in d.unused:
            note = "  [the policy selects no pod of the inventory]" if u.selected_pods == 0 else ""
            out.append(f"  {u.rule}: {u.text}{note}")
    if d.unobserved:
        out += ["", "UNOBSERVED: connections the existing policies allow that were never observed:"]
        out += [f"  {p.src} -> {p.dst}: {p.describe()}" for p in d.unobserved]
    if d.open_ingress or d.open_egress:
        out += ["", "OPEN: workloads no policy isolates (every connection in that direction is allowed):"]
        if d.open_ingress:
            out.append(f"  ingress: {', '.join(d.open_ingress)}")
        if d.open_egress:
            out.append(f"  egress: {', '.join(d.open_egress)}")
    skipped = []
    if d.unresolved_rows:
        skipped.append(f"{_count(d.unresolved_rows, 'row')} ({_count(d.unresolved_connections, 'connection')}) "
                       "with an unresolved endpoint")
    if d.source_denied_rows:
        skipped.append(f"{_count(d.source_denied_rows, 'row')} the source reported as already dropped")
    if skipped:
        out += ["", "Not evaluated: " + "; ".join(skipped) + "."]
    return "\n".join(out) + "\n"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def observed_diff_json(d: ObservedDiff) -> str:
    doc = {
        "summary": {
            "policies": d.policies, "rules": d.rules, "rows": d.rows, "connections": d.connections,
            "denied_connections": d.denied_connections, "unresolved_rows": d.unresolved_rows,
            "unresolved_connections": d.unresolved_connections, "source_denied_rows": d.source_denied_rows,
        },
        "denied": [
            {"src": g.src, "dst": g.dst, "protocol": g.proto, "port": g.port, "connections": g.connections,
             "packets": g.packets, "bytes": g.bytes, "denied_at": g.directions, "policies": list(g.policies),
             "example": g.example}
            for g in d.denied
        ],
        "unused": [{"rule": str(u.rule), "policy": u.rule.policy, "direction": u.rule.direction,
                    "index": u.rule.index, "text": u.text, "selected_pods": u.selected_pods} for u in d.unused],
        "unobserved": [{"src": p.src, "dst": p.dst, "allowed": str(p.allowed), "observed": str(p.observed),
                        "unobserved": str(p.unobserved)} for p in d.unobserved],
        "open": {"ingress": d.open_ingress, "egress": d.open_egress},
    }
    return json.dumps(doc, indent=2) + "\n"
