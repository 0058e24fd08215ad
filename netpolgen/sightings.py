"""One connection, many sightings: merge what several capture points saw of the same connection.

``tcpdump -i any`` on every node sees a connection on the client's node and on the server's
node (and a flow log has a record at each end). Rows of different sources with the same
unordered 5-tuple are one connection: counted once, with the packet and byte counts of the
sighting that saw the most (each saw the same packets), the widest time span, and the direction
of any sighting that saw the handshake. Rows without a source port (flow logs that aggregate
over client ports) cannot be matched this way and pass through unchanged.

Clock skew between nodes does not matter here: matching is by 5-tuple, not by time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from netpolgen.flows import normalize_flows

_TUPLE = ["_a_ip", "_a_port", "_b_ip", "_b_port", "proto"]


def merge_sightings(flows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Return (flows with cross-source duplicates merged, number of rows merged away)."""
    if flows.empty or flows["source"].nunique() < 2:
        return flows, 0
    has_ports = (flows["src_port"].to_numpy() > 0) & (flows["dst_port"].to_numpy() > 0)
    matchable = flows[has_ports]
    rest = flows[~has_ports]
    src_first = (matchable["src_ip"].to_numpy().astype(str), matchable["src_port"].to_numpy())
    dst = (matchable["dst_ip"].to_numpy().astype(str), matchable["dst_port"].to_numpy())
    a_is_src = (src_first[0] < dst[0]) | ((src_first[0] == dst[0]) & (src_first[1] <= dst[1]))
    keyed = matchable.assign(
        _a_ip=np.where(a_is_src, src_first[0], dst[0]),
        _a_port=np.where(a_is_src, src_first[1], dst[1]),
        _b_ip=np.where(a_is_src, dst[0], src_first[0]),
        _b_port=np.where(a_is_src, dst[1], src_first[1]),
    )
    n_groups = keyed.groupby(_TUPLE, sort=False).ngroups
    if n_groups == len(keyed):
        return flows, 0
    # Prefer the sighting that saw the handshake, then the one with the most packets: its
    # orientation and metadata are kept; counts and times are combined across all sightings.
    ordered = keyed.sort_values(["direction_known", "packets"], ascending=[False, False], kind="stable")
    best = ordered.drop_duplicates(_TUPLE, keep="first").set_index(_TUPLE)
    agg = keyed.groupby(_TUPLE, sort=False).agg(
        packets=("packets", "max"), bytes=("bytes", "max"), connections=("connections", "max"),
        first_seen=("first_seen", "min"), last_seen=("last_seen", "max"),
    )
    best[["packets", "bytes", "connections", "first_seen", "last_seen"]] = agg.loc[best.index]
    merged = best.reset_index().drop(columns=["_a_ip", "_a_port", "_b_ip", "_b_port"])
    out = normalize_flows(pd.concat([merged, rest], ignore_index=True))
    return out, len(flows) - len(out)
