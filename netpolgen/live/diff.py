"""``diff`` over a stream: would-be-denied connections reported as they appear.

Each segment's resolved rows are evaluated against the existing policies; a denied connection
(client workload, server workload, protocol, port) is printed once, the first time it is seen.
The rows are kept only in compact form (one per distinct pod or address pair, port and
verdict, with summed counts), so the full report at the end costs memory by distinct
endpoints, not by stream length.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np
import pandas as pd

from netpolgen.inventory import Inventory
from netpolgen.live.accumulate import EdgeAccumulator
from netpolgen.live.run import StreamLoop

_KEYS = ["src_kind", "src_namespace", "src_workload", "src_pod", "src_ip",
         "dst_kind", "dst_namespace", "dst_workload", "dst_pod", "dst_ip", "proto", "dst_port", "verdict"]
_SUMS = ["connections", "packets", "bytes"]


def compact_rows(flows: pd.DataFrame) -> pd.DataFrame:
    """Resolved rows folded to one per distinct ends, port and verdict, counts summed."""
    if flows.empty:
        return pd.DataFrame(columns=_KEYS + _SUMS)
    df = flows[_KEYS + _SUMS].copy()
    for col in _KEYS:
        if df[col].dtype == object:
            df[col] = df[col].fillna("")
    return df.groupby(_KEYS, sort=False, dropna=False)[_SUMS].sum().reset_index()


@dataclass
class DeniedWatcher:
    """Prints each would-be-denied connection once; keeps the compact rows for the report."""

    policies: list
    given_inventory: Inventory | None
    out: TextIO = sys.stdout
    seen: set = field(default_factory=set)
    rows: pd.DataFrame | None = None
    _engine: object = None

    def on_segment(self, flows: pd.DataFrame, acc: EdgeAccumulator) -> None:
        from netpolgen.diff import EVALUATED_KINDS, _denied_groups
        from netpolgen.policy import Engine

        part = compact_rows(flows)
        self.rows = part if self.rows is None or self.rows.empty else \
            compact_rows(pd.concat([self.rows, part], ignore_index=True))
        use = part[part["src_kind"].isin(EVALUATED_KINDS) & part["dst_kind"].isin(EVALUATED_KINDS)
                   & (part["verdict"].astype(str) != "denied")].reset_index(drop=True)
        if use.empty:
            return
        # With a given inventory the engine is compiled once; an inventory grown from the flows
        # changes with every segment that names a new endpoint.
        if self._engine is None or self.given_inventory is None:
            self._engine = Engine(acc.current_inventory() if self.given_inventory is None else self.given_inventory,
                                  self.policies)
        verdicts = self._engine.evaluate_flows(use[["src_pod", "src_ip", "dst_pod", "dst_ip", "dst_port", "proto"]])  # type: ignore[attr-defined]
        mask = ~verdicts["allowed"].to_numpy(dtype=bool)
        weights = pd.to_numeric(use["connections"], errors="coerce").fillna(1).to_numpy(dtype=np.int64)
        for g in _denied_groups(use, verdicts, weights, mask):
            key = (g.src, g.dst, g.proto, g.port)
            if key in self.seen:
                continue
            self.seen.add(key)
            self.out.write(f"DENIED {g.src} -> {g.dst} {g.proto}/{g.port}: denied at {g.directions} by "
                           f"{', '.join(g.policies) or '-'}; e.g. {g.example}\n")
            self.out.flush()


def diff_stream(arg: str, inventory: Inventory | None, policies: list, fmt: str | None, options: object,
                follow: bool = False, out: TextIO = sys.stdout) -> tuple[DeniedWatcher, EdgeAccumulator]:
    """Read the stream to its end (or a signal), printing denied connections as they appear.
    Returns the watcher (its compact rows and what it printed) and the accumulator."""
    watcher = DeniedWatcher(policies, inventory, out)
    # diff writes no files: the timer only cuts what arrived, once a second, to report it soon
    loop = StreamLoop(arg, fmt, options, inventory, every=1.0, follow=follow,  # type: ignore[arg-type]
                      on_segment=watcher.on_segment)
    acc = loop.run()
    return watcher, acc


__all__ = ["DeniedWatcher", "compact_rows", "diff_stream"]


def stream_diff(sources: list[str], inventory: Inventory | None, policies: list, fmt: str | None,
                options: object, out: TextIO = sys.stdout) -> tuple[pd.DataFrame, Inventory]:
    """The command line's checks, then ``diff_stream``; returns the compact rows and the
    inventory as of the end, for the full report."""
    from netpolgen.errors import UsageError
    from netpolgen.resolve import RESOLVED_COLUMNS

    if len(sources) != 1:
        raise UsageError(None, "SOURCE", "a stream (-) is read alone: give it as the only source")
    watcher, acc = diff_stream(sources[0], inventory, policies, fmt, options, out=out)
    rows = watcher.rows if watcher.rows is not None else pd.DataFrame(columns=_KEYS + _SUMS)
    for col in RESOLVED_COLUMNS:  # what the report reads and the compact rows do not keep
        if col not in rows.columns:
            rows[col] = ""
    return rows, acc.current_inventory()
