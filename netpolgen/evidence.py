"""Evidence: which observed edges each rule of a policy set admits, and what they add up to.

The policy engine decides, edge by edge, which rules admit it (``Engine.rule_rows``), so the
attribution holds for any policy set: the generated one, a merged one, or hand-written policies
read from a directory. Pure: policies (dicts) + the edge table (``netpolgen.aggregate`` schema)
in, plain frozen records out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from netpolgen.aggregate import EDGE_KEYS, usable
from netpolgen.inventory import Inventory
from netpolgen.policy.model import RuleRef
from netpolgen.timeparse import format_when


class EdgeEvidence(NamedTuple):
    """One observed edge: a client, a server, a protocol and port, and what was seen of it.
    (A named tuple: a run can hold tens of thousands, made on every generate.)"""

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
    """A rule and the edges it admits (indices into ``Evidence.edges``; none: unused). Its text
    is ``Evidence.rule_text(ref)``: made only when a report or a listing shows it."""

    ref: RuleRef
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
    # Per edge, whether the policy set allows it: asked of the engine only when a report or a
    # check reads it (annotations never do).
    verdicts: Callable[[], list[bool]] | None = field(default=None, repr=False)
    texts: Callable[[], dict[RuleRef, str]] | None = field(default=None, repr=False)
    _texts: dict[RuleRef, str] | None = field(default=None, repr=False)
    _admitted: list[bool] | None = field(default=None, repr=False)
    _by_policy: dict[str, list[RuleEvidence]] | None = field(default=None, repr=False)
    _numbers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def admitted(self) -> list[bool]:
        if self._admitted is None:
            self._admitted = self.verdicts() if self.verdicts is not None else []
        return self._admitted

    def rule_text(self, ref: RuleRef) -> str:
        if self._texts is None:
            self._texts = self.texts() if self.texts is not None else {}
        return self._texts.get(ref, "")

    def connections(self, edge_ids: tuple[int, ...] | list[int]) -> int:
        """The connections of some edges (``tally(...).connections``, without the rest)."""
        if not len(edge_ids):
            return 0
        return int(self._arrays()[0][np.asarray(edge_ids, dtype=np.int64)].sum())

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._numbers is None:  # counts and times as arrays: one policy's rules sum in numpy
            e = self.edges
            self._numbers = (
                np.array([x.connections for x in e], dtype=np.int64), np.array([x.packets for x in e], dtype=np.int64),
                np.array([x.bytes for x in e], dtype=np.int64),
                np.array([np.nan if x.first_seen is None else x.first_seen for x in e], dtype=np.float64),
                np.array([np.nan if x.last_seen is None else x.last_seen for x in e], dtype=np.float64),
            )
        return self._numbers

    def tally(self, edge_ids: tuple[int, ...] | list[int]) -> Tally:
        if self.files_known:
            return tally([self.edges[i] for i in edge_ids])
        if not len(edge_ids):
            return Tally()
        ix = np.asarray(edge_ids, dtype=np.int64)
        conn, packets, nbytes, first, last = (a[ix] for a in self._arrays())
        f, la = first[~np.isnan(first)], last[~np.isnan(last)]
        return Tally(len(ix), int(conn.sum()), int(packets.sum()), int(nbytes.sum()),
                     float(f.min()) if len(f) else None, float(la.max()) if len(la) else None)

    def of_policy(self, key: str) -> list[RuleEvidence]:
        if self._by_policy is None:
            self._by_policy = {}
            for r in self.rules:
                self._by_policy.setdefault(r.ref.policy, []).append(r)
        return self._by_policy.get(key, [])

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
    return format_when(ts)


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
    n = len(edges)
    names = edges["dst_names"].to_numpy(dtype=object) if "dst_names" in edges else np.full(n, "", dtype=object)
    cols = [edges[c].to_numpy(dtype=object) for c in
            ("src_kind", "src_namespace", "src_workload", "dst_kind", "dst_namespace", "dst_workload", "proto",
             "src_pod", "dst_pod")]
    ports = edges["dst_port"].to_numpy(dtype=np.int64).tolist()
    counts = [edges[c].to_numpy(dtype=np.int64).tolist() for c in ("connections", "packets", "bytes")]
    times = [[None if math.isnan(t) else t for t in edges[c].to_numpy(dtype=np.float64).tolist()]
             for c in ("first_seen", "last_seen")]
    out = []
    for i, (sk, sns, sw, dk, dns, dw, proto, sp, dp) in enumerate(zip(*cols, strict=True)):
        port = ports[i]
        out.append(EdgeEvidence(
            str(sk), str(sw), str(dk), str(dw), str(proto), port, counts[0][i], counts[1][i], counts[2][i],
            times[0][i], times[1][i],
            str(sp or sw) if sk == "pod" else str(sw), str(dp or dw) if dk == "pod" else str(dw),
            str(names[i] or ""), files.get((sk, sns, sw, dk, dns, dw, proto, port), ()) if files else (),
        ))
    return out


def _query(edges: pd.DataFrame) -> pd.DataFrame:
    """The engine's question per edge: a representative pod per side, or the address (as the
    self-check asks it)."""
    col = {c: edges[c].to_numpy(dtype=object) for c in ("src_kind", "src_pod", "src_workload", "dst_kind", "dst_pod", "dst_workload")}
    src_pod, dst_pod = col["src_kind"] == "pod", col["dst_kind"] == "pod"
    return pd.DataFrame({
        "src_pod": np.where(src_pod, col["src_pod"], ""), "src_ip": np.where(src_pod, "", col["src_workload"]),
        "dst_pod": np.where(dst_pod, col["dst_pod"], ""), "dst_ip": np.where(dst_pod, "", col["dst_workload"]),
        "dst_port": edges["dst_port"].to_numpy(),
        "proto": edges["proto"].to_numpy(dtype=object),
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
    from netpolgen.window import TimeWindow

    return TimeWindow(*bounds).clip(min(f), max(la))


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
    query = _query(edges)
    hits: dict[RuleRef, np.ndarray] = engine.rule_rows(query) if len(edges) else {}
    rules = []
    for ref, _ in engine.rules():  # every rule that counts: ingress ones, then egress, each in policy order
        rows = hits.get(ref)
        rules.append(RuleEvidence(ref, tuple(rows.tolist()) if rows is not None else ()))
    def verdicts() -> list[bool]:
        return engine.evaluate_flows(query)["allowed"].tolist() if len(edges) else []

    return Evidence(records, rules, observation_window(sources or [], records, bounds), files is not None, verdicts,
                    engine.rule_text)
