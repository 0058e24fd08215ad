"""The provisional direction rule shared by every source, for connections whose client side was
not seen (no SYN, no is_reply, UDP).

The server is the side on a well-known service port (53 for DNS above all), otherwise the side
with the lower port: clients pick ephemeral ports (32768+ on Linux) above the service's. The
resolver later re-orients such rows when the inventory knows one side's port as a container or
Service port, which is the stronger evidence.
"""

from __future__ import annotations

import numpy as np

# Ports that are servers whatever the other side uses (DNS clients sometimes bind low ports).
ALWAYS_SERVER_PORTS = np.array([53, 5353], dtype=np.int64)


def dst_is_server(src_port: np.ndarray, dst_port: np.ndarray) -> np.ndarray:
    """Boolean array: True where the row's destination should be read as the server."""
    sp = np.asarray(src_port, dtype=np.int64)
    dp = np.asarray(dst_port, dtype=np.int64)
    src_special = np.isin(sp, ALWAYS_SERVER_PORTS)
    dst_special = np.isin(dp, ALWAYS_SERVER_PORTS)
    lower = dp <= sp
    return np.where(dst_special, True, np.where(src_special, False, lower))


def orient(src_ip: np.ndarray, dst_ip: np.ndarray, src_port: np.ndarray, dst_port: np.ndarray):
    """Swap sides so that dst is the provisional server; returns (src_ip, dst_ip, src_port, dst_port)."""
    keep = dst_is_server(src_port, dst_port)
    return (
        np.where(keep, src_ip, dst_ip),
        np.where(keep, dst_ip, src_ip),
        np.where(keep, src_port, dst_port),
        np.where(keep, dst_port, src_port),
    )
