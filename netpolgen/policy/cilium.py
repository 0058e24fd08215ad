"""CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (``cilium.io/v2``) → the policy model,
for the subset netpolgen writes, so that the one engine evaluates them.

Cilium's allow rules add up like NetworkPolicy rules (any rule selecting the endpoint that
admits the peer and port allows), so each Cilium document becomes NetworkPolicy model objects:
- ``endpointSelector`` selects pods; ``k8s:io.kubernetes.pod.namespace`` in it names the
  namespace (a CiliumNetworkPolicy only ever selects in its own namespace; a clusterwide one
  becomes one policy per namespace its selector admits);
- a direction is isolated once a selecting rule has that section non-empty (docs.cilium.io,
  "Policy Enforcement Modes"), or ``enableDefaultDeny`` says so; an empty rule ``{}`` admits
  nothing, and a rule with ports but no peer admits every peer on them;
- ``fromEndpoints``/``toEndpoints`` are pod/namespace selector pairs, ``toCIDR``/``toCIDRSet``
  ipBlocks, ``toEntities`` the addresses the run saw for each entity (``world``: every address
  outside the cluster and its nodes), and ``toFQDNs`` the addresses the flows showed for the
  names it matches, but only names some ``rules.dns`` of the namespace lets the DNS proxy see:
  without it Cilium learns no address for the name.
Anything else (deny sections, L7 HTTP rules, ``toServices``, node selectors...) is refused with
a ``PolicyError``: the self-check must not pass what it did not evaluate.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netpolgen.errors import PolicyError
from netpolgen.flows import host_cidr
from netpolgen.policy.ipspace import IPRange, cidr_range, subtract
from netpolgen.policy.model import EGRESS, INGRESS, IPBlock, NetworkPolicy, PolicyPeer, PolicyRule, PortSpec
from netpolgen.selectors import LabelSelector, Requirement, parse_selector

CNP = "CiliumNetworkPolicy"
CCNP = "CiliumClusterwideNetworkPolicy"
KINDS = (CNP, CCNP)
_NS_KEYS = ("k8s:io.kubernetes.pod.namespace", "io.kubernetes.pod.namespace", "any:io.kubernetes.pod.namespace")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_RULE_KEYS = {
    INGRESS: {"fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "toPorts"},
    EGRESS: {"toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toFQDNs", "toPorts"},
}
_SPEC_KEYS = {"endpointSelector", "ingress", "egress", "enableDefaultDeny", "description", "labels"}
_NEVER = LabelSelector(match_expressions=(Requirement("netpolgen.io/no-such-namespace", "Exists", ()),))


@dataclass(frozen=True)
class CiliumContext:
    """What the run observed that Cilium resolves at run time: addresses per DNS name, per
    entity, and the namespaces a clusterwide policy may apply to."""

    names: Mapping[str, frozenset[str]] = field(default_factory=dict)  # name -> addresses
    entities: Mapping[str, frozenset[str]] = field(default_factory=dict)  # entity -> addresses
    namespaces: tuple[str, ...] = ()
    cluster_ranges: tuple[str, ...] = ()  # pod and Service ranges, node addresses: not ``world``


def parse_cilium(objs: Iterable[Mapping[str, Any]], context: CiliumContext, file: str | None = None) -> list[NetworkPolicy]:
    """The Cilium documents of ``objs`` as NetworkPolicy model objects (others are skipped)."""
    docs = [(i, o) for i, o in enumerate(objs, start=1) if o.get("kind") in KINDS]
    dns = _dns_patterns(docs, context, file)
    out: list[NetworkPolicy] = []
    for i, obj in docs:
        where = f"object {i} ({obj.get('kind')} {(obj.get('metadata') or {}).get('name', '?')})"
        try:
            out.extend(_translate(obj, context, dns))
        except _Refused as e:
            raise PolicyError(file, f"{where}: {e.path}", e.what) from None
    return out


class _Refused(Exception):
    def __init__(self, path: str, what: str) -> None:
        super().__init__(what)
        self.path, self.what = path, what


def _namespaces_of(obj: Mapping[str, Any], context: CiliumContext) -> list[tuple[str, LabelSelector]]:
    """(namespace, pod selector) pairs the document's endpointSelector covers."""
    spec = obj.get("spec") or {}
    if "endpointSelector" not in spec:
        raise _Refused("spec", "no endpointSelector (node selectors are host policies, not evaluated)")
    ns_sel, pod_sel = _split(spec.get("endpointSelector") or {}, "spec.endpointSelector")
    if obj.get("kind") == CNP:
        ns = str((obj.get("metadata") or {}).get("namespace") or "default")
        return [(ns, pod_sel if ns_sel is None or ns_sel.matches({NAMESPACE_NAME_LABEL: ns}) else _NEVER)]
    return [(ns, pod_sel) for ns in context.namespaces if ns_sel is None or ns_sel.matches({NAMESPACE_NAME_LABEL: ns})]


def _split(raw: Mapping[str, Any], path: str) -> tuple[LabelSelector | None, LabelSelector]:
    """A Cilium endpoint selector as (namespace selector or None, pod selector), label sources
    (``k8s:``, ``any:``) dropped."""
    try:
        sel = parse_selector(raw, path)
    except ValueError as e:
        raise _Refused(path, str(e)) from None
    ns_labels: list[tuple[str, str]] = []
    pod_labels: list[tuple[str, str]] = []
    ns_exprs: list[Requirement] = []
    pod_exprs: list[Requirement] = []
    for k, v in sel.match_labels:
        (ns_labels if k in _NS_KEYS else pod_labels).append((NAMESPACE_NAME_LABEL if k in _NS_KEYS else _plain(k), v))
    for r in sel.match_expressions:
        if r.key in _NS_KEYS:
            ns_exprs.append(Requirement(NAMESPACE_NAME_LABEL, r.operator, r.values))
        else:
            pod_exprs.append(Requirement(_plain(r.key), r.operator, r.values))
    ns = LabelSelector(tuple(sorted(ns_labels)), tuple(ns_exprs)) if ns_labels or ns_exprs else None
    return ns, LabelSelector(tuple(sorted(pod_labels)), tuple(pod_exprs))


def _plain(key: str) -> str:
    for source in ("k8s:", "any:"):
        if key.startswith(source):
            return key[len(source):]
    if ":" in key.split("/")[0]:
        raise _Refused(key, f"label source {key.split(':')[0]!r} is not evaluated")
    return key


def _dns_patterns(docs: list[tuple[int, Mapping[str, Any]]], context: CiliumContext, file: str | None) -> dict[str, list[str]]:
    """namespace -> the ``rules.dns`` patterns its endpoints' egress carries (matchName as is)."""
    out: dict[str, list[str]] = {}
    for _, obj in docs:
        try:
            spaces = [ns for ns, _ in _namespaces_of(obj, context)]
        except _Refused:
            continue  # reported when the document itself is translated
        for rule in (obj.get("spec") or {}).get("egress") or []:
            for tp in (rule or {}).get("toPorts") or []:
                for d in ((tp or {}).get("rules") or {}).get("dns") or []:
                    pattern = d.get("matchName") or d.get("matchPattern")
                    if pattern:
                        for ns in spaces:
                            out.setdefault(ns, []).append(str(pattern))
    return out


def name_matches(pattern: str, name: str) -> bool:
    """Cilium's DNS matching: names compare without the trailing dot and case; ``*`` alone is
    every name; elsewhere ``*`` matches DNS characters within one label (docs.cilium.io,
    "Layer 3 Policies", DNS based)."""
    name, pattern = name.rstrip(".").lower(), pattern.rstrip(".").lower()
    if pattern == "*":
        return True
    if "*" not in pattern:
        return name == pattern
    return fnmatch.fnmatchcase(name, pattern) and name.count(".") == pattern.count(".")


def _translate(obj: Mapping[str, Any], context: CiliumContext, dns: dict[str, list[str]]) -> list[NetworkPolicy]:
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise _Refused("spec", "required")
    for key in spec:
        if key not in _SPEC_KEYS:
            raise _Refused(f"spec.{key}", "not in the subset the self-check evaluates")
    enable = spec.get("enableDefaultDeny") or {}
    meta = obj.get("metadata") or {}
    out = []
    for ns, pod_sel in _namespaces_of(obj, context):
        rules: dict[str, tuple[PolicyRule, ...]] = {}
        types = []
        for direction in (INGRESS, EGRESS):
            raw = spec.get(direction) or []
            if not isinstance(raw, list):
                raise _Refused(f"spec.{direction}", "expected a list")
            if enable.get(direction) is False and raw:
                raise _Refused(f"spec.enableDefaultDeny.{direction}", "false is not evaluated")
            if raw or enable.get(direction) is True:
                types.append("Ingress" if direction == INGRESS else "Egress")
            rules[direction] = tuple(
                r for i, item in enumerate(raw)
                if (r := _rule(item, direction, i, ns, obj.get("kind") == CCNP, context, dns.get(ns, []))) is not None
            )
        name = str(meta.get("name", ""))
        out.append(NetworkPolicy(
            namespace=ns, name=name if obj.get("kind") == CNP else f"{CCNP}/{name}", pod_selector=pod_sel,
            ingress=rules[INGRESS], egress=rules[EGRESS], policy_types=tuple(types), where=str(obj.get("kind")),
        ))
    return out


def _rule(raw: Any, direction: str, index: int, ns: str, clusterwide: bool, context: CiliumContext,
          dns: list[str]) -> PolicyRule | None:
    path = f"spec.{direction}[{index}]"
    if not isinstance(raw, Mapping):
        raise _Refused(path, "expected a mapping")
    for key in raw:
        if key not in _RULE_KEYS[direction]:
            raise _Refused(f"{path}.{key}", "not in the subset the self-check evaluates")
    ports = _ports(raw.get("toPorts") or [], f"{path}.toPorts")
    l3 = [k for k in raw if k != "toPorts"]
    if not l3:
        # Ports only: every peer on those ports. Nothing at all: the empty rule admits nothing.
        return PolicyRule(direction, index, (), ports) if ports else None
    peers: list[PolicyPeer] = []
    for key in l3:
        items = raw[key] or []
        for j, item in enumerate(items):
            peers.extend(_peers(key, item, f"{path}.{key}[{j}]", ns, clusterwide, context, dns))
    if not peers:
        return None  # e.g. names no flow resolved: admits nothing (an empty list would be "every peer")
    return PolicyRule(direction, index, tuple(peers), ports)


def _peers(key: str, item: Any, path: str, ns: str, clusterwide: bool, context: CiliumContext,
           dns: list[str]) -> list[PolicyPeer]:
    if key.endswith("Endpoints"):
        ns_sel, pod_sel = _split(item or {}, path)
        if ns_sel is None:
            # A namespaced policy's peers are in its namespace; a clusterwide one's anywhere.
            ns_sel = LabelSelector() if clusterwide else LabelSelector(((NAMESPACE_NAME_LABEL, ns),))
        return [PolicyPeer(pod_selector=pod_sel, namespace_selector=ns_sel)]
    if key.endswith("CIDR"):
        return [_block(str(item), (), path)]
    if key.endswith("CIDRSet"):
        if not isinstance(item, Mapping) or "cidr" not in item:
            raise _Refused(path, "only cidr (with except) is evaluated")
        return [_block(str(item["cidr"]), tuple(str(x) for x in item.get("except") or ()), path)]
    if key.endswith("Entities"):
        return _entity(str(item), path, context)
    if key == "toFQDNs":
        if not isinstance(item, Mapping):
            raise _Refused(path, "expected a mapping")
        pattern = str(item.get("matchName") or item.get("matchPattern") or "")
        names = [n for n in context.names if name_matches(pattern, n) and any(name_matches(d, n) for d in dns)]
        addrs = sorted({a for n in names for a in context.names[n]})
        return [_block(host_cidr(a), (), path) for a in addrs]
    raise _Refused(path, "not evaluated")


def _entity(entity: str, path: str, context: CiliumContext) -> list[PolicyPeer]:
    if entity == "all":
        return [PolicyPeer(ip_block=_whole(4)), PolicyPeer(ip_block=_whole(6)),
                PolicyPeer(pod_selector=LabelSelector(), namespace_selector=LabelSelector())]
    if entity == "world":
        holes = [cidr_range(c) for c in context.cluster_ranges]
        return [PolicyPeer(ip_block=IPBlock(c, ("cluster",), subtract([cidr_range(c)], [h for h in holes if h.family == f])))
                for c, f in (("0.0.0.0/0", 4), ("::/0", 6))]
    if entity == "cluster":
        addrs = sorted({a for e in ("host", "remote-node", "kube-apiserver") for a in context.entities.get(e, ())})
        return [PolicyPeer(pod_selector=LabelSelector(), namespace_selector=LabelSelector())] + \
            [_block(host_cidr(a), (), path) for a in addrs]
    if entity in ("host", "remote-node", "kube-apiserver"):
        return [_block(host_cidr(a), (), path) for a in sorted(context.entities.get(entity, ()))]
    raise _Refused(path, f"entity {entity!r} is not evaluated")


def _whole(family: int) -> IPBlock:
    cidr = "0.0.0.0/0" if family == 4 else "::/0"
    return IPBlock(cidr, (), (cidr_range(cidr),))


def _block(cidr: str, excepts: tuple[str, ...], path: str) -> PolicyPeer:
    try:
        whole: IPRange = cidr_range(cidr)
        holes = [cidr_range(x) for x in excepts]
    except ValueError as e:
        raise _Refused(path, f"{cidr!r}: {e}") from None
    return PolicyPeer(ip_block=IPBlock(cidr, excepts, subtract([whole], holes)))


def _ports(raw: Any, path: str) -> tuple[PortSpec, ...]:
    out: list[PortSpec] = []
    for i, tp in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(tp, Mapping):
            raise _Refused(p, "expected a mapping")
        for key in tp:
            if key not in ("ports", "rules"):
                raise _Refused(f"{p}.{key}", "not evaluated")
        l7 = tp.get("rules") or {}
        if any(k != "dns" for k in l7):
            raise _Refused(f"{p}.rules", "only DNS rules are evaluated (they filter lookups, not connections)")
        for j, port in enumerate(tp.get("ports") or []):
            q = f"{p}.ports[{j}]"
            text = str(port.get("port", "0"))
            proto = str(port.get("protocol") or "ANY").upper()
            protos = ("TCP", "UDP", "SCTP") if proto == "ANY" else (proto,)
            if text.isdigit():
                number = int(text)
                end = port.get("endPort")
                for pr in protos:
                    out.append(PortSpec(pr, None) if number == 0 else PortSpec(pr, number, int(end) if end else None))
            elif text:
                out.extend(PortSpec(pr, text) for pr in protos)
            else:
                raise _Refused(q, "port required")
    return tuple(out)
