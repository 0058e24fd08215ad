"""Evidence: which observed edges each rule of a policy set admits, and what they add up to.

The policy engine decides, edge by edge, which rules admit it (``Engine.rule_rows``), so the
attribution holds for any policy set: the generated one, a merged one, or hand-written policies
read from a directory. Pure: policies (dicts) + the edge table (``netpolgen.aggregate`` schema)
in, plain frozen records out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from netpolgen.aggregate import EDGE_KEYS, usable
from netpolgen.inventory import Inventory
from netpolgen.policy.model import RuleRef


@dataclass(frozen=True)
class EdgeEvidence:
    """One observed edge: a client, a server, a protocol and port, and what was seen of it."""

    src_kind: str
    src: str  # workload text (``ns/name[Kind]``) or the address
    dst_kind: str
    dst: str
    proto: str
    port: int
    connections: int
    packets: int
    bytes: int
    first_seen: float | None
    last_seen: float | None
    example_src: str  # a pod key or the address
    example_dst: str
    dst_names: str = ""
    files: tuple[str, ...] = ()

    @property
    def src_namespace(self) -> str:
        return self.src.partition("/")[0] if self.src_kind == "pod" else ""

    @property
    def dst_namespace(self) -> str:
        return self.dst.partition("/")[0] if self.dst_kind == "pod" else ""


@dataclass(frozen=True)
class RuleEvidence:
    """A rule and the edges it admits (indices into ``Evidence.edges``; none: unused)."""

    ref: RuleRef
    text: str
    edges: tuple[int, ...]


@dataclass(frozen=True)
class Tally:
    """Counts over a set of edges."""

    edges: int = 0
    connections: int = 0
    packets: int = 0
    bytes: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    files: tuple[str, ...] = ()


@dataclass
class Evidence:
    edges: list[EdgeEvidence]
    rules: list[RuleEvidence]  # every rule of the policy set, in policy order
    window: tuple[float, float] | None  # the observation window (first, last seen)
    files_known: bool = False  # edges carry their input files (the in-process engine kept rows)
    admitted: list[bool] = field(default_factory=list)  # per edge: the policy set allows it

    def tally(self, edge_ids: tuple[int, ...] | list[int]) -> Tally:
        return tally([self.edges[i] for i in edge_ids])

    def of_policy(self, key: str) -> list[RuleEvidence]:
        return [r for r in self.rules if r.ref.policy == key]

    def policy_edges(self, key: str) -> list[int]:
        return sorted({i for r in self.of_policy(key) for i in r.edges})


def tally(edges: list[EdgeEvidence]) -> Tally:
    firsts = [e.first_seen for e in edges if e.first_seen is not None]
    lasts = [e.last_seen for e in edges if e.last_seen is not None]
    return Tally(
        edges=len(edges),
        connections=sum(e.connections for e in edges),
        packets=sum(e.packets for e in edges),
        bytes=sum(e.bytes for e in edges),
        first_seen=min(firsts) if firsts else None,
        last_seen=max(lasts) if lasts else None,
        files=tuple(sorted({f for e in edges for f in e.files})),
    )


def when(ts: float | None) -> str:
    """Unix seconds as ISO 8601 UTC to the second (``?`` when unknown)."""
    if ts is None:
        return "?"
    return datetime.fromtimestamp(math.floor(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def edge_files(resolved_flows: pd.DataFrame) -> dict[tuple, tuple[str, ...]]:
    """Per edge key (``aggregate.EDGE_KEYS``), the input files its rows came from."""
    rows = usable(resolved_flows, EDGE_KEYS + ["source"]).drop_duplicates()
    out: dict[tuple, set[str]] = {}
    for *key, source in rows.itertuples(index=False, name=None):
        key[-1] = int(key[-1])  # dst_port
        out.setdefault(tuple(key), set()).add(str(source))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def edge_evidence(edges: pd.DataFrame, files: dict[tuple, tuple[str, ...]] | None = None) -> list[EdgeEvidence]:
    """The edge table as records, in its (sorted) order."""
    out = []
    for r in edges.itertuples(index=False):
        key = tuple(getattr(r, k) for k in EDGE_KEYS[:-1]) + (int(r.dst_port),)
        out.append(EdgeEvidence(
            src_kind=str(r.src_kind), src=str(r.src_workload), dst_kind=str(r.dst_kind), dst=str(r.dst_workload),
            proto=str(r.proto), port=int(r.dst_port), connections=int(r.connections), packets=int(r.packets),
            bytes=int(r.bytes), first_seen=_time(r.first_seen), last_seen=_time(r.last_seen),
            example_src=str(r.src_pod or r.src_workload) if r.src_kind == "pod" else str(r.src_workload),
            example_dst=str(r.dst_pod or r.dst_workload) if r.dst_kind == "pod" else str(r.dst_workload),
            dst_names=str(getattr(r, "dst_names", "") or ""),
            files=(files or {}).get(key, ()),
        ))
    return out


def _query(edges: pd.DataFrame) -> pd.DataFrame:
    """The engine's question per edge: a representative pod per side, or the address (as the
    self-check asks it)."""
    return pd.DataFrame({
        "src_pod": [p if k == "pod" else "" for k, p in zip(edges["src_kind"], edges["src_pod"])],
        "src_ip": [w if k != "pod" else "" for k, w in zip(edges["src_kind"], edges["src_workload"])],
        "dst_pod": [p if k == "pod" else "" for k, p in zip(edges["dst_kind"], edges["dst_pod"])],
        "dst_ip": [w if k != "pod" else "" for k, w in zip(edges["dst_kind"], edges["dst_workload"])],
        "dst_port": edges["dst_port"].to_numpy(),
        "proto": edges["proto"].to_numpy(),
    })


def observation_window(sources: list, edges: list[EdgeEvidence],
                       bounds: tuple[float | None, float | None] = (None, None)) -> tuple[float, float] | None:
    """First and last time anything was read: the sources' own span where they know it (a
    window of observation, not only of what became rules), else the edges'; cut to ``bounds``
    (``--since``/``--until``)."""
    firsts = [_time(getattr(s.stats, "first_seen", None)) for s in sources if getattr(s, "stats", None) is not None]
    lasts = [_time(getattr(s.stats, "last_seen", None)) for s in sources if getattr(s, "stats", None) is not None]
    firsts += [e.first_seen for e in edges]
    lasts += [e.last_seen for e in edges]
    f = [x for x in firsts if x is not None]
    la = [x for x in lasts if x is not None]
    if not f or not la:
        return None
    lo, hi = min(f), max(la)
    if bounds[0] is not None:
        lo = max(lo, bounds[0])
    if bounds[1] is not None:
        hi = min(hi, bounds[1])
    return (lo, max(lo, hi))


def gather_evidence(
    policies: list[dict],
    edges: pd.DataFrame,
    inventory: Inventory,
    sources: list | None = None,
    resolved_flows: pd.DataFrame | None = None,
    bounds: tuple[float | None, float | None] = (None, None),
) -> Evidence:
    """Evidence of every rule of ``policies`` over the observed ``edges``. With
    ``resolved_flows`` (the in-process engine keeps them), each edge also names its input files."""
    from netpolgen.policy import Engine, parse_policies

    files = edge_files(resolved_flows) if resolved_flows is not None and len(resolved_flows) else None
    records = edge_evidence(edges, files)
    engine = Engine(inventory, parse_policies(policies))
    hits: dict[RuleRef, np.ndarray] = engine.rule_rows(_query(edges)) if len(edges) else {}
    allowed = engine.evaluate_flows(_query(edges))["allowed"].tolist() if len(edges) else []
    texts = engine.rule_text()
    rules = []
    for pol in engine.policies:
        for direction_rules in (pol.rules("ingress"), pol.rules("egress")):
            for rule in direction_rules:
                ref = pol.ref(rule)
                rows = hits.get(ref)
                rules.append(RuleEvidence(ref, texts.get(ref, rule.describe()),
                                          tuple(int(i) for i in rows) if rows is not None else ()))
    return Evidence(records, rules, observation_window(sources or [], records, bounds), files is not None,
                    [bool(a) for a in allowed])
