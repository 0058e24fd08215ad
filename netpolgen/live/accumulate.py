"""The state a stream keeps: edges with their evidence, and a digest of endpoint metadata.

Records are dropped once they are folded in: a segment is read, resolved and aggregated into
partial edges, and those merge into the accumulated edge table by edge key (counts summed,
first seen the minimum, last seen the maximum, names united), which is why the order records
arrive in does not matter. Memory depends on distinct edges and endpoint descriptions, not on
how long the stream runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from netpolgen.aggregate import aggregate_edges, combine_edges
from netpolgen.errors import SourceError
from netpolgen.flows import SkippedRecords, concat_flows, empty_flows
from netpolgen.inventory import Inventory
from netpolgen.live.segments import Segment
from netpolgen.resolve import RESOLVED_COLUMNS, ResolveReport, resolve_flows
from netpolgen.scaleout import metadata_digest
from netpolgen.sources.base import SourceOptions, SourceStats

_PARTS_PER_MERGE = 8
_PLACE = re.compile(r"^(line|record|packet) (\d+)")


@dataclass
class StreamSummary:
    """What the summary needs of a source (``path``, ``format_name``, ``stats``), for a whole
    stream: the stats of all its segments together."""

    path: str
    format_name: str = ""
    stats: SourceStats = field(default_factory=SourceStats)
    segments: int = 0


@dataclass
class EdgeAccumulator:
    inventory: Inventory | None  # the given inventory, if any
    options: SourceOptions
    name: str  # the stream's name in messages
    _edges: pd.DataFrame = field(default_factory=lambda: aggregate_edges(pd.DataFrame(columns=RESOLVED_COLUMNS)))
    _parts: list = field(default_factory=list)  # partial edges not merged yet
    digest: pd.DataFrame = field(default_factory=empty_flows)
    report: ResolveReport = field(default_factory=ResolveReport)
    summary: StreamSummary | None = None
    _ledger: object = None  # sources.fold.ConnectionLedger shared by the segments' readers

    def __post_init__(self) -> None:
        self.summary = StreamSummary(self.name)

    def add(self, segment: Segment, fmt: str) -> pd.DataFrame:
        """Read, resolve and fold in one segment; returns its resolved flows (``diff`` uses them)."""
        from netpolgen.k8snames import screen_names
        from netpolgen.pipeline import inventory_for
        from netpolgen.sources import source_class
        from netpolgen.sources.stdin import serving

        opts = SourceOptions(**{**self.options.__dict__, "workers": 0, "show_progress": False})
        src = source_class(fmt)(self.name, opts)
        if hasattr(src, "_ledger"):
            # Readers that fold records per connection (Hubble, VPC) remember each connection's
            # client side across their chunks; across segments too, or a reply whose request
            # came in an earlier segment would be oriented by the port rule alone.
            if self._ledger is None:
                self._ledger = src._ledger
            src._ledger = self._ledger
        with serving(self.name, segment.data):
            try:
                flows = concat_flows([screen_names(c, src.stats.skipped, self.name) for c in src.chunks()])
            except SourceError as e:
                raise _renumbered(e, segment) from e
        self._see(src.stats, fmt, segment)
        if (flows["src_namespace"] != "").any() or (flows["dst_namespace"] != "").any() or \
                (flows["src_pod"] != "").any() or (flows["dst_pod"] != "").any():
            self.digest = metadata_digest(concat_flows([self.digest, metadata_digest(flows)]))
        # Resolved with every endpoint seen so far, not only this segment's: a record that names
        # a peer by its identity alone is then attributed to the pod an earlier record named.
        inventory = self.current_inventory() if len(self.digest) else inventory_for(flows, self.inventory)
        res = resolve_flows(flows, inventory, since=self.options.since, until=self.options.until)
        self.report.merge(res.report)
        self.merge_edges(aggregate_edges(res.flows))
        return res.flows

    def merge_edges(self, part: pd.DataFrame) -> None:
        """Fold partial edges in. Parts wait in a short list and are merged a few at a time
        (or when the edges are read): a merge costs about the same for one part or eight."""
        if part.empty:
            return
        self._parts.append(part)
        if len(self._parts) >= _PARTS_PER_MERGE:
            self._merge_parts()

    @property
    def edges(self) -> pd.DataFrame:
        if self._parts:
            self._merge_parts()
        return self._edges

    def _merge_parts(self) -> None:
        parts, self._parts = self._parts, []
        if self._edges.empty and len(parts) == 1:
            self._edges = parts[0].reset_index(drop=True)
            return
        self._edges = combine_edges([self._edges, *parts])

    def current_inventory(self) -> Inventory:
        """The inventory as of now: the given one completed from every endpoint seen so far."""
        from netpolgen.pipeline import inventory_for

        return inventory_for(self.digest, self.inventory)

    def _see(self, stats: SourceStats, fmt: str, segment: Segment) -> None:
        total = self.summary.stats  # type: ignore[union-attr]
        self.summary.format_name = fmt  # type: ignore[union-attr]
        self.summary.segments += 1  # type: ignore[union-attr]
        total.records += stats.records
        total.bytes_read += len(segment.data)
        total.connections += stats.connections
        total.truncated = total.truncated or stats.truncated
        total.see_time(stats.first_seen, stats.last_seen)
        total.skipped.merge(_renumbered_skips(stats, segment))
        for note in stats.notes:
            if note not in total.notes and len(total.notes) < 50:
                total.notes.append(note)
        for k, v in stats.counters.items():
            total.count(k, v)


def _shift(where: str | None, segment: Segment) -> str | None:
    """A place in a segment ("line 3") as a place in the stream."""
    if not where:
        return where
    m = _PLACE.match(where)
    if not m:
        return where
    n = int(m.group(2)) - segment.prefix_records + segment.first_record
    return f"{m.group(1)} {n}{where[m.end():]}"


def _renumbered(e: SourceError, segment: Segment) -> SourceError:
    return SourceError(e.file, _shift(e.where, segment), e.what)


def _renumbered_skips(stats: SourceStats, segment: Segment) -> SkippedRecords:
    skipped = stats.skipped
    out = type(skipped)(counts=dict(skipped.counts))
    for example in skipped.examples:
        name, sep, rest = example.partition(": ")
        out.examples.append(f"{name}{sep}{_shift(rest, segment)}" if sep else example)
    return out


__all__ = ["EdgeAccumulator", "StreamSummary"]
