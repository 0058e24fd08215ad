"""Sets of connections: per protocol, a canonical set of port ranges.

A ``ConnSet`` is what a policy allows between two peers at workload level ("TCP 8080,9090,UDP
53"). It is immutable and canonical (sorted, merged ranges; empty protocols dropped), so two
sets that allow the same traffic compare equal, hash equal and print the same.

The text form is np-guard netpol-analyzer's, so whole connectivity lists can be compared line by
line with its expected outputs: ``All Connections``, ``No Connections``, or protocol groups
sorted as text (``SCTP ...`` < ``TCP ...`` < ``UDP ...``) with ranges ``a-b`` or single ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

PORT_MIN = 1
PORT_MAX = 65535
PROTOCOLS = ("TCP", "UDP", "SCTP")  # what NetworkPolicy ports can name

Ranges = tuple[tuple[int, int], ...]


def _canonical(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and merge overlapping or touching ranges, clipped to the port space."""
    out: list[list[int]] = []
    for start, end in sorted((max(s, PORT_MIN), min(e, PORT_MAX)) for s, e in ranges):
        if start > end:
            continue
        if out and start <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple((s, e) for s, e in out)


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start <= end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _subtract(a: Ranges, b: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    for start, end in a:
        cur = start
        for bs, be in b:
            if be < cur or bs > end:
                continue
            if bs > cur:
                out.append((cur, bs - 1))
            cur = max(cur, be + 1)
            if cur > end:
                break
        if cur <= end:
            out.append((cur, end))
    return tuple(out)


FULL: Ranges = ((PORT_MIN, PORT_MAX),)


@dataclass(frozen=True)
class ConnSet:
    """Allowed (protocol, port) pairs. Build with the class methods, not the constructor."""

    by_proto: tuple[tuple[str, Ranges], ...] = ()

    # ----- construction -----------------------------------------------------------------------

    @classmethod
    def none(cls) -> "ConnSet":
        return cls()

    @classmethod
    def all(cls) -> "ConnSet":
        return cls.from_mapping({p: FULL for p in PROTOCOLS})

    @classmethod
    def of(cls, proto: str, start: int = PORT_MIN, end: int | None = None) -> "ConnSet":
        """One protocol, one port range (all of the protocol's ports by default)."""
        if end is None:
            end = PORT_MAX if start == PORT_MIN else start
        return cls.from_mapping({proto: ((start, end),)})

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Iterable[tuple[int, int]]]) -> "ConnSet":
        items = []
        for proto in sorted(mapping):
            ranges = _canonical(mapping[proto])
            if ranges:
                items.append((proto, ranges))
        return cls(tuple(items))

    @classmethod
    def from_spans(cls, spans: Iterable[tuple[str, int, int]]) -> "ConnSet":
        """The union of (protocol, start, end) ranges, canonicalised once rather than pairwise."""
        mapping: dict[str, list[tuple[int, int]]] = {}
        for proto, start, end in spans:
            mapping.setdefault(proto, []).append((start, end))
        return cls.from_mapping(mapping)

    # ----- queries -----------------------------------------------------------------------------

    def ranges(self, proto: str) -> Ranges:
        for p, r in self.by_proto:
            if p == proto:
                return r
        return ()

    @property
    def is_empty(self) -> bool:
        return not self.by_proto

    @property
    def is_all(self) -> bool:
        return all(self.ranges(p) == FULL for p in PROTOCOLS)

    def contains(self, proto: str, port: int) -> bool:
        return any(s <= port <= e for s, e in self.ranges(proto))

    def _as_dict(self) -> dict[str, Ranges]:
        return dict(self.by_proto)

    # ----- algebra -----------------------------------------------------------------------------

    def union(self, other: "ConnSet") -> "ConnSet":
        if other.is_empty:
            return self
        if self.is_empty:
            return other
        merged: dict[str, list[tuple[int, int]]] = {}
        for p, r in self.by_proto + other.by_proto:
            merged.setdefault(p, []).extend(r)
        return ConnSet.from_mapping(merged)

    def intersection(self, other: "ConnSet") -> "ConnSet":
        b = other._as_dict()
        return ConnSet.from_mapping({p: _intersect(r, b[p]) for p, r in self.by_proto if p in b})

    def subtract(self, other: "ConnSet") -> "ConnSet":
        b = other._as_dict()
        return ConnSet.from_mapping({p: _subtract(r, b.get(p, ())) for p, r in self.by_proto})

    __or__ = union
    __and__ = intersection
    __sub__ = subtract

    # ----- text --------------------------------------------------------------------------------

    def __str__(self) -> str:
        if self.is_empty:
            return "No Connections"
        if self.is_all:
            return "All Connections"
        parts = []
        for proto, ranges in self.by_proto:
            ports = ",".join(str(s) if s == e else f"{s}-{e}" for s, e in ranges)
            parts.append(f"{proto} {ports}")
        return ",".join(sorted(parts))

    def to_json(self) -> dict[str, list[list[int]]] | str:
        """``"all"`` or ``{"TCP": [[8080, 8080]], ...}`` (ranges inclusive)."""
        if self.is_all:
            return "all"
        return {p: [list(r) for r in ranges] for p, ranges in self.by_proto}


def parse_conn_text(text: str) -> ConnSet:
    """Inverse of ``str(ConnSet)``: reads np-guard's connection column (for tests and golden
    files). Raises ValueError on anything else."""
    text = text.strip()
    if text == "All Connections":
        return ConnSet.all()
    if text == "No Connections":
        return ConnSet.none()
    mapping: dict[str, list[tuple[int, int]]] = {}
    proto = None
    for item in text.split(","):
        item = item.strip()
        head, _, rest = item.partition(" ")
        if head in PROTOCOLS and rest:
            proto, item = head, rest
        if proto is None:
            raise ValueError(f"no protocol before {item!r} in {text!r}")
        start, _, end = item.partition("-")
        mapping.setdefault(proto, []).append((int(start), int(end or start)))
    return ConnSet.from_mapping(mapping)
