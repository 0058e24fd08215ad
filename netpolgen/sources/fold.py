"""Folding per-packet or per-direction flow records into one row per connection.

Hubble writes one record per packet event (and L7 request/response), VPC Flow Logs one record
per direction per interface. Both say, for some records only, which side opened the connection.
This module turns a chunk of such records into flow-table rows, one per connection (5-tuple and
verdict), oriented client → server:

- a record is matched to its connection whichever way it points (request or reply), so replies
  are folded in and never become rows of their own, and a connection seen at two observation
  points (the client's egress and the server's ingress) counts once;
- the client side is what the records say (``role``); when none of them says, a
  ``ConnectionLedger`` remembers what earlier chunks said about the same connection; failing
  that, the shared port rule (``portrules``) decides and the row says ``direction_known=False``.

The work is vectorised (factorised keys, one stable sort, ``ufunc.reduceat`` per aggregate):
the sources only collect columns.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from netpolgen.portrules import dst_is_server

# role of a record: what it says about its own source address
ROLE_CLIENT = 1  # the record's source opened the connection (SYN, is_reply false, ...)
ROLE_SERVER = -1  # the record is a reply: its source is the server
ROLE_UNKNOWN = 0

RECORD_COLUMNS = (
    "src_ip", "dst_ip", "src_port", "dst_port", "proto", "verdict", "role",
    "packets", "bytes", "first_seen", "last_seen",
)

_PORT_BITS = 17  # ports -1..65535 shifted by one fit in 17 bits
_PORT_MASK = (1 << _PORT_BITS) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64): spreads combined hashes so that sums do not collide."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _hash_text(values: np.ndarray) -> np.ndarray:
    # Callers pass distinct values: factorising them first (pandas' default) only adds work.
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False).astype(np.uint64)


class ConnectionLedger:
    """What earlier chunks of one source saw: each connection once, and its client side.

    Keys are 64-bit hashes of the unordered 5-tuple plus verdict (independent of chunk and of
    record direction), kept in a sorted array: 9 bytes per connection, vectorised look-ups.
    Orientation is stored relative to the endpoint with the smaller hash: +1 when it is the
    client, -1 when the other one is, 0 when no record has said.
    """

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.uint64)
        self._orient = np.empty(0, dtype=np.int8)

    def __len__(self) -> int:
        return len(self._keys)

    def observe(self, keys: np.ndarray, orient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Look ``keys`` up, then remember them with what this chunk learnt (``orient``).

        Returns (seen in an earlier chunk, orientation stored before this call). A known
        orientation replaces an unknown one, never the reverse. ``keys`` are distinct.
        """
        n = len(keys)
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        os_ = orient[order].astype(np.int8)
        seen_sorted = np.zeros(n, dtype=bool)
        stored_sorted = np.zeros(n, dtype=np.int8)
        if len(self._keys):
            idx = np.searchsorted(self._keys, ks)  # sorted needles: one pass over the ledger
            inside = idx < len(self._keys)
            seen_sorted[inside] = self._keys[idx[inside]] == ks[inside]
            hit = idx[seen_sorted]
            stored_sorted[seen_sorted] = self._orient[hit]
            upgrade = (stored_sorted[seen_sorted] == 0) & (os_[seen_sorted] != 0)
            self._orient[hit[upgrade]] = os_[seen_sorted][upgrade]
            new = ~seen_sorted
            if new.any():
                self._keys = np.insert(self._keys, idx[new], ks[new])
                self._orient = np.insert(self._orient, idx[new], os_[new])
        else:
            self._keys, self._orient = ks.copy(), os_.copy()
        seen = np.empty(n, dtype=bool)
        stored = np.empty(n, dtype=np.int8)
        seen[order] = seen_sorted
        stored[order] = stored_sorted
        return seen, stored


def _factorize(values: object, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques as an object array); a ``pd.Categorical`` is taken as already factorised."""
    if isinstance(values, pd.Categorical):
        return values.codes.astype(np.int64), np.asarray(values.categories, dtype=object)
    codes, uniques = pd.factorize(values if sort else np.asarray(values, dtype=object), sort=sort)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _factorize_nonempty(values: object, empty: object, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``values`` with -1 for ``empty`` (so that a group's max is non-empty);
    with ``sort`` the codes follow the values' order, so that the max is the greatest value.
    Integers (Hubble's endpoint ids) are factorised as they are: several times faster than as
    objects."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "i":
        codes, uniques = pd.factorize(values, sort=sort)
        codes = codes.astype(np.int64)
    else:
        codes, uniques = _factorize(values, sort)
    hits = np.flatnonzero(uniques == empty) if len(uniques) else np.zeros(0, dtype=np.int64)
    if len(hits):
        codes = np.where(codes == hits[0], -1, codes)
    return codes.astype(np.int64), uniques


def _decode(codes: np.ndarray, uniques: np.ndarray, empty: object) -> np.ndarray:
    # one take: code -1 picks the last entry, ``empty``
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = uniques
    table[-1] = empty
    return table[codes]


def fold_connections(
    records: Mapping[str, object],
    ledger: ConnectionLedger,
    side_columns: Sequence[tuple[str, str, object]] = (),
    common_columns: Sequence[tuple[str, object]] = (),
    ip_codes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Fold a chunk of records into one row per connection, oriented client → server.

    ``records`` maps ``RECORD_COLUMNS`` (and the extra columns) to equal-length arrays;
    ``proto``, ``verdict`` and common columns may be ``pd.Categorical`` (already factorised).
    ``side_columns`` are ``(src_col, dst_col, empty)`` triples of per-endpoint data that travel
    with their address (Hubble's endpoint ids); ``common_columns`` are ``(col, empty)`` pairs of
    per-record data (the node). Each keeps one non-empty value of the connection: for a side
    column the greatest (callers rank their values by encoding it), for a common column any.
    ``ip_codes``
    is ``(src codes, dst codes, addresses)`` when the caller has already factorised the
    addresses. Returns the flow-table core columns (except ``source``) plus those columns, as
    arrays (the caller adds its own columns and builds the table once: ``flow_frame``);
    ``connections`` is 1 for a connection no earlier chunk had.
    """
    col = lambda name, dtype=None: np.asarray(records[name], dtype=dtype)  # noqa: E731
    if ip_codes is None:
        src_ip, dst_ip = col("src_ip", object), col("dst_ip", object)
        codes, uniques = pd.factorize(np.concatenate([src_ip, dst_ip]))
        n = len(src_ip)
        src_code, dst_code = codes[:n], codes[n:]
        ip_uniques = np.asarray(uniques, dtype=object)
    else:
        src_code, dst_code, ip_uniques = ip_codes
        ip_uniques = np.asarray(ip_uniques, dtype=object)
    n = len(src_code)
    if n == 0:
        cols = ["src_ip", "dst_ip", "src_port", "dst_port", "proto", "verdict", "packets", "bytes",
                "first_seen", "last_seen", "direction_known", "connections"]
        cols += [c for s, d, _ in side_columns for c in (s, d)] + [c for c, _ in common_columns]
        return {c: np.zeros(0, dtype=object) for c in cols}

    sp = col("src_port", np.int64)
    dp = col("dst_port", np.int64)
    a = (np.asarray(src_code, dtype=np.int64) << _PORT_BITS) | (sp + 1)
    b = (np.asarray(dst_code, dtype=np.int64) << _PORT_BITS) | (dp + 1)
    swap = a > b  # canonical order: the smaller (address code, port) is "lo"
    lo = np.where(swap, b, a)
    hi = np.where(swap, a, b)

    proto_codes, proto_uniques = _factorize(records["proto"])
    verdict_codes, verdict_uniques = _factorize(records["verdict"])
    nv = max(len(verdict_uniques), 1)
    pv = proto_codes.astype(np.int64) * nv + verdict_codes

    # Group ids (first-appearance order) from the three keys, then one stable sort so that
    # every aggregate is a ufunc.reduceat over contiguous runs.
    lo_c, lo_u = pd.factorize(lo)
    hi_c, hi_u = pd.factorize(hi)
    key = (lo_c.astype(np.int64) * len(hi_u) + hi_c) * int(pv.max() + 1) + pv
    gid, _ = pd.factorize(key)
    order = np.argsort(gid, kind="stable")
    gs = gid[order]
    starts = np.flatnonzero(np.concatenate(([True], gs[1:] != gs[:-1])))
    first_idx = order[starts]

    def total(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x[order], starts)

    role = col("role", np.int8)
    says_lo = total((((role == ROLE_CLIENT) & ~swap) | ((role == ROLE_SERVER) & swap)).astype(np.int64))
    says_hi = total((((role == ROLE_CLIENT) & swap) | ((role == ROLE_SERVER) & ~swap)).astype(np.int64))
    packets = total(col("packets", np.int64))
    nbytes = total(col("bytes", np.int64))
    first_seen = np.fmin.reduceat(col("first_seen", "float64")[order], starts)
    last_seen = np.fmax.reduceat(col("last_seen", "float64")[order], starts)

    lo_g, hi_g, pv_g = lo[first_idx], hi[first_idx], pv[first_idx]
    lo_ip = ip_uniques[lo_g >> _PORT_BITS]
    hi_ip = ip_uniques[hi_g >> _PORT_BITS]
    lo_port = (lo_g & _PORT_MASK) - 1
    hi_port = (hi_g & _PORT_MASK) - 1
    proto = proto_uniques[pv_g // nv]
    verdict = verdict_uniques[pv_g % nv]

    # Chunk-independent identity of each connection for the ledger.
    ip_hash = _hash_text(ip_uniques)
    e_lo = _mix(ip_hash[lo_g >> _PORT_BITS] ^ lo_port.astype(np.uint64))
    e_hi = _mix(ip_hash[hi_g >> _PORT_BITS] ^ hi_port.astype(np.uint64))
    lo_is_min = e_lo <= e_hi
    e_min = np.where(lo_is_min, e_lo, e_hi)
    e_max = np.where(lo_is_min, e_hi, e_lo)
    # hashed per distinct value, then spread: hashing text per row costs more than the fold
    pv_hash = _mix(_hash_text(proto_uniques)[pv_g // nv] ^ (_hash_text(verdict_uniques)[pv_g % nv] << np.uint64(1)))
    keys = _mix(_mix(e_min) ^ (e_max * np.uint64(0x9E3779B97F4A7C15)) ^ pv_hash)

    known = (says_lo + says_hi) > 0
    client_lo = says_lo >= says_hi
    orient = np.where(known, np.where(client_lo == lo_is_min, 1, -1), 0).astype(np.int8)
    seen, stored = ledger.observe(keys, orient)
    from_ledger = ~known & (stored != 0)
    client_lo = np.where(from_ledger, (stored == 1) == lo_is_min, client_lo)
    undecided = ~known & ~from_ledger
    # the port rule; where it cannot choose (equal ports: ICMP), the first record's own order
    by_ports = np.where(lo_port == hi_port, ~swap[first_idx], dst_is_server(lo_port, hi_port))
    client_lo = np.where(undecided, by_ports, client_lo)

    out: dict[str, np.ndarray] = {
        "src_ip": np.where(client_lo, lo_ip, hi_ip),
        "dst_ip": np.where(client_lo, hi_ip, lo_ip),
        "src_port": np.where(client_lo, lo_port, hi_port).astype(np.int32),
        "dst_port": np.where(client_lo, hi_port, lo_port).astype(np.int32),
        "proto": proto,
        "verdict": verdict,
        "packets": packets,
        "bytes": nbytes,
        "first_seen": first_seen,
        "last_seen": last_seen,
        "direction_known": known | from_ledger,
        "connections": (~seen).astype(np.int64),
    }
    for src_col, dst_col, empty in side_columns:
        sv, dv = np.asarray(records[src_col]), np.asarray(records[dst_col])
        if not (sv.dtype.kind == dv.dtype.kind == "i" and isinstance(empty, int)):  # ids stay numbers
            sv, dv = sv.astype(object), dv.astype(object)
        # sorted codes: the greatest value wins (callers rank their values by encoding it)
        codes, uniques = _factorize_nonempty(np.concatenate([sv, dv]), empty, sort=True)
        sc, dc = codes[:n], codes[n:]
        lo_v = _decode(np.maximum.reduceat(np.where(swap, dc, sc)[order], starts), uniques, empty)
        hi_v = _decode(np.maximum.reduceat(np.where(swap, sc, dc)[order], starts), uniques, empty)
        out[src_col] = np.where(client_lo, lo_v, hi_v)
        out[dst_col] = np.where(client_lo, hi_v, lo_v)
    for name, empty in common_columns:
        codes, uniques = _factorize_nonempty(records[name], empty)
        out[name] = _decode(np.maximum.reduceat(codes[order], starts), uniques, empty)
    return out


SIDE_PAIRS = (
    ("src_ip", "dst_ip"), ("src_port", "dst_port"), ("src_namespace", "dst_namespace"),
    ("src_pod", "dst_pod"), ("src_labels", "dst_labels"), ("src_owner", "dst_owner"),
)


def orient_unknown(flows: pd.DataFrame) -> pd.DataFrame:
    """Swap rows with ``direction_known`` false whose port rule says the source is the server.

    For row-per-connection sources (CSV) that do not fold: every src_/dst_ pair moves together.
    """
    unknown = ~flows["direction_known"].to_numpy(dtype=bool)
    if not unknown.any():
        return flows
    sp, dp = flows["src_port"].to_numpy(), flows["dst_port"].to_numpy()
    # a row without the client's port (-1) cannot be judged by ports: it stays as given
    swap = unknown & (sp >= 0) & (dp >= 0) & ~dst_is_server(sp, dp)
    if not swap.any():
        return flows
    flows = flows.copy()
    for a, b in SIDE_PAIRS:
        if a in flows.columns and b in flows.columns:
            va, vb = flows[a].to_numpy(), flows[b].to_numpy()
            flows[a] = np.where(swap, vb, va)
            flows[b] = np.where(swap, va, vb)
    return flows
