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

The work is vectorised (pandas group-by on integer codes): the sources only collect columns.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from netpolgen.sources.portrules import dst_is_server

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
    return pd.util.hash_array(np.asarray(values, dtype=object)).astype(np.uint64)


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

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(self._keys):
            return np.zeros(len(keys), dtype=bool), np.zeros(len(keys), dtype=np.int64)
        idx = np.searchsorted(self._keys, keys)
        idx = np.minimum(idx, len(self._keys) - 1)
        return self._keys[idx] == keys, idx

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seen before, stored orientation) for each key."""
        found, idx = self._find(keys)
        orient = np.where(found, self._orient[idx] if len(self._orient) else 0, 0).astype(np.int8)
        return found, orient

    def record(self, keys: np.ndarray, orient: np.ndarray) -> None:
        """Remember ``keys``; a known orientation replaces an unknown one, never the reverse."""
        found, idx = self._find(keys)
        if found.any():
            upgrade = found & (orient != 0)
            upgrade[upgrade] = self._orient[idx[upgrade]] == 0
            self._orient[idx[upgrade]] = orient[upgrade]
        new = ~found
        if new.any():
            nk, no = keys[new], orient[new].astype(np.int8)
            order = np.argsort(nk, kind="stable")
            nk, no = nk[order], no[order]
            pos = np.searchsorted(self._keys, nk)
            self._keys = np.insert(self._keys, pos, nk)
            self._orient = np.insert(self._orient, pos, no)


def _codes_first_nonempty(values: np.ndarray, empty: object) -> tuple[np.ndarray, np.ndarray]:
    """Factorise ``values`` into float codes with NaN for ``empty`` (so group 'first' skips it)."""
    codes, uniques = pd.factorize(values)
    out = codes.astype("float64")
    if len(uniques):
        hits = np.flatnonzero(np.asarray(uniques, dtype=object) == empty)
        if len(hits):
            out[codes == hits[0]] = np.nan
    return out, np.asarray(uniques, dtype=object)


def _decode(codes: np.ndarray, uniques: np.ndarray, empty: object) -> np.ndarray:
    out = np.full(len(codes), empty, dtype=object)
    ok = ~np.isnan(codes)
    out[ok] = uniques[codes[ok].astype(np.int64)]
    return out


def fold_connections(
    records: pd.DataFrame,
    ledger: ConnectionLedger,
    side_columns: Sequence[tuple[str, str, object]] = (),
    common_columns: Sequence[tuple[str, object]] = (),
) -> pd.DataFrame:
    """Fold a chunk of records into one row per connection, oriented client → server.

    ``records`` has ``RECORD_COLUMNS``. ``side_columns`` are ``(src_col, dst_col, empty)``
    triples of per-endpoint data (namespace, labels, ...) that travel with their address;
    ``common_columns`` are ``(col, empty)`` pairs of per-record data (the node). Both keep the
    first non-empty value of the connection. Returns the flow-table core columns (except
    ``source``) plus those columns; ``connections`` is 1 for a connection no earlier chunk had.
    """
    n = len(records)
    if n == 0:
        cols = ["src_ip", "dst_ip", "src_port", "dst_port", "proto", "verdict", "packets", "bytes",
                "first_seen", "last_seen", "direction_known", "connections"]
        cols += [c for s, d, _ in side_columns for c in (s, d)] + [c for c, _ in common_columns]
        return pd.DataFrame({c: [] for c in cols})

    ip_codes, ip_uniques = pd.factorize(
        np.concatenate([records["src_ip"].to_numpy(dtype=object), records["dst_ip"].to_numpy(dtype=object)])
    )
    ip_codes = ip_codes.astype(np.int64)
    sp = records["src_port"].to_numpy(dtype=np.int64)
    dp = records["dst_port"].to_numpy(dtype=np.int64)
    a = (ip_codes[:n] << _PORT_BITS) | (sp + 1)
    b = (ip_codes[n:] << _PORT_BITS) | (dp + 1)
    swap = a > b  # canonical order: the smaller (address code, port) is "lo"
    lo = np.where(swap, b, a)
    hi = np.where(swap, a, b)

    role = records["role"].to_numpy(dtype=np.int8)
    says_lo = ((role == ROLE_CLIENT) & ~swap) | ((role == ROLE_SERVER) & swap)
    says_hi = ((role == ROLE_CLIENT) & swap) | ((role == ROLE_SERVER) & ~swap)

    proto_codes, proto_uniques = pd.factorize(records["proto"].to_numpy(dtype=object))
    verdict_codes, verdict_uniques = pd.factorize(records["verdict"].to_numpy(dtype=object))
    pv = proto_codes.astype(np.int64) * max(len(verdict_uniques), 1) + verdict_codes

    frame: dict[str, np.ndarray] = {
        "lo": lo, "hi": hi, "pv": pv,
        "says_lo": says_lo.astype(np.int64), "says_hi": says_hi.astype(np.int64),
        "packets": records["packets"].to_numpy(dtype=np.int64),
        "bytes": records["bytes"].to_numpy(dtype=np.int64),
        "first_seen": records["first_seen"].to_numpy(dtype="float64"),
        "last_seen": records["last_seen"].to_numpy(dtype="float64"),
    }
    aggs: dict[str, tuple[str, str]] = {
        "says_lo": ("says_lo", "sum"), "says_hi": ("says_hi", "sum"),
        "packets": ("packets", "sum"), "bytes": ("bytes", "sum"),
        "first_seen": ("first_seen", "min"), "last_seen": ("last_seen", "max"),
    }
    decoders: dict[str, tuple[np.ndarray, object]] = {}
    for i, (src_col, dst_col, empty) in enumerate(side_columns):
        sv = records[src_col].to_numpy()
        dv = records[dst_col].to_numpy()
        codes, uniques = _codes_first_nonempty(np.concatenate([sv, dv]), empty)
        sc, dc = codes[:n], codes[n:]
        frame[f"lo_{i}"] = np.where(swap, dc, sc)
        frame[f"hi_{i}"] = np.where(swap, sc, dc)
        aggs[f"lo_{i}"] = (f"lo_{i}", "first")
        aggs[f"hi_{i}"] = (f"hi_{i}", "first")
        decoders[f"side_{i}"] = (uniques, empty)
    for j, (col, empty) in enumerate(common_columns):
        codes, uniques = _codes_first_nonempty(records[col].to_numpy(), empty)
        frame[f"common_{j}"] = codes
        aggs[f"common_{j}"] = (f"common_{j}", "first")
        decoders[f"common_{j}"] = (uniques, empty)

    g = pd.DataFrame(frame).groupby(["lo", "hi", "pv"], sort=False).agg(**aggs).reset_index()

    lo_g = g["lo"].to_numpy(dtype=np.int64)
    hi_g = g["hi"].to_numpy(dtype=np.int64)
    lo_ip = ip_uniques.take(lo_g >> _PORT_BITS) if hasattr(ip_uniques, "take") else ip_uniques[lo_g >> _PORT_BITS]
    hi_ip = ip_uniques.take(hi_g >> _PORT_BITS) if hasattr(ip_uniques, "take") else ip_uniques[hi_g >> _PORT_BITS]
    lo_ip = np.asarray(lo_ip, dtype=object)
    hi_ip = np.asarray(hi_ip, dtype=object)
    lo_port = (lo_g & _PORT_MASK) - 1
    hi_port = (hi_g & _PORT_MASK) - 1
    pv_g = g["pv"].to_numpy(dtype=np.int64)
    nv = max(len(verdict_uniques), 1)
    proto = np.asarray(proto_uniques, dtype=object)[pv_g // nv]
    verdict = np.asarray(verdict_uniques, dtype=object)[pv_g % nv]

    # Chunk-independent identity of each connection for the ledger.
    ip_hash = _hash_text(np.asarray(ip_uniques, dtype=object))
    e_lo = _mix(ip_hash[lo_g >> _PORT_BITS] ^ lo_port.astype(np.uint64))
    e_hi = _mix(ip_hash[hi_g >> _PORT_BITS] ^ hi_port.astype(np.uint64))
    lo_is_min = e_lo <= e_hi
    e_min = np.where(lo_is_min, e_lo, e_hi)
    e_max = np.where(lo_is_min, e_hi, e_lo)
    pv_hash = _mix(_hash_text(proto) ^ (_hash_text(verdict) << np.uint64(1)))
    keys = _mix(_mix(e_min) ^ (e_max * np.uint64(0x9E3779B97F4A7C15)) ^ pv_hash)

    s_lo = g["says_lo"].to_numpy()
    s_hi = g["says_hi"].to_numpy()
    known = (s_lo + s_hi) > 0
    client_lo = s_lo >= s_hi
    seen, stored = ledger.lookup(keys)
    from_ledger = ~known & (stored != 0)
    client_lo = np.where(from_ledger, (stored == 1) == lo_is_min, client_lo)
    undecided = ~known & ~from_ledger
    client_lo = np.where(undecided, dst_is_server(lo_port, hi_port), client_lo)
    # what this chunk learnt, relative to the smaller-hash endpoint
    orient = np.where(known, np.where(client_lo == lo_is_min, 1, -1), 0).astype(np.int8)
    ledger.record(keys, orient)

    out: dict[str, np.ndarray] = {
        "src_ip": np.where(client_lo, lo_ip, hi_ip),
        "dst_ip": np.where(client_lo, hi_ip, lo_ip),
        "src_port": np.where(client_lo, lo_port, hi_port),
        "dst_port": np.where(client_lo, hi_port, lo_port),
        "proto": proto,
        "verdict": verdict,
        "packets": g["packets"].to_numpy(),
        "bytes": g["bytes"].to_numpy(),
        "first_seen": g["first_seen"].to_numpy(),
        "last_seen": g["last_seen"].to_numpy(),
        "direction_known": known | from_ledger,
        "connections": (~seen).astype(np.int64),
    }
    for i, (src_col, dst_col, _empty) in enumerate(side_columns):
        uniques, empty = decoders[f"side_{i}"]
        lo_v = _decode(g[f"lo_{i}"].to_numpy(dtype="float64"), uniques, empty)
        hi_v = _decode(g[f"hi_{i}"].to_numpy(dtype="float64"), uniques, empty)
        out[src_col] = np.where(client_lo, lo_v, hi_v)
        out[dst_col] = np.where(client_lo, hi_v, lo_v)
    for j, (col, _empty) in enumerate(common_columns):
        uniques, empty = decoders[f"common_{j}"]
        out[col] = _decode(g[f"common_{j}"].to_numpy(dtype="float64"), uniques, empty)
    return pd.DataFrame(out)


SIDE_PAIRS = (
    ("src_ip", "dst_ip"), ("src_port", "dst_port"), ("src_namespace", "dst_namespace"),
    ("src_pod", "dst_pod"), ("src_labels", "dst_labels"), ("src_workload", "dst_workload"),
)


def orient_unknown(flows: pd.DataFrame) -> pd.DataFrame:
    """Swap rows with ``direction_known`` false whose port rule says the source is the server.

    For row-per-connection sources (CSV) that do not fold: every src_/dst_ pair moves together.
    """
    unknown = ~flows["direction_known"].to_numpy(dtype=bool)
    if not unknown.any():
        return flows
    swap = unknown & ~dst_is_server(flows["src_port"].to_numpy(), flows["dst_port"].to_numpy())
    if not swap.any():
        return flows
    flows = flows.copy()
    for a, b in SIDE_PAIRS:
        if a in flows.columns and b in flows.columns:
            va, vb = flows[a].to_numpy(), flows[b].to_numpy()
            flows[a] = np.where(swap, vb, va)
            flows[b] = np.where(swap, va, vb)
    return flows
