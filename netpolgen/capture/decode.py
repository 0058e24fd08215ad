"""Packets → connection-relevant fields, vectorised, with overlay decapsulation.

For a batch, every packet ends as either *decoded* (IP version, addresses, protocol, ports, a
handshake mark, IP length) or with a *fate* that says why not: not IP, cut short, a non-first
fragment, an encapsulation we do not open, and so on. Tunnels (VXLAN on 4789/8472, Geneve on
6081, IP-in-IP, IPv6-in-IPv4) are opened and their inner packet decoded in another pass; the
outer packet is only counted. Nothing here loops over packets in Python, except over DNS
answers (UDP from port 53, header checked in bulk first), whose payloads are copied out for
``dnsnames`` to parse.

Bytes are the IP length of the (inner) packet: the IPv4 total length, or 40 + the IPv6 payload
length; a zero length field (TSO/jumbograms) falls back to the wire length minus the link header.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netpolgen.capture.batch import PacketBatch
from netpolgen.capture.gather import Gather
from netpolgen.capture.linklayer import DECODERS, ETH_IPV4, ETH_IPV6, ETH_TEB, LinkResult, ethernet

# Fates: why a packet did not become part of a connection.
DECODED = 0
NON_IP = 1
UNSUPPORTED_LINK = 2
TRUNCATED = 3
BAD_IP = 4
FRAGMENT = 5  # a non-first fragment: no ports to attribute it by
OTHER_PROTO = 6
UNKNOWN_ENCAP = 7
TOO_DEEP = 8
TUNNEL = 9  # an outer tunnel packet (its inner packet is decoded instead)

FATE_NAMES = {
    NON_IP: "not IP (ARP, LLDP, ...)",
    UNSUPPORTED_LINK: "unsupported link type",
    TRUNCATED: "headers cut short by the capture",
    BAD_IP: "invalid IP header",
    FRAGMENT: "non-first IP fragment (no ports; not attributable)",
    OTHER_PROTO: "IP protocol without ports (not TCP/UDP/SCTP/ICMP)",
    UNKNOWN_ENCAP: "unknown or malformed encapsulation",
    TOO_DEEP: "tunnels nested too deep",
}
# Fates that lose traffic a policy might need: reported as skipped records.
SKIPPED_FATES = (UNSUPPORTED_LINK, TRUNCATED, BAD_IP, FRAGMENT, UNKNOWN_ENCAP, TOO_DEEP)

PROTO_ICMP, PROTO_IPIP, PROTO_TCP, PROTO_UDP, PROTO_IPV6, PROTO_GRE = 1, 4, 6, 17, 41, 47
PROTO_ICMPV6, PROTO_SCTP = 58, 132
VXLAN_PORTS = (4789, 8472)  # IANA, and the Linux kernel default that flannel uses
GENEVE_PORT = 6081
DNS_PORT = 53
DNS_HEADER_BYTES = 12
IPV6_EXT_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options (fragment: 44)
IPV6_FRAGMENT = 44
MAX_EXT_HEADERS = 8
MAX_DEPTH = 4  # tunnels inside tunnels

# Header layouts read in one gather each (big-endian fields as on the wire).
IPV4_HEADER = np.dtype([("vihl", "u1"), ("tos", "u1"), ("total", ">u2"), ("id", ">u2"), ("frag", ">u2"),
                        ("ttl", "u1"), ("proto", "u1"), ("csum", ">u2"), ("src", ">u4"), ("dst", ">u4")])
# The first 16 bytes after the IP header: ports for TCP/UDP/SCTP (type and code for ICMP),
# byte 8 and bytes 10-11 for the VXLAN/Geneve header after a UDP header, SCTP's first chunk type
# (byte 12) and TCP's flags (byte 13).
TRANSPORT_HEADER = np.dtype({"names": ["sport", "dport", "b0", "b8", "w10", "b12", "b13"],
                             "formats": [">u2", ">u2", "u1", "u1", ">u2", "u1", "u1"],
                             "offsets": [0, 2, 0, 8, 10, 12, 13], "itemsize": 16})

# Handshake marks: OPEN is the client's first word (TCP SYN without ACK, SCTP INIT, ICMP echo
# request); ANSWER is the server's (SYN-ACK, INIT-ACK, echo reply) and names the client as its
# receiver.
HS_NONE, HS_OPEN, HS_ANSWER = 0, 1, 2


@dataclass
class DecodeCounts:
    """What decoding saw besides connections, for SourceStats."""

    fates: dict[int, int] = field(default_factory=dict)
    fate_examples: dict[int, str] = field(default_factory=dict)  # fate -> where it first happened
    tunnels: dict[str, int] = field(default_factory=dict)  # "vxlan", "geneve", "ipip", "ip6in4"
    other_protos: dict[int, int] = field(default_factory=dict)
    unsupported_links: dict[int, int] = field(default_factory=dict)
    first_fragments: int = 0
    icmp: int = 0


@dataclass
class Decoded:
    """Decoded packets of one batch, in file order."""

    index: np.ndarray  # int64 position in the batch
    ver: np.ndarray  # uint8: 4 or 6
    src_hi: np.ndarray  # uint64 (0 for IPv4)
    src_lo: np.ndarray  # uint64 (the IPv4 address for IPv4)
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    proto: np.ndarray  # uint8
    sport: np.ndarray  # int64 (0 for ICMP)
    dport: np.ndarray
    hs: np.ndarray  # int8 handshake mark
    length: np.ndarray  # int64 IP bytes
    # UDP payloads from port 53 (DNS answers), in file order: the names they give addresses
    # label external peers. Few packets, so copied out as bytes.
    dns: list[bytes] = field(default_factory=list)


class _Out:
    """Per-batch output arrays filled pass by pass."""

    _DTYPES = {"ver": np.uint8, "src_hi": np.uint64, "src_lo": np.uint64, "dst_hi": np.uint64,
               "dst_lo": np.uint64, "proto": np.uint8, "sport": np.int64, "dport": np.int64,
               "hs": np.int8, "length": np.int64}

    def __init__(self, n: int) -> None:
        self.n = n
        self.fate = np.full(n, -1, np.int8)
        self.dns_spans: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (index, start, end)

    def note_dns(self, g: Gather, idx: np.ndarray, l4: np.ndarray, e: np.ndarray, udp: np.ndarray,
                 sport: np.ndarray) -> None:
        """Remember the payloads of UDP packets from port 53 that are DNS answers worth parsing:
        a whole header saying response (QR), no error and at least one answer record. The
        header is read here, for all of them at once: with search domains most lookups end in
        NXDOMAIN or an empty answer, and parsing those one by one would cost more than the
        rest of the capture."""
        dns = udp & (sport == DNS_PORT) & (e - l4 >= 8 + DNS_HEADER_BYTES)
        if not dns.any():
            return
        idx, start, e = idx[dns], l4[dns] + 8, e[dns]
        flags = g.u16(g.clamp(start + 2))
        answers = g.u16(g.clamp(start + 6))
        useful = ((flags & 0x8000) != 0) & ((flags & 0x000F) == 0) & (answers > 0)
        if useful.any():
            self.dns_spans.append((idx[useful], start[useful], e[useful]))

    def dns_payloads(self, buf: np.ndarray) -> list[bytes]:
        """The remembered payloads of packets that were decoded, in batch order."""
        if not self.dns_spans:
            return []
        spans: dict[int, tuple[int, int]] = {}
        for idx, start, stop in self.dns_spans:  # pass by pass: a tunnel's inner packet wins
            for i, a, b in zip(idx.tolist(), start.tolist(), stop.tolist(), strict=True):
                spans[i] = (a, b)
        return [buf[a:b].tobytes() for i, (a, b) in sorted(spans.items()) if self.fate[i] == DECODED]

    def __getattr__(self, name: str) -> np.ndarray:
        # A column is made (zeros) when first read or partly written: in the common block every
        # column is written whole, and then it is never allocated twice.
        dtype = self._DTYPES.get(name)
        if dtype is None:
            raise AttributeError(name)
        col = np.zeros(self.n, dtype)
        setattr(self, name, col)
        return col

    def put(self, name: str, idx: np.ndarray, values) -> None:
        """out.<name>[idx] = values; when idx covers the whole batch (it is then 0..n-1: index
        arrays here are always ascending subsets), the values simply become the column."""
        if len(idx) != self.n:
            getattr(self, name)[idx] = values
        elif np.ndim(values):
            setattr(self, name, np.asarray(values, dtype=self._DTYPES[name]))
        else:
            setattr(self, name, np.full(self.n, values, dtype=self._DTYPES[name]))


def decode(batch: PacketBatch, counts: DecodeCounts) -> Decoded:
    """Decode a batch; add what was not decoded to ``counts``."""
    n = len(batch)
    g = Gather(batch.buf)
    end = batch.data_off + batch.caplen
    out = _Out(n)
    link = _link_layer(g, batch, end, out, counts)
    good = ~link.short & (out.fate < 0)
    if good.all():
        idx, l3, et, e = np.arange(n), link.l3, link.ethertype, end
    else:
        out.fate[link.short & (out.fate < 0)] = TRUNCATED
        idx = np.flatnonzero(good)
        l3, et, e = link.l3[idx], link.ethertype[idx], end[idx]
    for depth in range(MAX_DEPTH + 1):
        if not len(idx):
            break
        if depth == MAX_DEPTH:
            out.fate[idx] = TOO_DEEP
            break
        idx, l3, et, e = _network(g, batch, idx, l3, et, e, out, counts)

    tally = np.bincount(out.fate.astype(np.int64) + 1, minlength=2)  # fate -1 never remains
    for fate in np.flatnonzero(tally[2:]) + 1:
        f = int(fate)
        counts.fates[f] = counts.fates.get(f, 0) + int(tally[f + 1])
        if f not in counts.fate_examples:
            counts.fate_examples[f] = batch.where(int(np.flatnonzero(out.fate == f)[0]))
    dns = out.dns_payloads(batch.buf)
    if tally[DECODED + 1] == n:
        return Decoded(np.arange(n), out.ver, out.src_hi, out.src_lo, out.dst_hi, out.dst_lo,
                       out.proto, out.sport, out.dport, out.hs, out.length, dns)
    ok = np.flatnonzero(out.fate == DECODED)
    return Decoded(ok, out.ver[ok], out.src_hi[ok], out.src_lo[ok], out.dst_hi[ok], out.dst_lo[ok],
                   out.proto[ok], out.sport[ok], out.dport[ok], out.hs[ok], out.length[ok], dns)


def _link_layer(g: Gather, batch: PacketBatch, end: np.ndarray, out: _Out, counts: DecodeCounts) -> LinkResult:
    lt = batch.linktype
    n = len(batch)
    if n and lt[0] == lt[-1] and (lt == lt[0]).all():
        groups = [(int(lt[0]), np.arange(n))]
    else:
        groups = [(int(k), np.flatnonzero(lt == k)) for k in np.unique(lt)]
    if len(groups) == 1 and groups[0][0] in DECODERS:
        return DECODERS[groups[0][0]](g, batch.data_off, end)
    l3 = np.zeros(n, np.int64)
    et = np.zeros(n, np.int64)
    short = np.zeros(n, bool)
    for linktype, sel in groups:
        fn = DECODERS.get(linktype)
        if fn is None:
            out.fate[sel] = UNSUPPORTED_LINK
            counts.unsupported_links[linktype] = counts.unsupported_links.get(linktype, 0) + len(sel)
            continue
        r = fn(g, batch.data_off[sel], end[sel])
        l3[sel], et[sel], short[sel] = r.l3, r.ethertype, r.short
    return LinkResult(l3, et, short)


def _network(g: Gather, batch: PacketBatch, idx: np.ndarray, l3: np.ndarray, et: np.ndarray,
             e: np.ndarray, out: _Out, counts: DecodeCounts):
    """One pass: IP and transport for packets whose network header is at ``l3`` (and whose
    bytes end at ``e``). Returns the tunnelled packets' (index, inner network offset, inner
    ethertype, end) for the next pass."""
    is4, is6 = et == ETH_IPV4, et == ETH_IPV6
    if is4.all():  # the common case: no selection to make
        return _transport(g, *_ipv4(g, batch, idx, l3, e, out, counts), out, counts)
    out.fate[idx[~(is4 | is6)]] = NON_IP
    parts = []
    for sel, fn in ((is4, _ipv4), (is6, _ipv6)):
        if sel.any():
            parts.append(fn(g, batch, idx[sel], l3[sel], e[sel], out, counts))
    if not parts:
        return idx[:0], l3[:0], et[:0], e[:0]
    if len(parts) == 1:
        return _transport(g, *parts[0], out, counts)
    # Transport decoding wants ascending batch indices (see _Out.put): merge the two lists.
    ip_idx = np.concatenate([p[0] for p in parts])
    order = np.argsort(ip_idx, kind="stable")
    l4 = np.concatenate([p[1] for p in parts])[order]
    ip_end = np.concatenate([p[2] for p in parts])[order]
    return _transport(g, ip_idx[order], l4, ip_end, out, counts)


def _ipv4(g: Gather, batch: PacketBatch, idx: np.ndarray, l3: np.ndarray, e: np.ndarray,
          out: _Out, counts: DecodeCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = g.clamp(l3, 24)
    h = g.struct(c, IPV4_HEADER)
    vihl = h["vihl"]
    total = h["total"].astype(np.int64)
    frag = h["frag"].astype(np.uint16)
    if ((vihl == 0x45) & (total >= 20) & (l3 + 20 <= e) & ((frag & 0x3FFF) == 0)).all():
        # The common block: 20-byte headers, whole, with a length, no fragments (DF aside):
        # none of the checks below can fail.
        ihl: int | np.ndarray = 20
    else:
        ihl = (vihl & 0x0F).astype(np.int64) * 4
        # In order: nothing there; not version 4; no whole fixed header; a header length or
        # (non-zero: zero is legal with TSO) total length that cannot be; options cut off.
        empty = l3 >= e
        bad = ~empty & ((vihl >> 4) != 4)
        short20 = ~empty & ~bad & (l3 + 20 > e)
        bad |= ~empty & ~short20 & ((ihl < 20) | ((total > 0) & (total < ihl)))
        cut = empty | short20 | (~bad & (l3 + ihl > e))
        nonfirst = ~bad & ~cut & ((frag & 0x1FFF) > 0)
        ok = ~(bad | cut | nonfirst)
        if not ok.all():
            out.fate[idx[bad]] = BAD_IP
            out.fate[idx[cut]] = TRUNCATED
            out.fate[idx[nonfirst]] = FRAGMENT
            idx, l3, h, ihl, total, e, frag = idx[ok], l3[ok], h[ok], ihl[ok], total[ok], e[ok], frag[ok]
        counts.first_fragments += int(np.count_nonzero(frag & 0x2000))
    out.put("ver", idx, 4)
    out.put("src_hi", idx, 0)  # this slot may hold an outer IPv6 header's address
    out.put("dst_hi", idx, 0)
    out.put("src_lo", idx, h["src"])
    out.put("dst_lo", idx, h["dst"])
    out.put("proto", idx, h["proto"])
    # The transport header ends where the IP packet does, not at the capture's end (Ethernet
    # pads short frames; what follows the IP packet is not part of it).
    ip_end = np.minimum(e, l3 + total)
    tso = total == 0
    if tso.any():
        fallback = batch.origlen[idx] - (l3 - batch.data_off[idx])
        total = np.where(tso, fallback, total)
        ip_end = np.where(tso, e, ip_end)
    out.put("length", idx, total)
    return idx, l3 + ihl, ip_end


def _ipv6(g: Gather, batch: PacketBatch, idx: np.ndarray, l3: np.ndarray, e: np.ndarray,
          out: _Out, counts: DecodeCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = g.clamp(l3)
    empty = l3 >= e
    bad = ~empty & ((g.u8(c) >> 4) != 6)
    cut = empty | (~bad & (l3 + 40 > e))
    out.fate[idx[bad]] = BAD_IP
    out.fate[idx[cut]] = TRUNCATED
    ok = ~(bad | cut)
    idx, l3, c, e = idx[ok], l3[ok], c[ok], e[ok]
    out.put("ver", idx, 6)
    out.put("src_hi", idx, g.u64(c + 8))
    out.put("src_lo", idx, g.u64(c + 16))
    out.put("dst_hi", idx, g.u64(c + 24))
    out.put("dst_lo", idx, g.u64(c + 32))
    plen = g.u16(c + 4).astype(np.int64)
    fallback = batch.origlen[idx] - (l3 - batch.data_off[idx])
    out.put("length", idx, np.where(plen > 0, plen + 40, fallback))
    nh = g.u8(c + 6).astype(np.int64)
    # A zero payload length means a jumbogram only with a hop-by-hop header; otherwise nothing.
    e = np.where((plen > 0) | (nh != 0), np.minimum(e, l3 + 40 + plen), e)
    l4 = l3 + 40
    # Extension headers: a few masked passes over the packets that still have one.
    live = np.ones(len(idx), bool)
    for _ in range(MAX_EXT_HEADERS):
        ext = live & np.isin(nh, IPV6_EXT_HEADERS)
        fr = live & (nh == IPV6_FRAGMENT)
        if not (ext.any() or fr.any()):
            break
        short = (ext & (l4 + 2 > e)) | (fr & (l4 + 8 > e))
        out.fate[idx[short]] = TRUNCATED
        live &= ~short
        ext &= live
        fr &= live
        cl = g.clamp(l4)
        nxt = g.u8(cl).astype(np.int64)
        hlen = np.where(fr, 8, (g.u8(g.clamp(l4 + 1)).astype(np.int64) + 1) * 8)
        fo = g.u16(g.clamp(l4 + 2)).astype(np.int64)
        nonfirst = fr & ((fo >> 3) > 0)
        out.fate[idx[nonfirst]] = FRAGMENT
        live &= ~nonfirst
        counts.first_fragments += int((fr & live & ((fo & 1) == 1)).sum())
        step = live & (ext | fr)
        nh = np.where(step, nxt, nh)
        l4 = np.where(step, l4 + hlen, l4)
    idx, l4, nh, e = idx[live], l4[live], nh[live], e[live]
    out.put("proto", idx, nh)
    return idx, l4, e


def _tcp_udp_only(idx: np.ndarray, tcp: np.ndarray, room: np.ndarray, sport: np.ndarray, dport: np.ndarray,
                  flags: np.ndarray, out: _Out) -> None:
    """``_transport`` for packets that are all TCP or UDP, none of them to a tunnel port (the
    common block): no tunnels, no other protocols, only cut-off headers and TCP's marks."""
    cut = room < np.where(tcp, 20, 8)
    if cut.any():
        out.fate[idx[cut]] = TRUNCATED
        done = ~cut
        idx, tcp, sport, dport, flags = idx[done], tcp[done], sport[done], dport[done], flags[done]
    out.fate[idx] = DECODED
    syn_ack = flags & 0x12
    hs = np.where(syn_ack == 0x02, HS_OPEN, np.where(syn_ack == 0x12, HS_ANSWER, HS_NONE))
    out.put("sport", idx, sport)
    out.put("dport", idx, dport)
    out.put("hs", idx, np.where(tcp, hs, HS_NONE).astype(np.int8))


def _transport(g: Gather, idx: np.ndarray, l4: np.ndarray, e: np.ndarray, out: _Out,
               counts: DecodeCounts):
    proto = out.proto[idx]
    # Wide reads: the two ports (ICMP: type and code), bytes 8-11 (VXLAN flags, Geneve
    # version/option length and protocol), bytes 12-13 (SCTP first chunk type, TCP flags).
    h = g.struct(g.clamp(l4, 16), TRANSPORT_HEADER)
    sport = h["sport"].astype(np.int64)
    dport = h["dport"].astype(np.int64)
    b0 = h["b0"]  # ICMP: type
    b12 = h["b12"]  # SCTP: first chunk type
    b13 = h["b13"]  # TCP: flags
    tb8 = h["b8"]  # VXLAN flags; Geneve version and option length
    gtype = h["w10"].astype(np.uint16)  # Geneve protocol

    tcp, udp = proto == PROTO_TCP, proto == PROTO_UDP
    out.note_dns(g, idx, l4, e, udp, sport)  # kept only if the packet ends up decoded
    if (tcp | udp).all() and not (udp & ((dport == VXLAN_PORTS[0]) | (dport == VXLAN_PORTS[1])
                                         | (dport == GENEVE_PORT))).any():
        _tcp_udp_only(idx, tcp, e - l4, sport, dport, h["b13"], out)
        return idx[:0], l4[:0], l4[:0], e[:0]
    sctp = proto == PROTO_SCTP
    icmp = (proto == PROTO_ICMP) | (proto == PROTO_ICMPV6)
    room = e - l4
    cut = (tcp & (room < 20)) | (udp & (room < 8)) | (sctp & (room < 12)) | (icmp & (room < 4))
    out.fate[idx[cut]] = TRUNCATED

    # Tunnels carried over UDP.
    vx = udp & ~cut & ((dport == VXLAN_PORTS[0]) | (dport == VXLAN_PORTS[1]))
    gn = udp & ~cut & (dport == GENEVE_PORT)
    tun_cut = (vx | gn) & (l4 + 16 > e)
    out.fate[idx[tun_cut]] = TRUNCATED
    vx &= ~tun_cut
    gn &= ~tun_cut
    vx_ok = vx & ((tb8 & 0x08) != 0)  # the VNI-valid flag
    gn_ok = gn & ((tb8 >> 6) == 0) & ((gtype == ETH_TEB) | (gtype == ETH_IPV4) | (gtype == ETH_IPV6))
    ipip = proto == PROTO_IPIP
    six4 = proto == PROTO_IPV6
    unknown_encap = (vx & ~vx_ok) | (gn & ~gn_ok) | (proto == PROTO_GRE)
    out.fate[idx[unknown_encap]] = UNKNOWN_ENCAP
    tunnel = vx_ok | gn_ok | ipip | six4
    other = ~(tcp | udp | sctp | icmp | tunnel | unknown_encap)
    if other.any():
        out.fate[idx[other]] = OTHER_PROTO
        for p, k in zip(*np.unique(proto[other], return_counts=True), strict=True):
            counts.other_protos[int(p)] = counts.other_protos.get(int(p), 0) + int(k)

    done = (tcp | udp | sctp | icmp) & ~cut & ~tun_cut & ~tunnel & ~unknown_encap
    di = idx[done]
    out.fate[di] = DECODED
    flags = b13[done]
    hs = np.where((flags & 0x12) == 0x02, HS_OPEN, np.where((flags & 0x12) == 0x12, HS_ANSWER, HS_NONE))
    hs = np.where(tcp[done], hs, HS_NONE).astype(np.int8)
    sp, dp = sport[done], dport[done]
    if sctp.any() or icmp.any():
        s_, i4, i6 = sctp[done], (proto == PROTO_ICMP)[done], (proto == PROTO_ICMPV6)[done]
        counts.icmp += int(np.count_nonzero(i4 | i6))
        chunk = np.where(l4[done] + 13 <= e[done], b12[done], 0)  # no chunk byte: no mark
        ity = b0[done]
        hs[(s_ & (chunk == 1)) | (i4 & (ity == 8)) | (i6 & (ity == 128))] = HS_OPEN
        hs[(s_ & (chunk == 2)) | (i4 & (ity == 0)) | (i6 & (ity == 129))] = HS_ANSWER
        sp = np.where(i4 | i6, 0, sp)  # ICMP has no ports
        dp = np.where(i4 | i6, 0, dp)
    out.put("sport", di, sp)
    out.put("dport", di, dp)
    out.put("hs", di, hs)
    if not tunnel.any():
        return idx[:0], l4[:0], l4[:0], e[:0]

    # The next pass: inner packets of the tunnels.
    out.fate[idx[tunnel]] = TUNNEL
    for name, m in (("vxlan", vx_ok), ("geneve", gn_ok), ("ipip", ipip), ("ip6in4", six4)):
        k = int(np.count_nonzero(m))
        if k:
            counts.tunnels[name] = counts.tunnels.get(name, 0) + k
    ti = idx[tunnel]
    t4, tb, gt = l4[tunnel], tb8[tunnel], gtype[tunnel]
    vx_t, gn_t, ipip_t = vx_ok[tunnel], gn_ok[tunnel], ipip[tunnel]  # the rest (6in4) carry IPv6
    start = np.select([vx_t, gn_t], [t4 + 16, t4 + 16 + (tb & 0x3F).astype(np.int64) * 4], t4)
    eth = vx_t | (gn_t & (gt == ETH_TEB))
    v4 = ipip_t | (gn_t & (gt == ETH_IPV4))
    te = e[tunnel]
    l3 = start.copy()
    et = np.where(v4, ETH_IPV4, ETH_IPV6).astype(np.int64)
    short = np.zeros(len(ti), bool)
    if eth.any():
        r = ethernet(g, start[eth], te[eth])
        l3[eth], et[eth], short[eth] = r.l3, r.ethertype, r.short
    short |= l3 >= te
    out.fate[ti[short]] = TRUNCATED
    # A tunnel's own fate stays TUNNEL only until its inner packet gets one of its own.
    keep = ~short
    return ti[keep], l3[keep], et[keep], te[keep]
