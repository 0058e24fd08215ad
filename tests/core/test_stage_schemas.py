"""Each stage's table has exactly the columns its schema declares, at the declared dtypes: the
flow table (flows.FLOW_COLUMNS), the resolved table (resolve.RESOLVED_SCHEMA) and the edges
(aggregate.EDGE_SCHEMA), checked at the boundaries on the demo capture and a real Hubble cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from netpolgen.aggregate import EDGE_SCHEMA, aggregate_edges
from netpolgen.flows import FLOW_COLUMNS
from netpolgen.inventory import load_inventory
from netpolgen.inventory.from_flows import inventory_for
from netpolgen.pipeline import read_flows
from netpolgen.resolve import RESOLVED_SCHEMA, resolve_flows

REPO = Path(__file__).resolve().parents[2]


def _check(df: pd.DataFrame, schema: dict[str, str], stage: str) -> None:
    assert list(df.columns) == list(schema), f"{stage}: columns differ from the schema"
    for col, dtype in schema.items():
        got = df[col].dtype
        if dtype == "str":
            assert got == np.dtype(object) and all(isinstance(v, str) for v in df[col].head(1000)), f"{stage}.{col}: {got}"
        elif dtype == "bool":
            assert got == np.dtype(bool), f"{stage}.{col}: {got}"
        else:
            assert np.issubdtype(got, np.dtype(dtype)) or (dtype == "int64" and np.issubdtype(got, np.integer)), \
                f"{stage}.{col}: {got} is not {dtype}"


@pytest.mark.parametrize("case", ["demo", "hubble"])
def test_every_stage_boundary_holds_its_schema(case: str, samples: Path) -> None:
    if case == "demo":
        inputs, inv = [str(REPO / "captures" / "demo.pcap")], load_inventory([str(REPO / "captures" / "demo-inventory.json")])
    else:
        inputs = [str(samples / "hubble-flows" / f"basic-sample-400-{k}-flows.json") for k in ("tcp", "udp")]
        inv = None
    flows = read_flows(inputs).flows
    _check(flows, FLOW_COLUMNS, "flows")
    resolved = resolve_flows(flows, inventory_for(flows, inv)).flows
    _check(resolved, {c: t for c, (t, _) in RESOLVED_SCHEMA.items()}, "resolved")
    assert len(resolved) and len(flows)
    edges = aggregate_edges(resolved)
    _check(edges, {c: t for c, (t, _) in EDGE_SCHEMA.items()}, "edges")
    assert len(edges)
