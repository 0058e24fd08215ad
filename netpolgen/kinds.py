"""Output kinds: which renderers a run uses, and the model passes each needs first.

``networkpolicy`` (the default), ``cilium`` (CiliumNetworkPolicy; with ``cilium-clusterwide``
the rules every namespace shares move into one CiliumClusterwideNetworkPolicy) and
``clusternetworkpolicy`` (a Baseline-tier ClusterNetworkPolicy with NetworkPolicies on top).
Each kind is a complete policy set on its own, self-checked on its own: two kinds asked for
together are alternatives to choose from, not one set to apply together.
"""

from __future__ import annotations

from typing import Mapping

from netpolgen.errors import UsageError
from netpolgen.model import PolicyModel

NETWORKPOLICY = "networkpolicy"
CILIUM = "cilium"
CILIUM_CLUSTERWIDE = "cilium-clusterwide"
CLUSTERNETWORKPOLICY = "clusternetworkpolicy"
KINDS = (NETWORKPOLICY, CILIUM, CILIUM_CLUSTERWIDE, CLUSTERNETWORKPOLICY)


def check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The policy sets to write, in a fixed order; ``--kind`` values checked."""
    for k in kinds:
        if k not in KINDS:
            raise UsageError(None, "--kind", f"unknown kind {k!r}; use one of {', '.join(KINDS)}")
    chosen = set(kinds) or {NETWORKPOLICY}
    if CILIUM_CLUSTERWIDE in chosen:
        chosen.discard(CILIUM)  # the clusterwide set is the Cilium set, with the shared rules moved
    return tuple(k for k in KINDS if k in chosen)


def render_kind(kind: str, model: PolicyModel, *, egress: bool = True, fqdn_patterns: tuple[str, ...] = (),
                entities: Mapping[str, set[str]] | None = None, dns_patterns: tuple[str, ...] = ()) -> list[dict]:
    """The documents of one kind for ``model`` (CIDR aggregation, if any, already applied)."""
    if kind == NETWORKPOLICY:
        from netpolgen.renderers.networkpolicy import NetworkPolicyRenderer

        return NetworkPolicyRenderer(egress=egress).render(model)
    if kind in (CILIUM, CILIUM_CLUSTERWIDE):
        from netpolgen.peers import with_dns_names, with_entities
        from netpolgen.renderers.cilium import CiliumOptions, CiliumRenderer

        cilium_model = with_entities(with_dns_names(model), entities or {})
        opts = CiliumOptions(egress=egress, fqdn_patterns=fqdn_patterns, clusterwide=kind == CILIUM_CLUSTERWIDE,
                             dns_patterns=dns_patterns)
        return CiliumRenderer(opts).render(cilium_model)
    if kind == CLUSTERNETWORKPOLICY:
        from netpolgen.renderers.clusternetworkpolicy import ClusterNetworkPolicyRenderer

        return ClusterNetworkPolicyRenderer(egress=egress).render(model)
    raise UsageError(None, "--kind", f"unknown kind {kind!r}")
