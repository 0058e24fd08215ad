"""The self-check of policy sets of other kinds than NetworkPolicy (``SynthesisResult.policy_sets``):
each set evaluated on its own by the engine for its kinds (``policy.kinds``), with what Cilium
would resolve at run time taken from the observed traffic (``cilium_context``).
"""

from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd

from netpolgen.inventory import Inventory
from netpolgen.policy.cilium import CiliumContext
from netpolgen.resolve import KIND_NODE, KIND_POD


def cilium_context(edges: pd.DataFrame, inventory: Inventory, entities: Mapping[str, set[str]]) -> CiliumContext:
    """Names → addresses from the names the flows carried for outside destinations; entity →
    addresses from the Hubble identities, and every node address the edges show for both node
    entities when no identity said which (as the renderer writes them, ``peers.NODE_ENTITIES``)."""
    from netpolgen.cidrs import cluster_addresses
    from netpolgen.model import PolicyModel
    from netpolgen.peers import NODE_ENTITIES

    names: dict[str, set[str]] = {}
    by_entity: dict[str, set[str]] = {}
    for kind, addr, text in zip(edges["dst_kind"], edges["dst_workload"], edges["dst_names"]):
        if kind != KIND_POD and text:
            for n in str(text).split(","):
                if n.strip():
                    names.setdefault(n.strip().rstrip(".").lower(), set()).add(str(addr))
    for col_kind, col_wl in (("src_kind", "src_workload"), ("dst_kind", "dst_workload")):
        for kind, addr in zip(edges[col_kind], edges[col_wl]):
            if kind == KIND_NODE:
                for e in entities.get(str(addr)) or NODE_ENTITIES:
                    by_entity.setdefault(e, set()).add(str(addr))
    ranges = tuple(str(n) for n in cluster_addresses(inventory, PolicyModel((), ())))
    ranges += tuple(f"{a}/{128 if ':' in a else 32}" for addrs in by_entity.values() for a in addrs)
    spaces = tuple(sorted({str(ns) for ns in pd.concat([edges["src_namespace"], edges["dst_namespace"]]) if ns}
                          | set(getattr(inventory, "namespaces", {}) or ())))
    return CiliumContext(
        names={k: frozenset(v) for k, v in names.items()},
        entities={k: frozenset(v) for k, v in by_entity.items()},
        namespaces=spaces,
        cluster_ranges=tuple(sorted(set(ranges))),
    )


def check_policy_sets(rows: pd.DataFrame, edges: pd.DataFrame, inventory: Inventory, synthesis: object,
                      entities: Mapping[str, set[str]], check: Callable[[object, str], object]) -> object:
    """One SelfCheck over every set: checked counts each set's questions once (they are the same
    edges), denied lists each set's denials tagged ``[<kind>]`` when there are several sets."""
    from netpolgen.pipeline import SelfCheck
    from netpolgen.policy.kinds import policy_engine

    context = cilium_context(edges, inventory, entities)
    sets: dict[str, list[dict]] = synthesis.policy_sets  # type: ignore[attr-defined]
    denied: list[str] = []
    for kind, docs in sets.items():
        engine = policy_engine(inventory, docs, context)
        result = check(engine, f"[{kind}] " if len(sets) > 1 else "")
        denied.extend(result.denied)  # type: ignore[attr-defined]
    return SelfCheck(checked=len(rows), denied=sorted(denied), observed=len(edges))
