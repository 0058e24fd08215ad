"""One engine for a policy set of any kind netpolgen writes: NetworkPolicies parsed as they are,
Cilium documents translated into the same model (``policy.cilium``), ClusterNetworkPolicy tiers
around the result (``policy.clusternetwork``). A kind none of them knows is refused: a
self-check that skipped documents would pass what it never evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netpolgen.errors import PolicyError
from netpolgen.inventory import Inventory
from netpolgen.policy.cilium import KINDS as CILIUM_KINDS
from netpolgen.policy.cilium import CiliumContext, parse_cilium
from netpolgen.policy.clusternetwork import KIND as CLUSTER_KIND
from netpolgen.policy.clusternetwork import TieredEngine, parse_cluster_network_policies
from netpolgen.policy.engine import Engine
from netpolgen.policy.parse import parse_policies

EVALUATED_KINDS = ("NetworkPolicy", *CILIUM_KINDS, CLUSTER_KIND)


def policy_engine(inventory: Inventory, docs: list[Mapping[str, Any]], context: CiliumContext | None = None,
                  file: str | None = None) -> Any:
    """An engine (``evaluate_flows``) over every document of ``docs``; PolicyError for a kind it
    cannot evaluate."""
    for i, d in enumerate(docs, start=1):
        kind = d.get("kind") if isinstance(d, Mapping) else None
        if kind not in EVALUATED_KINDS:
            raise PolicyError(file, f"object {i}", f"cannot self-check kind {kind!r}: the engine evaluates "
                                                   f"{', '.join(EVALUATED_KINDS)}")
    ctx = context or CiliumContext()
    policies = parse_policies([d for d in docs if d.get("kind") == "NetworkPolicy"], file)
    policies += parse_cilium(docs, ctx, file)
    engine = Engine(inventory, policies)
    tiered = parse_cluster_network_policies(docs, file)
    return TieredEngine(inventory, tiered, engine) if tiered else engine
