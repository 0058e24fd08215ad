"""Address ranges: subtraction, merging and partitions against brute force on small spaces."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.policy.ipspace import IPRange, Partition, cidr_range, merge_touching, parse_ip, subtract

rng_st = st.builds(lambda s, n: IPRange(4, s, s + n), st.integers(0, 60), st.integers(0, 8))


def pts(rs) -> set[int]:
    return {v for r in rs for v in range(r.start, r.end + 1)}


@settings(max_examples=300, deadline=None)
@given(st.lists(rng_st, max_size=4), st.lists(rng_st, max_size=4))
def test_subtract_and_merge_match_sets(a, b):
    out = subtract(a, b)
    assert pts(out) == pts(a) - pts(b)
    assert all(x.end < y.start for x, y in pairwise(out))  # sorted and disjoint
    merged = merge_touching(a)
    assert pts(merged) == pts(a)
    assert all(x.end + 1 < y.start for x, y in pairwise(merged))


@settings(max_examples=300, deadline=None)
@given(st.lists(rng_st, max_size=5), st.integers(0, 80))
def test_partition_atoms_cover_the_space_and_never_straddle_a_boundary(ranges, probe):
    part = Partition(4, ranges)
    atoms = part.atoms()
    assert atoms[0].start == 0 and atoms[-1].end == 2**32 - 1
    assert all(x.end + 1 == y.start for x, y in pairwise(atoms))
    atom = part.atom(part.index_of(probe))
    assert atom.start <= probe <= atom.end
    for r in ranges:  # every atom is wholly inside or outside every range
        for a in atoms[:20]:
            inside = r.start <= a.start <= r.end
            assert inside == (r.start <= a.end <= r.end) or a.end < r.start or a.start > r.end


def test_cidrs_and_addresses():
    assert str(cidr_range("10.1.2.3/16")) == "10.1.0.0-10.1.255.255"  # host bits ignored
    assert cidr_range("2001:db8::/126").end - cidr_range("2001:db8::/126").start == 3
    assert parse_ip("::ffff:10.0.0.1") == parse_ip("10.0.0.1")
    assert parse_ip("not-an-ip") is None
    assert IPRange(4, 0, 2**32 - 1).cidrs() == ["0.0.0.0/0"]
    with pytest.raises(ValueError):
        cidr_range("10.0.0.1")
