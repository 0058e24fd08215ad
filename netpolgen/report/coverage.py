"""Coverage: what the observation did not show, or showed too little of to trust.

- namespaces whose pods were never seen talking (a default-deny there blocks whatever they do);
- workloads seen only briefly or in few connections (their rules rest on little evidence);
- addresses that could not be resolved (no rule was written for them);
- label classes: workloads whose stable labels are equal, which no selector can tell apart;
- ipBlocks wider than one address (widened CIDRs);
- workloads no exact selector could name.
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from typing import TYPE_CHECKING

from netpolgen.evidence import Evidence
from netpolgen.inventory import Inventory
from netpolgen.labels import DEFAULT_VOLATILE_LABELS, is_volatile
from netpolgen.report.model import Coverage

if TYPE_CHECKING:
    from netpolgen.resolve import ResolveReport

#: A workload seen in fewer connections than this is low-confidence.
LOW_CONNECTIONS = 3
#: ... and so is one seen over less than this share of the observation window.
BRIEF_SHARE = 0.1


def quiet_namespaces(inventory: Inventory, evidence: Evidence) -> list[tuple[str, int]]:
    talking = {e.src_namespace for e in evidence.edges} | {e.dst_namespace for e in evidence.edges}
    pods: dict[str, int] = defaultdict(int)
    for p in inventory.pods:
        if not p.host_network and not p.from_template:
            pods[p.namespace] += 1
    return sorted((ns, n) for ns, n in pods.items() if ns not in talking)


def low_confidence(evidence: Evidence) -> list[tuple[str, str]]:
    per: dict[str, list] = defaultdict(list)
    for e in evidence.edges:
        for kind, wl in ((e.src_kind, e.src), (e.dst_kind, e.dst)):
            if kind == "pod":
                per[wl].append(e)
    span = (evidence.window[1] - evidence.window[0]) if evidence.window else 0.0
    out = []
    for wl, edges in sorted(per.items()):
        t = _tally(edges)
        why = []
        if t[0] < LOW_CONNECTIONS:
            why.append(f"{t[0]} connection{'s' if t[0] != 1 else ''}")
        if span > 0 and t[1] is not None and t[2] is not None and (t[2] - t[1]) < BRIEF_SHARE * span:
            why.append(f"seen over {t[2] - t[1]:.0f} s of a {span:.0f} s window")
        if why:
            out.append((wl, "; ".join(why)))
    return out


def _tally(edges: list) -> tuple[int, float | None, float | None]:
    firsts = [e.first_seen for e in edges if e.first_seen is not None]
    lasts = [e.last_seen for e in edges if e.last_seen is not None]
    return sum(e.connections for e in edges), (min(firsts) if firsts else None), (max(lasts) if lasts else None)


def label_classes(inventory: Inventory, volatile: tuple[str, ...] = DEFAULT_VOLATILE_LABELS
                  ) -> list[tuple[str, str, tuple[str, ...]]]:
    """Workloads of one namespace whose pods' stable labels are equal: one class to any selector."""
    by_workload: dict[str, dict[str, str] | None] = {}
    ns_of: dict[str, str] = {}
    for p in inventory.pods:
        if p.host_network:
            continue
        wl = str(inventory.workload_of(p))
        stable = {k: v for k, v in p.labels.items() if not is_volatile(k, volatile)}
        prev = by_workload.get(wl)
        by_workload[wl] = stable if wl not in by_workload else {k: v for k, v in (prev or {}).items() if stable.get(k) == v}
        ns_of[wl] = p.namespace
    classes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for wl, labels in by_workload.items():
        classes[(ns_of[wl], json.dumps(labels or {}, sort_keys=True))].append(wl)
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for (ns, text), members in sorted(classes.items()):
        if len(members) > 1:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(json.loads(text).items())) or "(no labels)"
            out.append((ns, shown, tuple(sorted(members))))
    return out


def widened(policies: list[dict]) -> list[tuple[str, str]]:
    out = set()
    for p in policies:
        key = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        spec = p.get("spec") or {}
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(peers_key) or []:
                    cidr = (peer.get("ipBlock") or {}).get("cidr")
                    if not cidr:
                        continue
                    try:
                        net = ipaddress.ip_network(cidr, strict=False)
                    except ValueError:
                        continue
                    if net.prefixlen < net.max_prefixlen:
                        out.add((key, str(net)))
    return sorted(out)


def coverage(inventory: Inventory, evidence: Evidence, policies: list[dict],
             resolve_report: ResolveReport | None = None, problems: list[str] | None = None) -> Coverage:
    unresolved = sorted((getattr(resolve_report, "unresolved", None) or {}).items())
    return Coverage(
        quiet_namespaces=tuple(quiet_namespaces(inventory, evidence)),
        low_confidence=tuple(low_confidence(evidence)),
        unresolved=tuple((str(a), str(w)) for a, w in unresolved),
        unresolved_connections=int(getattr(resolve_report, "unresolved_connections", 0) or 0),
        label_classes=tuple(label_classes(inventory)),
        widened=tuple(widened(policies)),
        not_selectable=tuple(problems or ()),
    )
