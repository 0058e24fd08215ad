"""Synthesis: edges → NetworkPolicy objects (plain dicts, as ``kubectl`` would read them). Pure.

Per namespace in scope: one default-deny for Ingress and Egress, then one policy per workload
with exact rules. For an edge A → B on port P: B's ingress allows A on P and A's egress allows B
on P. Peers with identical port sets share a rule, so every rule allows exactly peers × ports
that were observed (a rule's ``from``/``to`` list and ``ports`` list multiply out).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import pandas as pd

from netpolgen.endpoint_kinds import KIND_NODE, KIND_POD
from netpolgen.flows import host_cidr
from netpolgen.identity import DEFAULT_VOLATILE_LABELS, IdentityResolver
from netpolgen.inventory import Inventory, WorkloadRef
from netpolgen.model import (
    EGRESS,
    INGRESS,
    CidrPeer,
    Evidence,
    NodePeer,
    Peer,
    PolicyModel,
    PortSpec,
    Rule,
    WorkloadPeer,
    WorkloadRules,
)

if TYPE_CHECKING:
    from netpolgen.cidrs import CidrBudget

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
    kinds: tuple[str, ...] = ("networkpolicy",)  # output kinds (netpolgen.kinds), each a policy set
    fqdn_patterns: tuple[str, ...] = ()  # Cilium: names matching these are written as matchPattern
    dns_patterns: tuple[str, ...] = ()  # Cilium: extra rules.dns matchPatterns (lookups the flows cannot show)
    cidr_budget: "CidrBudget | None" = None  # aggregate outside addresses (netpolgen.cidrs)


@dataclass
class SynthesisResult:
    policies: list[dict]
    problems: list[str] = field(default_factory=list)  # workloads/peers that could not be selected
    skipped_edges: int = 0  # edges no rule could express (their workload had no exact selector)
    namespaces: list[str] = field(default_factory=list)
    # label classes given one policy: "<policy> selects <members>: <why>", one line each
    label_classes: list[str] = field(default_factory=list)
    model: PolicyModel | None = None  # what was decided; ``policies`` is its rendering
    # kind -> its documents, when more than the default kind is written (``policies`` is them all)
    policy_sets: dict[str, list[dict]] = field(default_factory=dict)
    widening: list[str] = field(default_factory=list)  # "<ns>/<workload> <rule>: ..." per widened rule
    entities: dict[str, set[str]] = field(default_factory=dict)  # node address -> Hubble identities used


def synthesize(edges: pd.DataFrame, inventory: Inventory, options: SynthesisOptions | None = None,
               entities: Mapping[str, set[str]] | None = None) -> SynthesisResult:
    """Build the policies for ``edges`` (``netpolgen.aggregate`` schema): the rule model, rendered
    as Kubernetes NetworkPolicies (or the kinds ``options.kinds`` names). ``entities`` are the
    Hubble identities node addresses were seen with (``ResolveReport.entities``)."""
    from netpolgen.renderers.networkpolicy import NetworkPolicyRenderer

    opts = options or SynthesisOptions()
    model, result = build_model(edges, inventory, opts)
    result.entities = {k: set(v) for k, v in (entities or {}).items()}
    if opts.cidr_budget is not None:
        from netpolgen.cidrs import aggregate_model, cluster_addresses

        model = aggregate_model(model, opts.cidr_budget, cluster_addresses(inventory, model))
        result.widening = [f"{w.subject} {line}" for w in model.workloads for line in w.widening]
    result.model = model
    if tuple(opts.kinds) == ("networkpolicy",):
        result.policies = NetworkPolicyRenderer(egress=opts.egress).render(model)
    else:
        from netpolgen.kinds import check_kinds, render_kind

        for kind in check_kinds(tuple(opts.kinds)):
            result.policy_sets[kind] = render_kind(kind, model, egress=opts.egress,
                                                   fqdn_patterns=tuple(opts.fqdn_patterns), entities=entities,
                                                   dns_patterns=tuple(opts.dns_patterns))
        result.policies = [p for docs in result.policy_sets.values() for p in docs]
    result.label_classes = sorted({
        f"{p['metadata']['namespace']}/{p['metadata']['name']} selects {p['metadata']['annotations']['netpolgen.io/label-class']}: "
        f"{p['metadata']['annotations']['netpolgen.io/label-class-reason']}"
        for p in result.policies
        if "netpolgen.io/label-class" in p["metadata"].get("annotations", {}) and "namespace" in p["metadata"]
    })
    return result


def build_model(edges: pd.DataFrame, inventory: Inventory, opts: SynthesisOptions) -> tuple[PolicyModel, SynthesisResult]:
    """Edges → the rule model, and what could not be modelled (problems, skipped edges)."""
    ids = IdentityResolver(inventory, opts.volatile_labels)
    result = SynthesisResult(policies=[])
    edges = _with_dns_fallback(edges) if opts.dns_tcp_fallback else edges

    in_scope = _scope(edges, opts)
    # subject -> direction -> (peer, port) -> evidence
    rules: dict[WorkloadRef, dict[str, dict[tuple[Peer, PortSpec], Evidence]]] = defaultdict(lambda: {INGRESS: {}, EGRESS: {}})
    names: dict[WorkloadRef, set[str]] = defaultdict(set)
    problems: set[str] = set()
    peers: dict[tuple[str, str], Peer | None] = {}
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

    def peer_of(kind: str, text: str, ref: WorkloadRef | None) -> Peer | None:
        key = (kind, text)
        if key not in peers:
            peers[key] = _peer(kind, text, ref, ids, problems)
        return peers[key]

    def add(subject: WorkloadRef, direction: str, peer: Peer, port: PortSpec, ev: Evidence) -> None:
        table = rules[subject][direction]
        table[(peer, port)] = table[(peer, port)].merged(ev) if (peer, port) in table else ev

    cols = ["src_kind", "src_workload", "dst_kind", "dst_workload", "proto", "dst_port", "dst_names",
            "connections", "first_seen", "last_seen"]
    rows = zip(*(edges[c].to_numpy(dtype=object) for c in cols), strict=True)
    for src_kind, src_wl, dst_kind, dst_wl, proto, dst_port, dst_names, conns, first, last in rows:
        port = PortSpec(str(proto), int(dst_port))
        ev = Evidence(int(conns), _time(first), _time(last))
        src = workload(src_wl) if src_kind == KIND_POD else None
        dst = workload(dst_wl) if dst_kind == KIND_POD else None
        placed = False
        if dst is not None and dst[2]:
            src_peer = peer_of(src_kind, src_wl, src[0] if src else None)
            if src_peer is not None and dst[1]:
                add(dst[0], INGRESS, src_peer, port, ev)
                placed = True
        if opts.egress and src is not None and src[2]:
            dst_peer = peer_of(dst_kind, dst_wl, dst[0] if dst else None)
            if dst_peer is not None and src[1]:
                add(src[0], EGRESS, dst_peer, port, ev)
                if dst_names and dst_kind != KIND_POD:
                    names[src[0]].add(f"{dst_wl}={dst_names}")
                placed = True
        if not placed and ((dst is not None and dst[2]) or (src is not None and src[2])):
            result.skipped_edges += 1
    subjects: list[WorkloadRules] = []
    for ref in sorted(rules):
        ident = ids.identity(ref)
        if ident.selector is None:
            continue
        subjects.append(WorkloadRules(
            subject=ref,
            selector=ident.selector,
            ingress=tuple(Rule(peer, port, ev) for (peer, port), ev in rules[ref][INGRESS].items()),
            egress=tuple(Rule(peer, port, ev) for (peer, port), ev in rules[ref][EGRESS].items()),
            members=ident.members if ident.merged else (),
            merge_reason=ident.reason if ident.merged else "",
            dns_names=tuple(sorted(names.get(ref, ()))),
        ))
    # Workloads in scope whose selector failed get no allow policy: report them.
    for ref in sorted({r for r in _pod_refs(edges) if r.namespace in in_scope}):
        ident = ids.identity(ref)
        if ident.selector is None:
            problems.add(ident.problem)
    result.problems = sorted(problems)
    result.namespaces = sorted(in_scope)
    directions = (INGRESS, EGRESS) if opts.egress else (INGRESS,)
    return PolicyModel(tuple(sorted(in_scope)), tuple(subjects), directions), result


def _time(value: object) -> float | None:
    t = float(value)  # type: ignore[arg-type]
    return None if t != t else t


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


def _peer(kind: str, workload: str, ref: WorkloadRef | None, ids: IdentityResolver, problems: set[str]) -> Peer | None:
    if ref is not None:
        ident = ids.identity(ref)
        if ident.selector is None:
            problems.add(ident.problem)
            return None
        return WorkloadPeer(ref.namespace, ident.selector, str(ident.class_ref))
    addr = ipaddress.ip_address(workload)
    if kind == KIND_NODE:
        return NodePeer(str(addr))
    return CidrPeer(host_cidr(str(addr)))


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
