"""Link layers, vectorised: from each packet's first byte to its IP header.

Every function takes absolute ``start``/``end`` offsets (end = first byte not captured) for a
set of packets and returns ``LinkResult``: where the network header starts, its ethertype
(``ETH_IPV4``/``ETH_IPV6`` for IP, anything else is not IP), and which packets were cut short
before the link header ended. Variable-length parts (VLAN stacks, MPLS labels, NFLOG TLVs) are
handled with a few masked passes over the packets that still have one more tag to skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from netpolgen.capture.gather import Gather

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_TEB = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows (Geneve, GRE)
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad (QinQ outer), pre-standard QinQ
MAX_TAGS = 8

# Link types (www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_NFLOG = 239
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW's number differs between platforms; old files carry it as the link type.
RAW_ALIASES = (12, 14)

# BSD loopback address families: AF_INET everywhere, AF_INET6 differs by OS.
AF_INET = 2
AF_INET6_ALL = (10, 23, 24, 28, 30)

NFULA_PAYLOAD = 9
NFLOG_MAX_TLVS = 32


@dataclass
class LinkResult:
    l3: np.ndarray  # int64 offset of the network header
    ethertype: np.ndarray  # int64; ETH_IPV4 / ETH_IPV6 for IP
    short: np.ndarray  # bool: the link header itself is not all captured


def ethernet(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    """Ethernet II with any stack of VLAN tags and MPLS labels."""
    short = start + 14 > end
    et = g.u16(g.clamp(start + 12)).astype(np.int64)
    return _tags(g, LinkResult(start + 14, et, short), end)


def linux_sll(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    """Linux cooked v1: 16-byte header, protocol in its last two bytes."""
    short = start + 16 > end
    et = g.u16(g.clamp(start + 14)).astype(np.int64)
    return _tags(g, LinkResult(start + 16, et, short), end)


def linux_sll2(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    """Linux cooked v2 (``tcpdump -i any`` since libpcap 1.10): 20 bytes, protocol first."""
    short = start + 20 > end
    et = g.u16(g.clamp(start)).astype(np.int64)
    return _tags(g, LinkResult(start + 20, et, short), end)


def raw_ip(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    """No link header: the IP version nibble says which IP."""
    return LinkResult(start.copy(), _by_version(g, start), start + 1 > end)


def ipv4_only(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    return LinkResult(start.copy(), np.full(len(start), ETH_IPV4, np.int64), start + 1 > end)


def ipv6_only(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    return LinkResult(start.copy(), np.full(len(start), ETH_IPV6, np.int64), start + 1 > end)


def bsd_null(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    """BSD loopback: a 4-byte address family in the *capturing host's* byte order."""
    fam = g.u32(g.clamp(start), "<").astype(np.int64)
    swapped = fam > 0xFFFF  # written by a big-endian host
    fam[swapped] = g.u32(g.clamp(start[swapped]), ">").astype(np.int64)
    return LinkResult(start + 4, _by_family(fam), start + 4 > end)


def bsd_loop(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    """OpenBSD loopback: the address family in network byte order."""
    fam = g.u32(g.clamp(start), ">").astype(np.int64)
    return LinkResult(start + 4, _by_family(fam), start + 4 > end)


def nflog(g: Gather, start: np.ndarray, end: np.ndarray) -> LinkResult:
    """Linux NFLOG: a 4-byte header (family first), then TLVs (little-endian length and type,
    padded to 4 bytes); the packet is the value of the NFULA_PAYLOAD TLV."""
    fam = g.u8(g.clamp(start)).astype(np.int64)
    et = np.where(fam == AF_INET, ETH_IPV4, np.where(fam == 10, ETH_IPV6, 0)).astype(np.int64)
    l3 = np.full(len(start), -1, np.int64)
    short = start + 4 > end
    pos = start + 4
    todo = np.flatnonzero(~short)
    for _ in range(NFLOG_MAX_TLVS):
        if not len(todo):
            break
        p = pos[todo]
        cut = p + 4 > end[todo]
        tlen = g.u16(g.clamp(p), "<").astype(np.int64)
        ttype = g.u16(g.clamp(p + 2), "<").astype(np.int64) & 0x7FFF
        cut |= tlen < 4
        found = ~cut & (ttype == NFULA_PAYLOAD)
        l3[todo[found]] = p[found] + 4
        short[todo[cut]] = True
        step = ~cut & ~found
        pos[todo[step]] = p[step] + ((tlen[step] + 3) & ~3)
        todo = todo[step]
    short[l3 < 0] = True  # no payload TLV: nothing to decode
    return LinkResult(np.maximum(l3, start), et, short)


def _by_version(g: Gather, at: np.ndarray) -> np.ndarray:
    v = g.u8(g.clamp(at)) >> 4
    return np.where(v == 4, ETH_IPV4, np.where(v == 6, ETH_IPV6, 0)).astype(np.int64)


def _by_family(fam: np.ndarray) -> np.ndarray:
    return np.where(fam == AF_INET, ETH_IPV4, np.where(np.isin(fam, AF_INET6_ALL), ETH_IPV6, 0)).astype(np.int64)


def _tags(g: Gather, r: LinkResult, end: np.ndarray) -> LinkResult:
    """Skip VLAN tags (any depth, any TPID order) and MPLS label stacks after an ethertype."""
    l3, et, short = r.l3, r.ethertype, r.short
    for _ in range(MAX_TAGS):
        tagged = np.flatnonzero(((et == 0x8100) | (et == 0x88A8) | (et == 0x9100)) & ~short)
        if not len(tagged):
            break
        short[tagged] |= l3[tagged] + 4 > end[tagged]
        et[tagged] = g.u16(g.clamp(l3[tagged] + 2))
        l3[tagged] += 4
    mpls = np.flatnonzero(((et == 0x8847) | (et == 0x8848)) & ~short)
    for _ in range(MAX_TAGS):
        if not len(mpls):
            break
        cut = l3[mpls] + 4 > end[mpls]
        short[mpls[cut]] = True
        mpls = mpls[~cut]
        bottom = (g.u8(g.clamp(l3[mpls] + 2)) & 0x01).astype(bool)
        l3[mpls] += 4
        done = mpls[bottom]
        # Below the label stack MPLS does not say what follows; IP is told by its version.
        et[done] = _by_version(g, l3[done])
        short[done] |= l3[done] + 1 > end[done]
        mpls = mpls[~bottom]
    et[mpls] = 0  # a label stack deeper than MAX_TAGS: not decoded
    return LinkResult(l3, et, short)


DECODERS: dict[int, Callable[[Gather, np.ndarray, np.ndarray], LinkResult]] = {
    LINKTYPE_NULL: bsd_null,
    LINKTYPE_ETHERNET: ethernet,
    LINKTYPE_RAW: raw_ip,
    RAW_ALIASES[0]: raw_ip,
    RAW_ALIASES[1]: raw_ip,
    LINKTYPE_LOOP: bsd_loop,
    LINKTYPE_LINUX_SLL: linux_sll,
    LINKTYPE_IPV4: ipv4_only,
    LINKTYPE_IPV6: ipv6_only,
    LINKTYPE_NFLOG: nflog,
    LINKTYPE_LINUX_SLL2: linux_sll2,
}
