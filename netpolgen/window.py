"""The observation window (``--since``/``--until``): one rule for every place that applies it.

A connection is in the window when its span [first, last] overlaps [since, until]. A row whose
times are unknown (NaN) cannot be shown to fall outside, so it is kept: dropping it would
silently lose traffic the user did not ask to lose (a CSV without time columns, say).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimeWindow:
    since: float | None = None  # unix seconds
    until: float | None = None

    @property
    def unbounded(self) -> bool:
        return self.since is None and self.until is None

    def keep(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Which rows (span first..last, unix seconds, NaN when unknown) the window keeps."""
        keep = np.ones(len(first), dtype=bool)
        if self.since is not None:
            keep &= ~(np.asarray(last, dtype="float64") < self.since)
        if self.until is not None:
            keep &= ~(np.asarray(first, dtype="float64") > self.until)
        return keep

    def clip(self, lo: float, hi: float) -> tuple[float, float]:
        """An observed span [lo, hi] cut to the window."""
        if self.since is not None:
            lo = max(lo, self.since)
        if self.until is not None:
            hi = min(hi, self.until)
        return lo, max(lo, hi)
