"""``unique_rows`` (the engine's fast row de-duplication) agrees with ``np.unique(axis=0)``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from netpolgen.policy import compiled
from netpolgen.policy.compiled import unique_rows

# Few distinct word values, so that equal rows are common.
WORD = st.sampled_from([0, 1, 2**63, 2**64 - 1, 0x5555, 12345678901234567])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40).flatmap(lambda n: st.integers(1, 5).flatmap(
    lambda w: arrays(np.uint64, (n, w), elements=WORD))))
def test_unique_rows_matches_numpy(rows: np.ndarray) -> None:
    uniq, inverse = unique_rows(rows)
    assert np.array_equal(uniq[inverse], rows)
    assert len({r.tobytes() for r in uniq}) == len(uniq)  # distinct
    expected = np.unique(rows, axis=0)
    assert sorted(r.tobytes() for r in uniq) == sorted(r.tobytes() for r in expected)


def test_a_hash_collision_falls_back_to_numpy(monkeypatch) -> None:
    """Rows that hash alike are still told apart (the check catches it, numpy decides)."""
    rows = np.array([[1, 2], [3, 4], [1, 2]], dtype=np.uint64)
    real_unique = np.unique

    def colliding(a, *args, **kwargs):
        if a.ndim == 1 and kwargs.get("return_index"):  # every row hashed to the same value
            return real_unique(np.zeros_like(a), *args, **kwargs)
        return real_unique(a, *args, **kwargs)

    monkeypatch.setattr(compiled.np, "unique", colliding)
    uniq, inverse = unique_rows(rows)
    assert np.array_equal(uniq[inverse], rows)
    assert len(uniq) == 2
