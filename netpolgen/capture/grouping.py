"""Exact group ids for rows keyed by several unsigned integer columns, fast.

Connection keys are wide (two IPv6 addresses are 256 bits), so they cannot be one integer. The
columns are bit-packed into 64-bit words as far as they fit (using each column's actual width in
this block, so IPv4 address pairs fill one word), and a word is replaced by its dense
``pd.factorize`` codes whenever the next column would not fit. Codes come in order of first
appearance, which the connection tracker relies on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_ids(cols: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Dense int64 group codes (first appearance order) for the rows of ``cols``, and how many
    groups there are. ``cols`` are non-negative integer arrays of equal length."""
    n = len(cols[0]) if cols else 0
    word: np.ndarray | None = None
    used = 0
    for col in cols:
        if col.dtype.kind != "u":
            col = col.astype(np.uint64)  # non-negative by contract: the bits are the value
        width = int(col.max()).bit_length() if n else 0
        if width == 0:
            continue  # constant zero: says nothing
        if word is None:
            word, used = col.astype(np.uint64), width  # always a copy: shifted in place below
            continue
        if used + width > 64:
            codes, uniques = pd.factorize(word)
            del word
            word = codes.astype(np.int64, copy=False).view(np.uint64)  # no copy
            used = max(len(uniques) - 1, 1).bit_length()
            del codes, uniques
        if used + width > 64:  # only when a single column is 64 bits wide and the codes many
            codes, uniques = pd.factorize(col)
            col = codes.astype(np.int64, copy=False).view(np.uint64)
            width = max(len(uniques) - 1, 1).bit_length()
        # In place: on a million-row merge every temporary word is 8 MB more at the peak.
        np.left_shift(word, np.uint64(width), out=word)
        np.bitwise_or(word, col, out=word, casting="unsafe")
        used += width
    if word is None:
        return np.zeros(n, np.int64), (1 if n else 0)
    codes, uniques = pd.factorize(word)
    return codes.astype(np.int64, copy=False), len(uniques)


def first_rows(codes: np.ndarray, ngroups: int) -> np.ndarray:
    """Index of each group's first row (rows are in file order)."""
    first = np.full(ngroups, len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first
