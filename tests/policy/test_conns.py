"""ConnSet: set algebra checked against plain Python sets, and np-guard's text form."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.policy.conns import PROTOCOLS, ConnSet, parse_conn_text

# A small port universe keeps the brute-force model exact and cheap.
SMALL = 40
ranges_st = st.lists(st.tuples(st.sampled_from(PROTOCOLS), st.integers(1, SMALL), st.integers(0, 6)), max_size=5)


def build(ranges) -> ConnSet:
    out = ConnSet.none()
    for proto, start, length in ranges:
        out = out | ConnSet.of(proto, start, start + length)
    return out


def points(ranges) -> set[tuple[str, int]]:
    return {(proto, port) for proto, start, length in ranges for port in range(start, start + length + 1)}


def members(c: ConnSet) -> set[tuple[str, int]]:
    return {(p, port) for p in PROTOCOLS for port in range(1, SMALL + 8) if c.contains(p, port)}


@settings(max_examples=300, deadline=None)
@given(ranges_st, ranges_st)
def test_union_intersection_difference_match_python_sets(a, b):
    ca, cb = build(a), build(b)
    assert members(ca) == points(a)
    assert members(ca | cb) == points(a) | points(b)
    assert members(ca & cb) == points(a) & points(b)
    assert members(ca - cb) == points(a) - points(b)


@settings(max_examples=300, deadline=None)
@given(ranges_st)
def test_equal_sets_have_one_canonical_form_and_text_round_trips(a):
    c = build(a)
    assert build(list(reversed(a))) == c
    assert parse_conn_text(str(c)) == c


def test_text_forms():
    assert str(ConnSet.all()) == "All Connections" and str(ConnSet.none()) == "No Connections"
    c = ConnSet.from_mapping({"UDP": [(8080, 8080)], "TCP": [(9090, 9090), (8080, 8080)]})
    assert str(c) == "TCP 8080,9090,UDP 8080"
    assert str(ConnSet.of("TCP", 10053, 10054) | ConnSet.of("UDP", 10053, 10053)) == "TCP 10053-10054,UDP 10053"
    assert str(ConnSet.of("SCTP", 9090, 9090) | ConnSet.of("SCTP", 8956, 8956)) == "SCTP 8956,9090"
    assert not (ConnSet.all() - ConnSet.of("TCP", 1, 1)).is_all


def test_every_connection_column_of_the_np_guard_outputs_round_trips(samples: Path):
    """np-guard's own strings, read and printed back, are unchanged (golden text)."""
    seen = set()
    for f in (samples / "netpol-analyzer" / "test_outputs").rglob("*.txt"):
        for line in f.read_text().splitlines():
            m = re.search(r" : (.+)$", line) if " => " in line else None
            if m:
                seen.add(m.group(1))
            seen.update(re.findall(r"ref[12]: ((?:[A-Z]+ [0-9,-]+,?)+|All Connections|No Connections)", line))
    seen = {s.rstrip(",") for s in seen}
    assert len(seen) > 10
    for text in seen:
        assert str(parse_conn_text(text)) == text
