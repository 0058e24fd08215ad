"""pcapng timestamp conversion, checked against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from netpolgen.capture.pcapng import Interface


@given(ticks=st.integers(0, 2**63 - 1), resol=st.sampled_from([0, 3, 6, 9, 12, 0x80 | 10, 0x80 | 20, 0x80 | 30]),
       offset=st.integers(-10**6, 10**6))
def test_pcapng_timestamps_are_exact(ticks: int, resol: int, offset: int) -> None:
    """Any if_tsresol (powers of ten or two) and if_tsoffset: the nanoseconds are the exact
    floor of ticks * 10^9 / units plus the offset, as a rational computation gives."""
    units = 2 ** (resol & 0x7F) if resol & 0x80 else 10**resol
    exact = (Fraction(ticks) * 10**9 / units).__floor__() + offset * 10**9
    if not -(2**63) <= exact < 2**63:
        return  # not representable as int64 nanoseconds: outside any real capture's times
    got = Interface(linktype=1, snaplen=0, tsresol=resol, tsoffset=offset).to_ns(np.array([ticks], np.uint64))
    assert int(got[0]) == exact
