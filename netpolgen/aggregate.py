"""Aggregation: resolved connections → edges, one per (client, server, protocol, port).

A client or server is a workload (pods) or an address (node and external peers). Denied and
unresolved rows are not edges: they are reported, never allowed.
"""

from __future__ import annotations

import pandas as pd

from netpolgen.flows import VERDICT_DENIED
from netpolgen.resolve import KIND_UNRESOLVED

EDGE_KEYS = [
    "src_kind", "src_namespace", "src_workload",
    "dst_kind", "dst_namespace", "dst_workload",
    "proto", "dst_port",
]
EDGE_COLUMNS = EDGE_KEYS + [
    "connections", "packets", "bytes", "first_seen", "last_seen", "src_pod", "dst_pod", "dst_names",
    "is_dns",
]
DNS_PORT = 53


def usable(resolved: pd.DataFrame) -> pd.DataFrame:
    """The rows that may become rules: both ends resolved and not denied by the source."""
    mask = (
        (resolved["src_kind"] != KIND_UNRESOLVED)
        & (resolved["dst_kind"] != KIND_UNRESOLVED)
        & (resolved["verdict"] != VERDICT_DENIED)
    )
    return resolved[mask]


def aggregate_edges(resolved: pd.DataFrame) -> pd.DataFrame:
    """Group usable resolved rows into edges with counts and the observed time span.

    ``src_pod``/``dst_pod`` keep one representative pod (the smallest key) so that the engine can
    evaluate the edge; ``dst_names`` joins the DNS names seen for the destination.
    """
    rows = usable(resolved)
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in EDGE_COLUMNS})
    # A DNS edge: to port 53 itself, or to a Service's port 53 (the backend may listen elsewhere).
    rows = rows.assign(is_dns=(rows["dst_port"] == DNS_PORT) | (rows["service_port"] == DNS_PORT))
    grouped = rows.groupby(EDGE_KEYS, sort=True, dropna=False)
    edges = grouped.agg(
        connections=("connections", "sum"),
        packets=("packets", "sum"),
        bytes=("bytes", "sum"),
        first_seen=("first_seen", "min"),
        last_seen=("last_seen", "max"),
        src_pod=("src_pod", "min"),
        dst_pod=("dst_pod", "min"),
        is_dns=("is_dns", "max"),
    ).reset_index()
    named = rows[rows["dst_names"] != ""]
    if named.empty:
        edges["dst_names"] = ""
    else:  # few rows carry DNS names: join them apart from the hot group-by
        distinct = named[EDGE_KEYS + ["dst_names"]].drop_duplicates()
        names = distinct.groupby(EDGE_KEYS, sort=False)["dst_names"].agg(_join_names).reset_index()
        edges = edges.merge(names, on=EDGE_KEYS, how="left")
        edges["dst_names"] = edges["dst_names"].fillna("")
    edges["dst_port"] = edges["dst_port"].astype("int64")
    return edges[EDGE_COLUMNS]


def _join_names(values: pd.Series) -> str:
    names = sorted({n for v in values if v for n in str(v).split(",") if n})
    return ",".join(names)


def _dtype(col: str) -> object:
    if col in ("dst_port", "connections", "packets", "bytes"):
        return "int64"
    if col in ("first_seen", "last_seen"):
        return "float64"
    if col == "is_dns":
        return bool
    return object
