"""Aggregation cross-checked against a plain-Python group-by over the same resolved rows.

``aggregate_edges`` groups with pandas and takes shortcuts for speed (representative pods as
sorted codes, DNS names joined over distinct rows): the reference below does the obvious thing
row by row, and both must agree on every edge and every column.
"""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.aggregate import EDGE_COLUMNS, EDGE_KEYS, aggregate_edges
from netpolgen.resolve import RESOLVED_COLUMNS

# Few key values, so that many rows fall into one edge and the per-edge reductions matter.
KINDS = ["pod", "pod", "pod", "external", "unresolved"]
WORKLOADS = ["shop/web[Deployment]", "shop/api[Deployment]", "db/pg[StatefulSet]", "203.0.113.9"]
PODS = ["", "shop/web-1", "shop/web-0", "db/pg-0", "shop/api-7"]
NAMES = ["", "api.example.com", "a.example.com,b.example.com", "b.example.com,c.example.com"]

row_strategy = st.fixed_dictionaries({
    "src_kind": st.sampled_from(KINDS),
    "src_workload": st.sampled_from(WORKLOADS[:2]),
    "src_pod": st.sampled_from(PODS),
    "dst_kind": st.sampled_from(KINDS),
    "dst_workload": st.sampled_from(WORKLOADS[1:3]),
    "dst_pod": st.sampled_from(PODS),
    "dst_port": st.sampled_from([53, 80]),
    "service_port": st.sampled_from([0, 53, 80]),
    "proto": st.sampled_from(["TCP", "TCP", "UDP"]),
    "verdict": st.sampled_from(["allowed", "allowed", "denied", "unknown"]),
    "connections": st.integers(1, 5),
    "packets": st.integers(0, 100),
    "first_seen": st.floats(0, 1000, allow_nan=False),
    "dst_names": st.sampled_from(NAMES),
})


def _table(rows: list[dict]) -> pd.DataFrame:
    full = []
    for r in rows:
        ns = lambda w: w.split("/")[0] if "[" in w else ""  # noqa: E731
        full.append({
            **r, "src_namespace": ns(r["src_workload"]), "dst_namespace": ns(r["dst_workload"]),
            "src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "src_port": 40000, "dst_service": "",
            "bytes": r["packets"] * 60, "last_seen": r["first_seen"] + 1, "direction_inferred": False,
            "source": "t",
        })
    df = pd.DataFrame(full, columns=RESOLVED_COLUMNS)
    for col in df.columns:  # the resolver's text columns are object columns
        if df[col].dtype != object and not pd.api.types.is_numeric_dtype(df[col]) and df[col].dtype != bool:
            df[col] = df[col].astype(object)
    return df


def _reference(rows: list[dict]) -> dict[tuple, dict]:
    edges: dict[tuple, dict] = {}
    for r in _table(rows).to_dict("records"):
        if "unresolved" in (r["src_kind"], r["dst_kind"]) or r["verdict"] == "denied":
            continue
        key = tuple(r[k] for k in EDGE_KEYS)
        e = edges.setdefault(key, {"connections": 0, "packets": 0, "bytes": 0, "first_seen": math.inf,
                                   "last_seen": -math.inf, "src_pod": None, "dst_pod": None,
                                   "names": set(), "is_dns": False})
        e["connections"] += r["connections"]
        e["packets"] += r["packets"]
        e["bytes"] += r["bytes"]
        e["first_seen"] = min(e["first_seen"], r["first_seen"])
        e["last_seen"] = max(e["last_seen"], r["last_seen"])
        e["src_pod"] = r["src_pod"] if e["src_pod"] is None else min(e["src_pod"], r["src_pod"])
        e["dst_pod"] = r["dst_pod"] if e["dst_pod"] is None else min(e["dst_pod"], r["dst_pod"])
        e["names"].update(n for n in r["dst_names"].split(",") if n)
        e["is_dns"] = e["is_dns"] or r["dst_port"] == 53 or r["service_port"] == 53
    return edges


@settings(max_examples=150, deadline=None)
@given(st.lists(row_strategy, max_size=40))
def test_edges_match_a_row_by_row_group_by(rows: list[dict]) -> None:
    edges = aggregate_edges(_table(rows))
    assert list(edges.columns) == EDGE_COLUMNS
    expected = _reference(rows)
    got = {tuple(r[k] for k in EDGE_KEYS): r for r in edges.to_dict("records")}
    assert set(got) == set(expected)
    keys = list(got)
    assert keys == sorted(keys), "edges come sorted by their key"
    for key, e in expected.items():
        g = got[key]
        assert (g["connections"], g["packets"], g["bytes"]) == (e["connections"], e["packets"], e["bytes"])
        assert (g["first_seen"], g["last_seen"]) == (e["first_seen"], e["last_seen"])
        assert (g["src_pod"], g["dst_pod"]) == (e["src_pod"], e["dst_pod"])
        assert g["dst_names"] == ",".join(sorted(e["names"]))
        assert bool(g["is_dns"]) == e["is_dns"]


def test_denied_and_unresolved_rows_give_an_empty_table_with_the_edge_columns() -> None:
    base = {"src_kind": "pod", "src_workload": WORKLOADS[0], "src_pod": PODS[1], "dst_kind": "pod",
            "dst_workload": WORKLOADS[1], "dst_pod": PODS[4], "dst_port": 80, "service_port": 0,
            "proto": "TCP", "verdict": "allowed", "connections": 1, "packets": 3, "first_seen": 5.0,
            "dst_names": ""}
    rows = [{**base, "verdict": "denied"}, {**base, "dst_kind": "unresolved"}, {**base, "src_kind": "unresolved"}]
    edges = aggregate_edges(_table(rows))
    assert list(edges.columns) == EDGE_COLUMNS
    assert edges.empty
    assert len(aggregate_edges(_table([base]))) == 1
