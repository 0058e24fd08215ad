"""The flow-table schema: whatever columns a source hands over (arrays, Categoricals, Series with
missing values, text in pandas' own string dtype), the table comes out with every schema column,
in order, at its dtype, and with the values pandas' own conversions give."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.flows import FLOW_COLUMNS, _has_schema, concat_flows, flow_frame, normalize_flows, take_flows

TEXT = st.one_of(st.none(), st.sampled_from(["", "10.0.0.1", "TCP", "allowed", "shop/web", "ünï"]))


def _column(typ: str, n: int):
    """A strategy for one column of ``n`` values of schema type ``typ`` in some container."""
    if typ == "str":
        values = st.lists(TEXT, min_size=n, max_size=n)
        return values.flatmap(lambda v: st.sampled_from([
            np.array(v, dtype=object),
            pd.Categorical(v),
            pd.Series(v, dtype="str"),
            np.array([x if x is not None else "" for x in v], dtype=object),
        ]))
    if typ == "float64":
        return st.lists(st.one_of(st.none(), st.floats(0, 1e10)), min_size=n, max_size=n).map(
            lambda v: pd.Series(v, dtype="float64"))
    if typ == "bool":
        return st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: np.array(v))
    return st.lists(st.one_of(st.none(), st.integers(0, 65535)), min_size=n, max_size=n).map(
        lambda v: pd.Series(v, dtype="float64" if None in v else "int64"))


@st.composite
def tables(draw):
    n = draw(st.integers(0, 6))
    chosen = draw(st.lists(st.sampled_from(list(FLOW_COLUMNS)), unique=True))
    return n, {c: draw(_column(FLOW_COLUMNS[c], n)) for c in chosen}


def _expected(value, typ: str, n: int) -> list:
    if value is None:
        return [{"str": "", "float64": math.nan, "bool": False}.get(typ, 0)] * n
    s = pd.Series(value)
    if typ == "str":
        return [("" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)) for x in s.tolist()]
    if typ == "float64":
        return s.astype("float64").tolist()
    if typ == "bool":
        return s.astype(bool).tolist()
    return s.fillna(0).astype("int64").tolist()


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


@settings(max_examples=200, deadline=None)
@given(tables())
def test_flow_frame_gives_the_schema_with_pandas_conversions(table) -> None:
    n, columns = table
    df = flow_frame(columns, n)
    assert _has_schema(df) and len(df) == n
    for col, typ in FLOW_COLUMNS.items():
        got = df[col].tolist()
        assert _same(got, _expected(columns.get(col), typ, n)), col
        if typ == "str":
            assert all(type(x) is str for x in got)


@settings(max_examples=50, deadline=None)
@given(tables())
def test_normalize_flows_and_concat_agree_with_flow_frame(table) -> None:
    n, columns = table
    frame = pd.DataFrame({c: pd.Series(v).reset_index(drop=True) for c, v in columns.items()}, index=range(n))
    frame["not_in_schema"] = 1  # extra columns are dropped
    normalized = normalize_flows(frame)
    pd.testing.assert_frame_equal(normalized, flow_frame(columns, n))
    both = concat_flows([normalized, frame])
    assert _has_schema(both) and len(both) == 2 * n


@settings(max_examples=50, deadline=None)
@given(st.lists(tables(), max_size=4))
def test_take_flows_is_pandas_concat_and_empties_the_list(pieces) -> None:
    chunks = [flow_frame(columns, n) for n, columns in pieces]
    expected = (pd.concat([c for c in chunks if len(c)], ignore_index=True)
                if any(len(c) for c in chunks) else normalize_flows(pd.DataFrame()))
    given_list = list(chunks)
    got = take_flows(given_list)
    assert given_list == []
    assert _has_schema(got)
    pd.testing.assert_frame_equal(got, expected)


def test_take_flows_of_many_small_chunks_is_pandas_concat_too() -> None:
    """Past the chunk count where columns are released one by one, the same table comes out."""
    chunks = [flow_frame({"src_ip": np.array([f"10.0.0.{i}"], dtype=object), "dst_port": np.array([i])}, 1)
              for i in range(100)]
    expected = pd.concat(chunks, ignore_index=True)
    got = take_flows(list(chunks))
    assert _has_schema(got)
    pd.testing.assert_frame_equal(got, expected)
