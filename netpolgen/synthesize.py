"""Synthesis: edges → NetworkPolicy objects (plain dicts, as ``kubectl`` would read them). Pure.

Per namespace in scope: one default-deny for Ingress and Egress, then one policy per workload
with exact rules. For an edge A → B on port P: B's ingress allows A on P and A's egress allows B
on P. Peers with identical port sets share a rule, so every rule allows exactly peers × ports
that were observed (a rule's ``from``/``to`` list and ``ports`` list multiply out).
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from netpolgen.identity import DEFAULT_VOLATILE_LABELS, IdentityResolver
from netpolgen.inventory import Inventory, WorkloadRef
from netpolgen.resolve import KIND_POD

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MANAGED_BY = {"app.kubernetes.io/managed-by": "netpolgen"}
DEFAULT_EXCLUDED_NAMESPACES: tuple[str, ...] = ("kube-system",)
DNS_PORT = 53


@dataclass(frozen=True)
class SynthesisOptions:
    namespaces: tuple[str, ...] = ()  # only these namespaces get policies (peers may be anywhere)
    # kube-system is left alone by default: a default-deny there can cut the control plane off
    # (kube-proxy, CNI agents, webhooks) and it is rarely what a first rollout means.
    exclude_namespaces: tuple[str, ...] = DEFAULT_EXCLUDED_NAMESPACES
    egress: bool = True
    volatile_labels: tuple[str, ...] = DEFAULT_VOLATILE_LABELS
    dns_tcp_fallback: bool = True  # DNS over UDP also allows TCP on the same port (truncation)


@dataclass
class SynthesisResult:
    policies: list[dict]
    problems: list[str] = field(default_factory=list)  # workloads/peers that could not be selected
    skipped_edges: int = 0  # edges no rule could express (their workload had no exact selector)
    namespaces: list[str] = field(default_factory=list)
    # label classes given one policy: "<class> = <members>: <why>", one line each
    label_classes: list[str] = field(default_factory=list)


class _EdgeRow(NamedTuple):
    src_kind: str
    src_workload: str
    dst_kind: str
    dst_workload: str
    proto: str
    dst_port: int
    dst_names: str


@dataclass(frozen=True)
class _Peer:
    """A rule peer: its canonical JSON text (identity and sort key) and the object itself."""

    text: str
    value: dict = field(hash=False, compare=False)

    def obj(self) -> dict:
        # Shared between the rules that name the same peer: the policies are read, not edited
        # (render.py writes no YAML aliases for shared objects).
        return self.value


def synthesize(edges: pd.DataFrame, inventory: Inventory, options: SynthesisOptions | None = None) -> SynthesisResult:
    """Build the policies for ``edges`` (``netpolgen.aggregate`` schema)."""
    opts = options or SynthesisOptions()
    ids = IdentityResolver(inventory, opts.volatile_labels)
    result = SynthesisResult(policies=[])
    edges = _with_dns_fallback(edges) if opts.dns_tcp_fallback else edges

    in_scope = _scope(edges, opts)
    ingress: dict[WorkloadRef, dict[_Peer, set[tuple[str, int]]]] = defaultdict(lambda: defaultdict(set))
    egress: dict[WorkloadRef, dict[_Peer, set[tuple[str, int]]]] = defaultdict(lambda: defaultdict(set))
    names: dict[WorkloadRef, set[str]] = defaultdict(set)
    problems: set[str] = set()
    peers: dict[tuple[str, str, str], _Peer | None] = {}
    # Per distinct workload text: (ref, it can be selected, its namespace is in scope). Edges
    # repeat the same few workloads many times over; everything below keys on plain strings.
    workloads: dict[str, tuple[WorkloadRef, bool, bool]] = {}

    def workload(text: str) -> tuple[WorkloadRef, bool, bool]:
        """(the policy subject: the workload, or the label class it belongs to; selectable; in scope)."""
        if text not in workloads:
            ident = ids.identity(_ref(text))
            ref = ident.class_ref
            workloads[text] = (ref, ident.selector is not None, ref.namespace in in_scope)
        return workloads[text]

    def peer_of(kind: str, text: str, ref: WorkloadRef | None, other_ns: str) -> _Peer | None:
        key = (kind, text, other_ns)
        if key not in peers:
            other = WorkloadRef("", other_ns, "") if other_ns else None
            peers[key] = _peer(kind, text, ref, other, ids, problems)
        return peers[key]

    cols = ["src_kind", "src_workload", "dst_kind", "dst_workload", "proto", "dst_port", "dst_names"]
    for src_kind, src_wl, dst_kind, dst_wl, proto, dst_port, dst_names in zip(*(edges[c].to_numpy(dtype=object) for c in cols)):
        port = (str(proto), int(dst_port))
        src = workload(src_wl) if src_kind == KIND_POD else None
        dst = workload(dst_wl) if dst_kind == KIND_POD else None
        placed = False
        if dst is not None and dst[2]:
            src_peer = peer_of(src_kind, src_wl, src[0] if src else None, dst[0].namespace)
            if src_peer is not None and dst[1]:
                ingress[dst[0]][src_peer].add(port)
                placed = True
        if opts.egress and src is not None and src[2]:
            dst_peer = peer_of(dst_kind, dst_wl, dst[0] if dst else None, src[0].namespace)
            if dst_peer is not None and src[1]:
                egress[src[0]][dst_peer].add(port)
                if dst_names and dst_kind != KIND_POD:
                    names[src[0]].add(f"{dst_wl}={dst_names}")
                placed = True
        if not placed and ((dst is not None and dst[2]) or (src is not None and src[2])):
            result.skipped_edges += 1
    classes: list[str] = []
    for ref in sorted(set(ingress) | set(egress)):
        ident = ids.identity(ref)
        if ident.selector is None:
            continue
        policy = _workload_policy(ref, ident.selector.to_dict(), ingress.get(ref, {}), egress.get(ref, {}), names.get(ref, set()), opts)
        if ident.merged:
            members = ", ".join(str(m) for m in ident.members)
            policy["metadata"]["annotations"]["netpolgen.io/label-class"] = members
            policy["metadata"]["annotations"]["netpolgen.io/label-class-reason"] = ident.reason
            policy["metadata"]["name"] = f"allow-{_class_name(ident.members)}"
            classes.append(f"{policy['metadata']['namespace']}/{policy['metadata']['name']} selects {members}: {ident.reason}")
        result.policies.append(policy)
    result.label_classes = sorted(classes)
    # Workloads in scope whose selector failed get no allow policy: report them.
    for ref in sorted({r for r in _pod_refs(edges) if r.namespace in in_scope}):
        ident = ids.identity(ref)
        if ident.selector is None:
            problems.add(ident.problem)
    deny = [_default_deny(ns, opts) for ns in sorted(in_scope)]
    result.policies = deny + sorted(result.policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    _disambiguate_names(result.policies)
    result.problems = sorted(problems)
    result.namespaces = sorted(in_scope)
    return result


def _scope(edges: pd.DataFrame, opts: SynthesisOptions) -> set[str]:
    seen = {r.namespace for r in _pod_refs(edges)}
    if opts.namespaces:
        seen &= set(opts.namespaces)
    # A namespace asked for by name is generated even if it is excluded by default.
    return seen - (set(opts.exclude_namespaces) - set(opts.namespaces))


def _pod_refs(edges: pd.DataFrame) -> set[WorkloadRef]:
    refs: set[WorkloadRef] = set()
    for kind_col, wl_col in (("src_kind", "src_workload"), ("dst_kind", "dst_workload")):
        for w in edges.loc[edges[kind_col] == KIND_POD, wl_col].unique():
            refs.add(_ref(w))
    return refs


def _ref(text: str) -> WorkloadRef:
    """Parse ``ns/name[Kind]`` (the form resolve.py writes)."""
    ns, _, rest = text.partition("/")
    name, _, kind = rest.partition("[")
    return WorkloadRef(kind.rstrip("]"), ns, name)


def _peer(kind: str, workload: str, ref: WorkloadRef | None, other: WorkloadRef | None,
          ids: IdentityResolver, problems: set[str]) -> _Peer | None:
    if ref is not None:
        ident = ids.identity(ref)
        if ident.selector is None:
            problems.add(ident.problem)
            return None
        peer: dict = {"podSelector": ident.selector.to_dict()}
        if other is None or other.namespace != ref.namespace:
            # One peer holding both selectors means AND; two list items would mean OR.
            peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: ref.namespace}}
        return _Peer(json.dumps(peer, sort_keys=True), peer)
    addr = ipaddress.ip_address(workload)
    block = {"ipBlock": {"cidr": f"{addr}/{addr.max_prefixlen}"}}
    return _Peer(json.dumps(block, sort_keys=True), block)


def _rules(peers: dict[_Peer, set[tuple[str, int]]], peer_key: str) -> list[dict]:
    by_ports: dict[tuple[tuple[str, int], ...], list[_Peer]] = defaultdict(list)
    for peer, ports in peers.items():
        by_ports[tuple(sorted(ports))].append(peer)
    keyed = []
    for ports, plist in by_ports.items():
        plist = sorted(plist, key=lambda p: p.text)
        ordered_ports = sorted(ports, key=lambda x: (x[1], x[0]))
        rule = {
            peer_key: [p.obj() for p in plist],
            "ports": [{"port": port, "protocol": proto} for proto, port in ordered_ports],
        }
        # By (port, protocol) list, then first peer: each peer sits in exactly one rule, so the
        # key is unique and the order deterministic.
        keyed.append(((tuple((port, proto) for proto, port in ordered_ports), plist[0].text), rule))
    return [rule for _, rule in sorted(keyed, key=lambda kr: kr[0])]


def _workload_policy(ref: WorkloadRef, selector: dict, ingress: dict, egress: dict, names: set[str], opts: SynthesisOptions) -> dict:
    spec: dict = {"podSelector": selector, "policyTypes": []}
    if ingress:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = _rules(ingress, "from")
    if egress and opts.egress:
        spec["policyTypes"].append("Egress")
        spec["egress"] = _rules(egress, "to")
    annotations = {"netpolgen.io/workload": str(ref)}
    if names:
        annotations["netpolgen.io/egress-dns-names"] = "; ".join(sorted(names))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"allow-{ref.name}",
            "namespace": ref.namespace,
            "labels": dict(MANAGED_BY),
            "annotations": annotations,
        },
        "spec": spec,
    }


def _class_name(members: tuple[WorkloadRef, ...]) -> str:
    """A label class's policy is named after what its members' names share (the DaemonSet
    ``node-local-dns`` of pods ``node-local-dns-6jnx9``, ``node-local-dns-88zrp``), else after
    its first member."""
    import os.path

    common = os.path.commonprefix([m.name for m in members]).rstrip("-.")
    return common if len(common) >= 3 else members[0].name


def _default_deny(namespace: str, opts: SynthesisOptions) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"] if opts.egress else ["Ingress"]},
    }


def _disambiguate_names(policies: list[dict]) -> None:
    """Two workloads of different kinds may share a name (Deployment x, StatefulSet x)."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for p in policies:
        seen[(p["metadata"]["namespace"], p["metadata"]["name"])] += 1
    for p in policies:
        key = (p["metadata"]["namespace"], p["metadata"]["name"])
        wl = p["metadata"].get("annotations", {}).get("netpolgen.io/workload")
        if seen[key] > 1 and wl:
            kind = _ref(wl).kind.lower()
            p["metadata"]["name"] = f"{p['metadata']['name']}-{kind}"


def _with_dns_fallback(edges: pd.DataFrame) -> pd.DataFrame:
    """A client that resolved names over UDP may retry over TCP (truncated answers): for every
    DNS edge on one protocol, add the same edge on the other, on the server's real port."""
    if edges.empty:
        return edges
    dns = edges[(edges["is_dns"]) & edges["proto"].isin(["UDP", "TCP"])] if "is_dns" in edges else edges.iloc[0:0]
    if dns.empty:
        return edges
    twin = dns.copy()
    twin["proto"] = twin["proto"].map({"UDP": "TCP", "TCP": "UDP"})
    twin["connections"] = 0
    twin["packets"] = 0
    twin["bytes"] = 0
    out = pd.concat([edges, twin], ignore_index=True)
    keys = ["src_kind", "src_namespace", "src_workload", "dst_kind", "dst_namespace", "dst_workload", "proto", "dst_port"]
    return out.drop_duplicates(subset=keys, keep="first")
