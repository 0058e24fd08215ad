"""The self-check: the rendered policies evaluated by the policy engine against every observed
edge they cover. Every output kind is checked: a set of another kind than NetworkPolicy
(``SynthesisResult.policy_sets``) on its own, by the engine for its kinds (``policy.kinds``, which
refuses a kind it cannot evaluate), with what Cilium would resolve at run time taken from the
observed traffic (``cilium_context``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from netpolgen.flows import host_cidr
from netpolgen.inventory import Inventory
from netpolgen.policy.cilium import CiliumContext
from netpolgen.resolve import KIND_NODE, KIND_POD
from netpolgen.synthesize import SynthesisResult


def cilium_context(edges: pd.DataFrame, inventory: Inventory, entities: Mapping[str, set[str]]) -> CiliumContext:
    """Names → addresses from the names the flows carried for outside destinations; entity →
    addresses from the Hubble identities, and every node address the edges show for both node
    entities when no identity said which (as the renderer writes them, ``peers.NODE_ENTITIES``)."""
    from netpolgen.cidrs import cluster_addresses
    from netpolgen.model import PolicyModel
    from netpolgen.peers import NODE_ENTITIES

    names: dict[str, set[str]] = {}
    by_entity: dict[str, set[str]] = {}
    for kind, addr, text in zip(edges["dst_kind"], edges["dst_workload"], edges["dst_names"], strict=True):
        if kind != KIND_POD and text:
            for n in str(text).split(","):
                if n.strip():
                    names.setdefault(n.strip().rstrip(".").lower(), set()).add(str(addr))
    for col_kind, col_wl in (("src_kind", "src_workload"), ("dst_kind", "dst_workload")):
        for kind, addr in zip(edges[col_kind], edges[col_wl], strict=True):
            if kind == KIND_NODE:
                for e in entities.get(str(addr)) or NODE_ENTITIES:
                    by_entity.setdefault(e, set()).add(str(addr))
    ranges = tuple(str(n) for n in cluster_addresses(inventory, PolicyModel((), ())))
    ranges += tuple(host_cidr(a) for addrs in by_entity.values() for a in addrs)
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
    from netpolgen.policy.kinds import policy_engine

    context = cilium_context(edges, inventory, entities)
    sets: dict[str, list[Mapping[str, Any]]] = synthesis.policy_sets  # type: ignore[attr-defined]
    denied: list[str] = []
    for kind, docs in sets.items():
        engine = policy_engine(inventory, docs, context)
        result = check(engine, f"[{kind}] " if len(sets) > 1 else "")
        denied.extend(result.denied)  # type: ignore[attr-defined]
    return SelfCheck(checked=len(rows), denied=sorted(denied), observed=len(edges))


@dataclass
class SelfCheck:
    """The generated policies evaluated by the engine against the traffic they came from.

    A connection here is an edge: one client workload (or address) to one server on one
    protocol and port, however many flows stand for it."""

    checked: int = 0  # observed connections touching a namespace the output covers
    denied: list[str] = field(default_factory=list)  # those the output denies: "src -> dst PROTO/port: why"
    unavailable: str = ""
    observed: int = 0  # every observed connection, covered or not

    @property
    def allowed(self) -> int:
        return self.checked - len(self.denied)

    @property
    def failed(self) -> bool:
        return bool(self.denied)


def self_check(edges: pd.DataFrame, inventory: Inventory, synthesis: SynthesisResult) -> SelfCheck:
    """Evaluate the generated policies with the engine over every observed edge that touches a
    namespace they cover: each must be allowed (anything else is a bug, or a workload the
    summary already says could not be selected). An edge stands for all its connections: its
    workloads' pods are selected alike, so one representative pod per side decides. Each policy
    set of another kind (``synthesis.policy_sets``) is checked on its own; its lines say which."""
    from netpolgen.policy import Engine, parse_policies

    covered = set(synthesis.namespaces)
    rows = edges[edges["src_namespace"].isin(covered) | edges["dst_namespace"].isin(covered)]
    if rows.empty:
        return SelfCheck(observed=len(edges))
    if synthesis.policy_sets:
        return check_policy_sets(rows, edges, inventory, synthesis, synthesis.entities,
                                 lambda engine, tag: _check_rows(rows, engine, synthesis, tag))  # type: ignore[return-value]
    engine = Engine(inventory, parse_policies(synthesis.policies))
    return _check_rows(rows, engine, synthesis, "", len(edges))


def _check_rows(rows: pd.DataFrame, engine: object, synthesis: SynthesisResult, tag: str,
                observed: int = 0) -> SelfCheck:
    """The edges ``rows`` asked of ``engine`` (anything with ``evaluate_flows``)."""
    query = pd.DataFrame({
        "src_pod": rows["src_pod"].to_numpy(),
        "src_ip": [w if k != "pod" else "" for k, w in zip(rows["src_kind"], rows["src_workload"], strict=True)],
        "dst_pod": rows["dst_pod"].to_numpy(),
        "dst_ip": [w if k != "pod" else "" for k, w in zip(rows["dst_kind"], rows["dst_workload"], strict=True)],
        "dst_port": rows["dst_port"].to_numpy(),
        "proto": rows["proto"].to_numpy(),
    })
    verdicts = engine.evaluate_flows(query).reset_index(drop=True)  # type: ignore[attr-defined]
    denied_mask = ~verdicts["allowed"].to_numpy(dtype=bool)
    denied = rows.reset_index(drop=True)[denied_mask]
    problems = _unselectable(synthesis)
    lines = sorted(
        f"{tag}{r.src_workload} -> {r.dst_workload} {r.proto}/{r.dst_port}: {_why_denied(r, v, problems)}"
        for r, v in zip(denied.itertuples(index=False), verdicts[denied_mask].itertuples(index=False), strict=True)
    )
    return SelfCheck(checked=len(rows), denied=lines, observed=observed)


def _unselectable(synthesis: SynthesisResult) -> dict[str, str]:
    """workload text -> the reason synthesis gave for not selecting it."""
    out: dict[str, str] = {}
    for problem in synthesis.problems:
        for token in problem.replace(",", " ").split():
            token = token.rstrip(":")
            if "/" in token and token.endswith("]"):
                out.setdefault(token, problem)
    return out


def _why_denied(edge: object, verdict: object, problems: dict[str, str]) -> str:
    """Which side's policies deny the connection, and the synthesis problem behind it if any."""
    sides = []
    if not verdict.egress_allowed:  # type: ignore[attr-defined]
        sides.append(f"egress of the client denied by {verdict.egress_policies or 'its isolation'}")  # type: ignore[attr-defined]
    if not verdict.ingress_allowed:  # type: ignore[attr-defined]
        sides.append(f"ingress of the server denied by {verdict.ingress_policies or 'its isolation'}")  # type: ignore[attr-defined]
    for wl in (edge.src_workload, edge.dst_workload):  # type: ignore[attr-defined]
        if wl in problems:
            sides.append(f"no rule could name {wl} ({problems[wl]})")
    return "; ".join(sides) or "denied"
