"""Property tests: the engine's two paths and an independent evaluator give the same answers.

``Engine.evaluate`` (the model walked directly), ``Engine.evaluate_flows`` (compiled bitsets,
grouped questions) and ``tests.policy.reference`` (raw dicts, written from the API reference)
are three implementations of one semantics; random clusters, policy sets and connections must
never tell them apart.
"""

from __future__ import annotations

from unittest.mock import patch

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.policy import Engine, parse_policies
from netpolgen.policy import engine as engine_module
from tests.policy.world import connections_st, world_st


def _draw(data: st.DataObject):
    """A random cluster and policy set, connections to ask about, and the engine for them."""
    world = data.draw(world_st())
    conns = data.draw(connections_st(world))
    return world, conns, Engine(world.inventory(), parse_policies(world.policies))


def _flow_rows(world, conns) -> pd.DataFrame:
    by_key = {p.key: p for p in world.pods}
    rows = []
    for s, d, port, proto in conns:
        rows.append({
            "src_pod": s if s in by_key else "", "src_ip": by_key[s].ip if s in by_key else s,
            "dst_pod": d if d in by_key else "", "dst_ip": by_key[d].ip if d in by_key else d,
            "dst_port": port, "proto": proto,
        })
    return pd.DataFrame(rows)


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_single_and_bulk_evaluation_agree_with_the_reference(data: st.DataObject) -> None:
    world, conns, engine = _draw(data)
    ref = world.reference()
    bulk = engine.evaluate_flows(_flow_rows(world, conns))
    for i, (s, d, port, proto) in enumerate(conns):
        expected = ref.allowed(s, d, port, proto)
        v = engine.evaluate(s, d, port, proto)
        assert (v.egress_allowed, v.ingress_allowed) == expected, (s, d, port, proto, v)
        row = bulk.iloc[i]
        assert (bool(row["egress_allowed"]), bool(row["ingress_allowed"])) == expected, (s, d, port, proto, row.to_dict())
        assert bool(row["allowed"]) == v.allowed


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_bulk_answers_do_not_depend_on_row_order_or_duplicates(data: st.DataObject) -> None:
    """Grouping identical questions must not mix rows up: shuffled and repeated rows keep their
    own answers, on the caller's index."""
    world, conns, engine = _draw(data)
    df = _flow_rows(world, conns)
    once = engine.evaluate_flows(df)["allowed"].to_numpy()
    doubled = pd.concat([df, df], ignore_index=True)
    doubled.index = [f"r{i}" for i in range(len(doubled))]
    expected = dict(zip(doubled.index, list(once) * 2, strict=True))
    shuffled = doubled.sample(frac=1.0, random_state=data.draw(st.integers(0, 1000)))
    again = engine.evaluate_flows(shuffled)
    assert list(again.index) == list(shuffled.index)
    assert {label: bool(a) for label, a in again["allowed"].items()} == expected


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_rule_usage_counts_what_single_evaluation_names(data: st.DataObject) -> None:
    """A rule's usage count is the number of rows whose single verdict names it as admitting."""
    world, conns, engine = _draw(data)
    usage = engine.rule_usage(_flow_rows(world, conns))
    expected = {ref: 0 for ref, _ in engine.rules()}
    for s, d, port, proto in conns:
        v = engine.evaluate(s, d, port, proto)
        for ref in v.egress.rules + v.ingress.rules:
            expected[ref] += 1
    assert usage == expected


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_questions_taken_group_by_group_or_all_together_get_the_same_answers(data: st.DataObject) -> None:
    """Bulk evaluation reads only the rule words of each apply group, and pools small groups
    over the union of their words; both ways must give the same verdicts and usage counts."""
    world, conns, engine = _draw(data)
    df = _flow_rows(world, conns)
    answers = []
    for min_group in (1, 10**9):  # every group alone; every group pooled
        with patch.object(engine_module, "_MIN_GROUP", min_group):
            answers.append((engine.evaluate_flows(df), engine.rule_usage(df)))
    (alone, alone_usage), (pooled, pooled_usage) = answers
    pd.testing.assert_frame_equal(alone, pooled)
    assert alone_usage == pooled_usage
