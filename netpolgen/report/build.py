"""The report model from a run: policies, their evidence, a baseline to compare with, coverage
and the self-check."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING

from netpolgen.evidence import EdgeEvidence, Evidence, RuleEvidence, gather_evidence, when
from netpolgen.inventory import Inventory
from netpolgen.report.coverage import coverage
from netpolgen.report.model import (
    DENIED,
    NEW,
    NODES_GROUP,
    OUTSIDE_CLIENTS,
    OUTSIDE_SERVERS,
    REMOVED,
    UNCHANGED,
    CheckView,
    Edge,
    Node,
    PolicyView,
    Report,
    RuleRow,
    SourceView,
)

if TYPE_CHECKING:
    import pandas as pd

    from netpolgen.pipeline import SelfCheck
    from netpolgen.policy.model import NetworkPolicy, PolicyRule
    from netpolgen.resolve import ResolveReport

#: A rule's peer list matching more workloads than this is drawn as no arrows (it is broad).
_MAX_DRAWN_PEERS = 20
CHANGED = "changed"


def _key(p: dict) -> str:
    m = p.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def _rule_dict(policies: dict[str, dict], key: str, direction: str, index: int) -> dict | None:
    p = policies.get(key)
    rules = ((p or {}).get("spec") or {}).get(direction) or []
    return rules[index] if index < len(rules) else None


def _canon(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)


def _row(r: RuleEvidence, ev: Evidence, status: str, note: str = "") -> RuleRow:
    t = ev.tally(r.edges)
    ex: EdgeEvidence | None = max((ev.edges[i] for i in r.edges), key=lambda e: (e.connections, e.src, e.dst),
                                  default=None)
    return RuleRow(
        policy=r.ref.policy, direction=r.ref.direction, index=r.ref.index, text=ev.rule_text(r.ref), status=status,
        edges=t.edges, connections=t.connections, packets=t.packets, bytes=t.bytes,
        first_seen=when(t.first_seen) if t.first_seen is not None else "",
        last_seen=when(t.last_seen) if t.last_seen is not None else "",
        files=t.files, example_src=ex.example_src if ex else "", example_dst=ex.example_dst if ex else "",
        note=note,
    )


class _Nodes:
    """Node ids and boxes: a workload text, or an address in the outside/node groups."""

    def __init__(self, evidence: Evidence) -> None:
        self.nodes: dict[str, Node] = {}
        clients = {e.src for e in evidence.edges if e.src_kind != "pod"}
        names: dict[str, set[str]] = defaultdict(set)
        for e in evidence.edges:
            if e.dst_kind != "pod" and e.dst_names:
                names[e.dst].update(n for n in e.dst_names.split(",") if n)
        self._clients, self._names = clients, names

    def of(self, kind: str, text: str) -> str:
        if text not in self.nodes:
            if kind == "pod":
                ns, _, rest = text.partition("/")
                name, _, k = rest.partition("[")
                self.nodes[text] = Node(text, name, ns, "pod", text)
            else:
                dns = sorted(self._names.get(text, ()))
                group = NODES_GROUP if kind == "node" else (OUTSIDE_CLIENTS if text in self._clients else OUTSIDE_SERVERS)
                label = text + (f" ({dns[0]}{', …' if len(dns) > 1 else ''})" if dns else "")
                self.nodes[text] = Node(text, label, group, kind, ", ".join([text] + dns))
        return text

    def finish(self) -> list[Node]:
        # Two workloads of one namespace named alike (Deployment x, StatefulSet x) keep their kind.
        count: dict[tuple[str, str], int] = defaultdict(int)
        for n in self.nodes.values():
            count[(n.group, n.label)] += 1
        out = []
        for n in sorted(self.nodes.values(), key=lambda n: (n.group, n.id)):
            if n.kind == "pod" and count[(n.group, n.label)] > 1:
                kind = n.id.partition("[")[2].rstrip("]")
                n = Node(n.id, f"{n.label} [{kind}]", n.group, n.kind, n.detail)
            out.append(n)
        return out


def _rule_endpoints(policy: NetworkPolicy, rule: PolicyRule, inventory: Inventory) -> tuple[list[str], list[tuple[str, str]]]:
    """The workloads a policy selects, and its rule's peers as (kind, node text): what a
    removed rule's arrows join."""
    selected = sorted({str(inventory.workload_of(p)) for p in inventory.pods_in(policy.namespace)
                       if not p.host_network and policy.pod_selector.matches(p.labels)})
    peers: list[tuple[str, str]] = []
    for peer in rule.peers:
        if peer.ip_block is not None:
            cidr = str(peer.ip_block.cidr)
            text = cidr.split("/")[0] if cidr.endswith(("/32", "/128")) else cidr
            peers.append(("external", text))
            continue
        found = set()
        for p in inventory.pods:
            if p.host_network:
                continue
            ns_ok = (p.namespace == policy.namespace) if peer.namespace_selector is None else \
                peer.namespace_selector.matches(inventory.namespace_labels(p.namespace))
            if ns_ok and (peer.pod_selector is None or peer.pod_selector.matches(p.labels)):
                found.add(str(inventory.workload_of(p)))
        if len(found) <= _MAX_DRAWN_PEERS:
            peers.extend(("pod", w) for w in sorted(found))
    return selected, peers


def build_report(
    policies: list[dict],
    evidence: Evidence,
    inventory: Inventory,
    *,
    sources: list | None = None,
    resolve_report: ResolveReport | None = None,
    problems: list[str] | None = None,
    self_check: SelfCheck | CheckView | None = None,
    baseline: list[dict] | None = None,
    baseline_evidence: Evidence | None = None,
    baseline_label: str = "",
    title: str = "netpolgen report",
    paths: dict[str, str] | None = None,
) -> Report:
    """``baseline`` (e.g. the policies in ``--existing DIR``) colours edges and rules: new,
    unchanged, or removed (baseline rules nothing used over the window)."""
    by_key = {_key(p): p for p in policies}
    base_by_key = {_key(p): p for p in baseline or []}
    if baseline is not None and baseline_evidence is None:
        baseline_evidence = gather_evidence(baseline, _edges_frame(evidence), inventory)
    views = _policy_views(by_key, base_by_key, evidence, paths)
    unused, removed_arrows = _unused_rules(baseline, baseline_evidence, inventory)

    nodes = _Nodes(evidence)
    grouped: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    conns: dict[tuple[str, str, str], int] = defaultdict(int)
    rule_status = {(row.policy, row.direction, row.index): row.status for v in views for row in v.rules}
    edge_rules: dict[int, list[str]] = defaultdict(list)
    for r in evidence.rules:
        for i in r.edges:
            edge_rules[i].append(rule_status.get((r.ref.policy, r.ref.direction, r.ref.index), NEW))
    covered = {v.namespace for v in views if v.status != REMOVED}
    for i, e in enumerate(evidence.edges):
        governed = e.src_namespace in covered or e.dst_namespace in covered
        if governed and i < len(evidence.admitted) and not evidence.admitted[i]:
            status = DENIED
        elif NEW in edge_rules.get(i, ()):
            status = NEW
        else:
            status = UNCHANGED
        k = (nodes.of(e.src_kind, e.src), nodes.of(e.dst_kind, e.dst), status)
        grouped[k].add(f"{e.proto} {e.port}")
        conns[k] += e.connections
    for sk, s, dk, d, ports in removed_arrows:
        k = (nodes.of(sk, s), nodes.of(dk, d), REMOVED)
        grouped[k].add(ports)
    edges = tuple(Edge(s, d, tuple(sorted(p, key=_port_order)), st, conns.get((s, d, st), 0))
                  for (s, d, st), p in sorted(grouped.items()))

    chk = _check_view(self_check)
    window = (when(evidence.window[0]), when(evidence.window[1])) if evidence.window else None
    return Report(
        title=title, window=window,
        sources=tuple(SourceView(str(s.path), str(s.format_name), int(s.stats.records)) for s in sources or []),
        nodes=tuple(nodes.finish()), edges=edges, policies=tuple(sorted(views, key=lambda v: v.key)),
        coverage=coverage(inventory, evidence, policies, resolve_report, problems),
        self_check=chk, baseline=baseline_label if baseline is not None else "",
        connections=sum(e.connections for e in evidence.edges), files_known=evidence.files_known,
        unused=tuple(unused),
    )


def _policy_views(by_key: dict[str, dict], base_by_key: dict[str, dict], evidence: Evidence,
                  paths: dict[str, str] | None) -> list[PolicyView]:
    """One view per output policy (new, unchanged or changed against the baseline), then the
    baseline's policies that are gone (removed)."""
    # Rules (as written) of the baseline, per policy: an output rule found there is unchanged.
    base_rules: dict[str, set[str]] = defaultdict(set)
    for key, p in base_by_key.items():
        for direction in ("ingress", "egress"):
            for r in (p.get("spec") or {}).get(direction) or []:
                base_rules[key].add(direction + _canon(r))

    views = []
    for key, p in by_key.items():
        rows = []
        for r in evidence.of_policy(key):
            rd = _rule_dict(by_key, key, r.ref.direction, r.ref.index)
            status = UNCHANGED if rd is not None and (r.ref.direction + _canon(rd)) in base_rules.get(key, ()) else NEW
            note = "" if r.edges else "no observed connection (kept from the baseline, or the TCP twin of a DNS rule)"
            rows.append(_row(r, evidence, status, note))
        if key not in base_by_key:
            pstatus = NEW
        else:
            pstatus = UNCHANGED if _canon(p.get("spec")) == _canon(base_by_key[key].get("spec")) else CHANGED
        meta = p.get("metadata") or {}
        views.append(PolicyView(key, meta.get("namespace", ""), meta.get("name", ""),
                                (meta.get("annotations") or {}).get("netpolgen.io/workload", ""),
                                pstatus, tuple(rows), (paths or {}).get(key, f"{key}.yaml")))
    for key in sorted(set(base_by_key) - set(by_key)):
        meta = base_by_key[key].get("metadata") or {}
        views.append(PolicyView(key, meta.get("namespace", ""), meta.get("name", ""),
                                (meta.get("annotations") or {}).get("netpolgen.io/workload", ""), REMOVED, (),
                                (paths or {}).get(key, f"{key}.yaml")))
    return views


def _unused_rules(baseline: list[dict] | None, baseline_evidence: Evidence | None,
                  inventory: Inventory) -> tuple[list[RuleRow], list[tuple[str, str, str, str, str]]]:
    """Baseline rules that admitted nothing over the window (removed with --prune, or listed),
    and the arrows they drew."""
    from netpolgen.policy import parse_policies

    unused: list[RuleRow] = []
    removed_arrows: list[tuple[str, str, str, str, str]] = []  # (src kind, src, dst kind, dst, ports)
    if baseline_evidence is not None:
        parsed = {p.key: p for p in parse_policies(baseline or [])}
        for r in baseline_evidence.rules:
            if r.edges:
                continue
            unused.append(_row(r, baseline_evidence, REMOVED, "nothing used it over the window"))
            pol = parsed.get(r.ref.policy)
            rule = next((x for x in (pol.rules(r.ref.direction) if pol else ()) if x.index == r.ref.index), None)
            if pol is None or rule is None or rule.all_peers:
                continue
            selected, peers = _rule_endpoints(pol, rule, inventory)
            ports = ", ".join(str(s) for s in rule.ports) or "any port"
            for w in selected:
                for kind, peer in peers:
                    if r.ref.direction == "ingress":
                        removed_arrows.append((kind, peer, "pod", w, ports))
                    else:
                        removed_arrows.append(("pod", w, kind, peer, ports))
    return unused, removed_arrows


def _check_view(self_check: SelfCheck | CheckView | None) -> CheckView:
    if self_check is None:
        return CheckView(unavailable="not run")
    if isinstance(self_check, CheckView):
        return self_check
    return CheckView(self_check.checked, tuple(str(d) for d in self_check.denied), self_check.unavailable)


def _port_order(text: str) -> tuple:
    proto, _, port = text.partition(" ")
    return (int(port) if port.isdigit() else 1 << 20, proto, text)


def _edges_frame(evidence: Evidence) -> pd.DataFrame:
    """The edge table back from its records (to evaluate a baseline over the same edges)."""
    import pandas as pd

    return pd.DataFrame({
        "src_kind": [e.src_kind for e in evidence.edges], "src_workload": [e.src for e in evidence.edges],
        "dst_kind": [e.dst_kind for e in evidence.edges], "dst_workload": [e.dst for e in evidence.edges],
        "src_pod": [e.example_src if e.src_kind == "pod" else "" for e in evidence.edges],
        "dst_pod": [e.example_dst if e.dst_kind == "pod" else "" for e in evidence.edges],
        "proto": [e.proto for e in evidence.edges], "dst_port": [e.port for e in evidence.edges],
        "src_namespace": [e.src_namespace for e in evidence.edges], "dst_namespace": [e.dst_namespace for e in evidence.edges],
        "connections": [e.connections for e in evidence.edges], "packets": [e.packets for e in evidence.edges],
        "bytes": [e.bytes for e in evidence.edges],
        "first_seen": [e.first_seen if e.first_seen is not None else float("nan") for e in evidence.edges],
        "last_seen": [e.last_seen if e.last_seen is not None else float("nan") for e in evidence.edges],
        "dst_names": [e.dst_names for e in evidence.edges],
    })
