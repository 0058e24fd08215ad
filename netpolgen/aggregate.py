"""Aggregation: resolved connections → edges, one per (client, server, protocol, port).

A client or server is a workload (pods) or an address (node and external peers). Denied and
unresolved rows are not edges: they are reported, never allowed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from netpolgen.endpoint_kinds import KIND_UNRESOLVED
from netpolgen.flows import VERDICT_DENIED, object_frame

# The edge table, one row per (client, server, protocol, port): name -> (dtype, what it holds).
EDGE_SCHEMA: dict[str, tuple[str, str]] = {
    "src_kind": ("str", "pod / node / external"),
    "src_namespace": ("str", "the client's namespace ('' for addresses)"),
    "src_workload": ("str", "the client workload text ns/name[Kind], or its address"),
    "dst_kind": ("str", "pod / node / external"),
    "dst_namespace": ("str", "the server's namespace"),
    "dst_workload": ("str", "the server workload text, or its address"),
    "proto": ("str", "TCP / UDP / SCTP"),
    "dst_port": ("int64", "the server's real port"),
    "connections": ("int64", "observed connections on the edge"),
    "packets": ("int64", "packets"),
    "bytes": ("int64", "bytes"),
    "first_seen": ("float64", "unix seconds"),
    "last_seen": ("float64", "unix seconds"),
    "src_pod": ("str", "one client pod (the smallest key), for evaluating the edge"),
    "dst_pod": ("str", "one server pod"),
    "dst_names": ("str", "DNS names seen for the server address, comma-joined"),
    "is_dns": ("bool", "to port 53, or to a Service's port 53"),
}
EDGE_KEYS = [
    "src_kind", "src_namespace", "src_workload",
    "dst_kind", "dst_namespace", "dst_workload",
    "proto", "dst_port",
]
EDGE_COLUMNS = list(EDGE_SCHEMA)
DNS_PORT = 53
# How rows (or partial edges) of one edge combine: the one spec that the in-process group-by,
# the Dask engine's combination of its workers' partial edges, and streams use.
EDGE_AGGREGATES: dict[str, str] = {
    "connections": "sum", "packets": "sum", "bytes": "sum",
    "first_seen": "min", "last_seen": "max",
    "src_pod": "min", "dst_pod": "min",  # one representative pod: the smallest key
    "is_dns": "max",
}


# What aggregation reads of a resolved row (the addresses, ports and sources it drops are most
# of the table's width: only these are carried into the filtered copy).
_AGGREGATED = EDGE_KEYS + ["service_port", "connections", "packets", "bytes", "first_seen", "last_seen",
                           "src_pod", "dst_pod", "dst_names"]


def usable(resolved: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows that may become rules: both ends resolved and not denied by the source
    (``columns`` of them, default all)."""
    mask = (
        (resolved["src_kind"] != KIND_UNRESOLVED)
        & (resolved["dst_kind"] != KIND_UNRESOLVED)
        & (resolved["verdict"] != VERDICT_DENIED)
    )
    picked = resolved if columns is None else resolved[columns]
    return picked if mask.all() else picked[mask]


def aggregate_edges(resolved: pd.DataFrame) -> pd.DataFrame:
    """Group usable resolved rows into edges with counts and the observed time span.

    ``src_pod``/``dst_pod`` keep one representative pod (the smallest key) so that the engine can
    evaluate the edge; ``dst_names`` joins the DNS names seen for the destination.
    """
    rows = usable(resolved, _AGGREGATED)
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in EDGE_COLUMNS})
    # A DNS edge: to port 53 itself, or to a Service's port 53 (the backend may listen elsewhere).
    # The representative pods are grouped as sorted codes: a minimum over text columns falls back
    # to a Python call per group in pandas, over integers it stays vectorised.
    src_codes, src_pods = pd.factorize(rows["src_pod"].fillna(""), sort=True)
    dst_codes, dst_pods = pd.factorize(rows["dst_pod"].fillna(""), sort=True)
    rows = rows.assign(
        is_dns=(rows["dst_port"] == DNS_PORT) | (rows["service_port"] == DNS_PORT),
        src_pod=src_codes, dst_pod=dst_codes,
    )
    grouped = rows.groupby(EDGE_KEYS, sort=True, dropna=False)
    edges = grouped.agg(**{c: (c, how) for c, how in EDGE_AGGREGATES.items()}).reset_index()
    edges["src_pod"] = _decode(edges["src_pod"], src_pods)
    edges["dst_pod"] = _decode(edges["dst_pod"], dst_pods)
    named = rows[rows["dst_names"] != ""]
    if named.empty:
        edges["dst_names"] = ""
    else:  # few rows carry DNS names: join them apart from the hot group-by
        edges = edges.merge(joined_names(named), on=EDGE_KEYS, how="left")
        edges["dst_names"] = edges["dst_names"].fillna("")
    return with_edge_dtypes(edges)


_TEXT_COLUMNS = tuple(c for c, (t, _) in EDGE_SCHEMA.items() if t == "str")


def with_edge_dtypes(edges: pd.DataFrame) -> pd.DataFrame:
    """The edge table in schema order at the schema's dtypes (pandas 3 makes group keys its own
    string dtype; the schema says object, as every other stage's text)."""
    for col in _TEXT_COLUMNS:
        if edges[col].dtype != object:
            edges[col] = edges[col].astype(object)
    for col in ("dst_port", "connections", "packets", "bytes"):
        edges[col] = edges[col].astype("int64")
    edges["is_dns"] = edges["is_dns"].astype(bool)
    return edges[EDGE_COLUMNS]


def combine_edges(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Partial edge tables (of files, batches or stream segments) as one, by EDGE_AGGREGATES:
    the same answer as aggregating all their rows at once."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return aggregate_edges(pd.DataFrame(columns=_AGGREGATED + ["verdict"]))
    both = pd.concat(parts, ignore_index=True)
    # the representative pods as sorted codes: a minimum over text falls back to Python per group
    src_codes, src_pods = pd.factorize(both["src_pod"].fillna(""), sort=True)
    dst_codes, dst_pods = pd.factorize(both["dst_pod"].fillna(""), sort=True)
    coded = both.assign(src_pod=src_codes, dst_pod=dst_codes)
    edges = coded.groupby(EDGE_KEYS, sort=True, dropna=False).agg(
        **{c: (c, how) for c, how in EDGE_AGGREGATES.items()}).reset_index()
    edges["src_pod"] = _decode(edges["src_pod"], src_pods)
    edges["dst_pod"] = _decode(edges["dst_pod"], dst_pods)
    named = both[both["dst_names"] != ""]
    if named.empty:
        edges["dst_names"] = ""
    else:
        edges = edges.merge(joined_names(named), on=EDGE_KEYS, how="left")
        edges["dst_names"] = edges["dst_names"].fillna("")
    return with_edge_dtypes(edges)


def _decode(codes: pd.Series, values: pd.Index) -> pd.Series:
    """Codes from ``pd.factorize`` back to their text, as an object column."""
    return pd.Series(values.to_numpy(dtype=object)[codes.to_numpy()], index=codes.index, dtype=object)


def joined_names(named: pd.DataFrame) -> pd.DataFrame:
    """EDGE_KEYS + dst_names: every name seen on an edge's rows, sorted and comma-joined. A dict
    over the distinct rows: a pandas group-by would call Python once per group anyway."""
    texts: dict[tuple, set[str]] = {}  # edge -> its distinct name lists (one per address, mostly)
    for *key, text in named[EDGE_KEYS + ["dst_names"]].drop_duplicates().itertuples(index=False, name=None):
        texts.setdefault(tuple(key), set()).add(str(text))
    canonical: dict[frozenset[str], str] = {}

    def join(group: set[str]) -> str:
        key = frozenset(group)
        out = canonical.get(key)
        if out is None:
            out = canonical[key] = ",".join(sorted({n for t in group for n in t.split(",") if n}))
        return out

    keys = list(texts)
    columns = {c: np.array([k[i] for k in keys], dtype=object) for i, c in enumerate(EDGE_KEYS)}
    columns["dst_port"] = columns["dst_port"].astype(np.int64)
    columns["dst_names"] = np.array([join(texts[k]) for k in keys], dtype=object)
    return object_frame(columns)


def _dtype(col: str) -> object:
    if col in ("dst_port", "connections", "packets", "bytes"):
        return "int64"
    if col in ("first_seen", "last_seen"):
        return "float64"
    if col == "is_dns":
        return bool
    return object
