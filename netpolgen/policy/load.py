"""Cilium documents in policy files, for ``diff`` and ``explain``: read beside the
NetworkPolicies (``parse.load_policies`` reads those and skips other kinds) and translated into
the same model (``policy.cilium``), so the one engine answers for both.

What Cilium resolves at run time comes from what the command has: with traffic (``diff``), the
names and node identities the flows carry (``selfcheck.cilium_context``); without (``explain``),
the inventory's nodes as ``host``/``remote-node`` and no DNS names, so a ``toFQDNs`` rule admits
no address there, and the explanation says which rules could not be resolved. ClusterNetworkPolicy
tiers are evaluated by ``generate``'s self-check only: here they are refused, not skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from netpolgen.errors import PolicyError
from netpolgen.flows import host_cidr
from netpolgen.inventory import Inventory
from netpolgen.policy.cilium import KINDS as CILIUM_KINDS
from netpolgen.policy.cilium import CiliumContext, parse_cilium
from netpolgen.policy.clusternetwork import KIND as CLUSTER_KIND
from netpolgen.policy.model import NetworkPolicy
from netpolgen.policy.parse import policy_documents


def inventory_context(inventory: Inventory) -> CiliumContext:
    """What an inventory alone says: its namespaces, and its nodes as both node entities."""
    nodes = frozenset(a for n in inventory.nodes for a in n.addresses if a)
    spaces = tuple(sorted(set(inventory.namespaces) | {p.namespace for p in inventory.pods}))
    return CiliumContext(entities={"host": nodes, "remote-node": nodes}, namespaces=spaces,
                         cluster_ranges=tuple(host_cidr(a) for a in sorted(nodes)))


def load_cilium_policies(paths: Iterable[str], inventory: Inventory, context: CiliumContext | None = None) -> list[NetworkPolicy]:
    """The Cilium documents of ``paths`` as NetworkPolicy model objects."""
    ctx = context or inventory_context(inventory)
    out: list[NetworkPolicy] = []
    for path, docs in policy_documents(paths):
        for where, obj in docs:
            if obj.get("kind") == CLUSTER_KIND:
                raise PolicyError(path, where, "ClusterNetworkPolicy tiers are checked by generate's self-check; "
                                               "diff and explain read NetworkPolicy and Cilium policies")
        cilium = [obj for _, obj in docs if obj.get("kind") in CILIUM_KINDS]
        if cilium:
            out.extend(parse_cilium(cilium, ctx, path))
    return out
