"""A slow, per-packet reference for the pcap source, built on scapy, for tests.

It reads records with scapy's readers (``RawPcapReader``/``RawPcapNgReader``), dissects link
and IP headers with scapy's layer classes, and tracks connections in a plain dict: an
implementation that shares no code with ``netpolgen.capture`` except the written rules (which
packets count, which side is the client; ``portrules`` for the provisional direction). Tests
require both to produce identical flow tables on every sample and on generated captures.

Where scapy is silent or differs from the rules, this module states the rule itself:
- link types scapy does not dissect, or dissects for one OS only: BSD NULL/LOOP (address
  family in either byte order and every AF_INET6 value) and NFLOG (TLVs) are read here;
- scapy does not bind TPID 0x9100 or MPLS 0x8848; they are bound when the reference loads;
- a record cut short by the end of the file is dropped (scapy returns the partial bytes);
- a pcapng Simple Packet Block on an interface whose snaplen is 0 ("no limit") keeps its bytes
  (scapy takes min(wirelen, snaplen) and so returns none).
Not covered (scapy does not read them): pcapng if_tsoffset; sections of a pcapng version other
than 1 (scapy stops reading at one; the source skips the section, tested separately).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

from netpolgen.flows import IP_PROTO_NAMES, VERDICT_UNKNOWN
from netpolgen.portrules import dst_is_server

VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
VXLAN_PORTS = (4789, 8472)
GENEVE_PORT = 6081
MAX_DEPTH = 4
IPV6_AF = (10, 23, 24, 28, 30)

_bound = False


def _scapy():
    """Import scapy's layers once, binding the few ethertypes it leaves out."""
    global _bound
    from scapy.contrib.geneve import GENEVE
    from scapy.contrib.mpls import MPLS
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
    from scapy.layers.sctp import SCTP
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import bind_layers

    if not _bound:
        for lower in (Ether, Dot1Q, Dot1AD):
            bind_layers(lower, Dot1Q, type=0x9100)
            bind_layers(lower, MPLS, type=0x8848)
        for lower in (CookedLinux, CookedLinuxV2):
            bind_layers(lower, Dot1AD, proto=0x88A8)
            bind_layers(lower, Dot1Q, proto=0x9100)
            bind_layers(lower, MPLS, proto=0x8847)
        _bound = True
    return dict(GENEVE=GENEVE, MPLS=MPLS, ICMP=ICMP, IP=IP, TCP=TCP, UDP=UDP, IPv6=IPv6,
                EXT=(IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting, IPv6ExtHdrDestOpt),
                FRAG=IPv6ExtHdrFragment, CookedLinux=CookedLinux, CookedLinuxV2=CookedLinuxV2,
                Dot1AD=Dot1AD, Dot1Q=Dot1Q, Ether=Ether, SCTP=SCTP, VXLAN=VXLAN)


@dataclass
class Record:
    linktype: int
    data: bytes
    wirelen: int
    ts_ns: int | None


def read_records(path: str) -> Iterator[Record]:
    """Every whole packet record, with scapy's readers."""
    from scapy.utils import RawPcapReader

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"\x0a\x0d\x0d\x0a":
        reader = _pcapng_reader(path)
        try:
            for data, meta in reader:
                ts = None
                if meta.tshigh is not None:
                    ticks = (meta.tshigh << 32) + meta.tslow
                    ts = ticks * 1_000_000_000 // meta.tsresol
                yield Record(meta.linktype, data, meta.wirelen, ts)
        finally:
            reader.close()
        return
    reader = RawPcapReader(path)
    try:
        nano = getattr(reader, "nano", False)
        linktype = reader.linktype & 0x0FFFFFFF
        for data, meta in reader:
            if len(data) < meta.caplen:
                break  # the file ends inside this record
            frac = meta.usec if nano else meta.usec * 1000
            yield Record(linktype, data, meta.wirelen, meta.sec * 1_000_000_000 + frac)
    finally:
        reader.close()


def _pcapng_reader(path: str):
    from scapy.utils import RawPcapNgReader

    class SnaplenZeroSpbReader(RawPcapNgReader):
        def _read_block_spb(self, block, size):  # type: ignore[no-untyped-def]
            res = super()._read_block_spb(block, size)
            if res is not None and self.interfaces and self.interfaces[0][1] == 0:
                data, meta = res
                return block[4 : 4 + meta.wirelen][:size], meta
            return res

    return SnaplenZeroSpbReader(path)


# -- decoding ----------------------------------------------------------------------------------


@dataclass
class Decoded:
    ver: int
    src: int
    dst: int
    proto: int
    sport: int
    dport: int
    hs: int  # 0 none, 1 opening (SYN, INIT, echo request), 2 answer (SYN-ACK, INIT-ACK, echo reply)
    length: int


@dataclass
class Outcome:
    fate: str  # "decoded" or a counter name
    packet: Decoded | None = None
    tunnels: list[str] = field(default_factory=list)
    first_fragment: bool = False
    icmp: bool = False
    other_proto: int = 0
    dns: bytes | None = None  # the UDP payload of a decoded packet from port 53


def decode_record(rec: Record) -> Outcome:
    out = Outcome("decoded")
    found = _link(rec)
    if isinstance(found, str):
        out.fate = found
        return out
    etype, rest, offset = found
    _network(etype, rest, offset, rec.wirelen, 0, out)
    return out


def _link(rec: Record):
    """(ethertype, bytes from the network header on, offset of those bytes) or a fate."""
    s = _scapy()
    lt, data = rec.linktype, rec.data
    header = {1: ("Ether", 14), 113: ("CookedLinux", 16), 276: ("CookedLinuxV2", 20)}.get(lt)
    if header:
        if len(data) < header[1]:
            return "truncated_headers"
        return _ether_chain(s[header[0]](data), data)
    if lt in (101, 12, 14):
        if not data:
            return "truncated_headers"
        v = data[0] >> 4
        return ({4: 0x0800, 6: 0x86DD}.get(v, 0), data, 0)
    if lt == 228:
        return (0x0800, data, 0) if data else "truncated_headers"
    if lt == 229:
        return (0x86DD, data, 0) if data else "truncated_headers"
    if lt in (0, 108):
        if len(data) < 4:
            return "truncated_headers"
        fam = int.from_bytes(data[:4], "big" if lt == 108 else "little")
        if lt == 0 and fam > 0xFFFF:
            fam = int.from_bytes(data[:4], "big")
        etype = 0x0800 if fam == 2 else 0x86DD if fam in IPV6_AF else 0
        return (etype, data[4:], 4)
    if lt == 239:
        return _nflog(data)
    return "unsupported_linktype"


def _ether_chain(pkt, data: bytes):
    """Follow scapy's dissection through Ethernet/SLL, VLAN tags and MPLS labels."""
    s = _scapy()
    need = 16 if isinstance(pkt, s["CookedLinux"]) else 20 if isinstance(pkt, s["CookedLinuxV2"]) else 14
    if len(data) < need:
        return "truncated_headers"
    if need == 14 and not isinstance(pkt, s["Ether"]):
        return "non_ip"  # scapy reads an ethertype <= 1500 as an 802.3 length (Dot3)
    layer = pkt
    etype = None
    while True:
        if isinstance(layer, (s["Ether"],)):
            etype = layer.type
        elif isinstance(layer, (s["CookedLinux"], s["CookedLinuxV2"])):
            etype = layer.proto
        elif isinstance(layer, (s["Dot1Q"], s["Dot1AD"])):
            etype = layer.type
        elif isinstance(layer, s["MPLS"]):
            if len(bytes(layer)) < 4:
                return "truncated_headers"
            if layer.s:
                rest = bytes(layer.payload)
                if not rest:
                    return "truncated_headers"
                etype = {4: 0x0800, 6: 0x86DD}.get(rest[0] >> 4, 0)
                return (etype, rest, len(data) - len(rest))
            etype = 0x8847
        else:
            break
        nxt = layer.payload
        if etype in VLAN_TPIDS or etype in (0x8847, 0x8848):
            if not len(bytes(nxt)):
                return "truncated_headers"
            layer = nxt
            continue
        rest = bytes(nxt)
        return (etype, rest, len(data) - len(rest))
    return "truncated_headers"


def _nflog(data: bytes):
    if len(data) < 4:
        return "truncated_headers"
    etype = {2: 0x0800, 10: 0x86DD}.get(data[0], 0)
    pos = 4
    while pos + 4 <= len(data):
        tlen, ttype = struct.unpack_from("<HH", data, pos)
        if tlen < 4:
            break
        if ttype & 0x7FFF == 9:
            return (etype, data[pos + 4 :], pos + 4)
        pos += (tlen + 3) & ~3
    return "truncated_headers"


def _ip_precheck(raw: bytes, version: int, fixed: int) -> str | None:
    """The rule before any field is read: no byte at all is truncation, a wrong version nibble
    is an invalid header, fewer bytes than the fixed header is truncation."""
    if not raw:
        return "truncated_headers"
    if raw[0] >> 4 != version:
        return "invalid_ip_header"
    if len(raw) < fixed:
        return "truncated_headers"
    return None


def _network(etype: int, raw: bytes, offset: int, wirelen: int, depth: int, out: Outcome) -> None:
    s = _scapy()
    if depth >= MAX_DEPTH:
        out.fate = "encapsulation_too_deep"
        return
    version = {0x0800: 4, 0x86DD: 6}.get(etype)
    if version is None:
        out.fate = "non_ip"
        return
    fate = _ip_precheck(raw, version, 20 if version == 4 else 40)
    if fate:
        out.fate = fate
        return
    if version == 4:
        ip = s["IP"](raw)
        if ip.ihl < 5 or (ip.len and ip.len < ip.ihl * 4):
            out.fate = "invalid_ip_header"
            return
        if len(raw) < ip.ihl * 4:
            out.fate = "truncated_headers"
            return
        if ip.frag > 0:
            out.fate = "fragments_nonfirst"
            return
        if ip.flags.MF:
            out.first_fragment = True
        length = ip.len if ip.len else wirelen - offset
        src, dst = int(ipaddress.IPv4Address(ip.src)), int(ipaddress.IPv4Address(ip.dst))
        _transport(4, src, dst, ip.proto, bytes(ip.payload), length, wirelen, depth, out)
        return
    ip = s["IPv6"](raw)
    length = ip.plen + 40 if ip.plen else wirelen - offset
    src, dst = int(ipaddress.IPv6Address(ip.src)), int(ipaddress.IPv6Address(ip.dst))
    layer, nh = ip.payload, ip.nh
    hops = 0
    while isinstance(layer, s["EXT"] + (s["FRAG"],)) and hops < 8:
        if isinstance(layer, s["FRAG"]):
            if layer.offset > 0:
                out.fate = "fragments_nonfirst"
                return
            if layer.m:
                out.first_fragment = True
        nh = layer.nh
        layer = layer.payload
        hops += 1
    if nh in (0, 43, 44, 60) and hops < 8:
        out.fate = "truncated_headers"  # an extension header scapy could not read whole
        return
    _transport(6, src, dst, nh, bytes(layer), length, wirelen, depth, out)


def _transport(ver: int, src: int, dst: int, proto: int, l4: bytes, length: int,
               wirelen: int, depth: int, out: Outcome) -> None:
    s = _scapy()
    need = {6: 20, 17: 8, 132: 12, 1: 4, 58: 4}.get(proto)
    if need is not None and len(l4) < need:
        out.fate = "truncated_headers"
        return
    hs, sport, dport = 0, 0, 0
    if proto == 6:
        t = s["TCP"](l4)
        sport, dport = t.sport, t.dport
        flags = int(t.flags)
        hs = 1 if flags & 0x12 == 0x02 else 2 if flags & 0x12 == 0x12 else 0
    elif proto == 17:
        u = s["UDP"](l4)
        sport, dport = u.sport, u.dport
        payload = l4[8:]
        if dport in VXLAN_PORTS or dport == GENEVE_PORT:
            _tunnel_udp(dport, payload, wirelen, depth, out)
            return
        if sport == 53:
            out.dns = payload
    elif proto == 132:
        c = s["SCTP"](l4)
        sport, dport = c.sport, c.dport
        chunk = l4[12] if len(l4) > 12 else None
        hs = 1 if chunk == 1 else 2 if chunk == 2 else 0
    elif proto in (1, 58):
        icmp_type = l4[0]
        hs = 1 if icmp_type == (8 if proto == 1 else 128) else 2 if icmp_type == (0 if proto == 1 else 129) else 0
        out.icmp = True
    elif proto in (4, 41):
        out.tunnels.append("ipip" if proto == 4 else "ip6in4")
        _network(0x0800 if proto == 4 else 0x86DD, l4, 0, wirelen, depth + 1, out)
        return
    elif proto == 47:
        out.fate = "encapsulation_unknown"
        return
    else:
        out.fate = "other_ip_protocol"
        out.other_proto = proto
        return
    out.packet = Decoded(ver, src, dst, proto, sport, dport, hs, length)


def _tunnel_udp(dport: int, payload: bytes, wirelen: int, depth: int, out: Outcome) -> None:
    s = _scapy()
    if len(payload) < 8:
        out.fate = "truncated_headers"
        return
    if dport in VXLAN_PORTS:
        vx = s["VXLAN"](payload)
        if not int(vx.flags) & 0x08:
            out.fate = "encapsulation_unknown"
            return
        out.tunnels.append("vxlan")
        inner = bytes(vx.payload)
        kind = "eth"
    else:
        gn = s["GENEVE"](payload)
        if gn.version != 0 or gn.proto not in (0x6558, 0x0800, 0x86DD):
            out.fate = "encapsulation_unknown"
            return
        out.tunnels.append("geneve")
        inner = payload[8 + gn.optionlen * 4 :]
        kind = "eth" if gn.proto == 0x6558 else gn.proto
    if not inner:
        out.fate = "truncated_headers"
        return
    if kind == "eth":
        if len(inner) < 14:
            out.fate = "truncated_headers"
            return
        found = _ether_chain(s["Ether"](inner), inner)
        if isinstance(found, str):
            out.fate = found
            return
        etype, rest, _ = found
        _network(etype, rest, 0, wirelen, depth + 1, out)
    else:
        _network(kind, inner, 0, wirelen, depth + 1, out)


# -- connections -------------------------------------------------------------------------------


@dataclass
class _Conn:
    ver: int
    proto: int
    a: tuple[int, int]
    b: tuple[int, int]
    pkts: list[int] = field(default_factory=lambda: [0, 0])  # [a->b, b->a]
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    first_ns: int | None = None
    last_ns: int | None = None
    first_seq: int = 0
    first_dir: int = 0
    opens: list[int | None] = field(default_factory=lambda: [None, None])  # first seq per dir
    answers: list[int | None] = field(default_factory=lambda: [None, None])


@dataclass
class ReferenceResult:
    flows: pd.DataFrame
    records: int
    counters: dict[str, int]
    dns: list[bytes] = field(default_factory=list)  # UDP payloads from port 53, in file order


def reference_connections(path: str) -> ReferenceResult:
    conns: dict[tuple, _Conn] = {}
    counters: dict[str, int] = {}
    dns: list[bytes] = []

    def count(k: str, n: int = 1) -> None:
        counters[k] = counters.get(k, 0) + n

    seq = 0
    for rec in read_records(path):
        seq += 1
        o = decode_record(rec)
        for t in o.tunnels:
            count("encapsulated")
            count(f"encapsulated_{t}")
        if o.first_fragment:
            count("fragments_first")
        if o.fate != "decoded":
            count(o.fate)
            if o.fate == "other_ip_protocol":
                count(f"ip_proto_{o.other_proto}")
            continue
        if o.icmp:
            count("icmp")
        if o.dns is not None:
            dns.append(o.dns)
        p = o.packet
        assert p is not None
        s_end, d_end = (p.src, p.sport), (p.dst, p.dport)
        a, b = (s_end, d_end) if s_end <= d_end else (d_end, s_end)
        direction = 0 if s_end <= d_end else 1
        key = (p.ver, p.proto, a, b)
        c = conns.get(key)
        if c is None:
            c = conns[key] = _Conn(p.ver, p.proto, a, b, first_seq=seq, first_dir=direction)
        c.pkts[direction] += 1
        c.bytes[direction] += p.length
        if rec.ts_ns is not None:
            c.first_ns = rec.ts_ns if c.first_ns is None else min(c.first_ns, rec.ts_ns)
            c.last_ns = rec.ts_ns if c.last_ns is None else max(c.last_ns, rec.ts_ns)
        if p.hs == 1 and c.opens[direction] is None:
            c.opens[direction] = seq
        if p.hs == 2 and c.answers[direction] is None:
            c.answers[direction] = seq
    rows = [_row(c, path) for c in sorted(conns.values(), key=lambda c: c.first_seq)]
    columns = ["src_ip", "dst_ip", "src_port", "dst_port", "proto", "packets", "bytes", "connections",
               "first_seen", "last_seen", "direction_known", "verdict", "source",
               "src_packets", "dst_packets", "src_bytes", "dst_bytes"]
    return ReferenceResult(pd.DataFrame(rows, columns=columns), seq, counters, dns)


def _first(pair: list[int | None]) -> int | None:
    """Which direction (0 a->b, 1 b->a) saw the mark first, or None."""
    x, y = pair
    if x is None and y is None:
        return None
    if y is None or (x is not None and x < y):
        return 0
    return 1


def _row(c: _Conn, path: str) -> dict:
    opener = _first(c.opens)
    answerer = _first(c.answers)
    if opener is not None:
        client = opener  # direction index: 0 means a sent it, so a is the client
        known = True
    elif answerer is not None:
        client = 1 - answerer  # the answer's receiver is the client
        known = True
    else:
        known = False
        sender, receiver = (c.a, c.b) if c.first_dir == 0 else (c.b, c.a)
        # The first packet's sender is the client unless the port rule makes it the server.
        keep = bool(dst_is_server(np.array([sender[1]]), np.array([receiver[1]]))[0])
        client = c.first_dir if keep else 1 - c.first_dir
    src, dst = (c.a, c.b) if client == 0 else (c.b, c.a)
    out_dir, in_dir = (0, 1) if client == 0 else (1, 0)
    def text(n: int) -> str:
        return str(ipaddress.IPv4Address(n) if c.ver == 4 else ipaddress.IPv6Address(n))

    return {
        "src_ip": text(src[0]), "dst_ip": text(dst[0]), "src_port": src[1], "dst_port": dst[1],
        "proto": IP_PROTO_NAMES.get(c.proto, f"IP/{c.proto}"),
        "packets": sum(c.pkts), "bytes": sum(c.bytes), "connections": 1,
        "first_seen": c.first_ns / 1e9 if c.first_ns is not None else float("nan"),
        "last_seen": c.last_ns / 1e9 if c.last_ns is not None else float("nan"),
        "direction_known": known, "verdict": VERDICT_UNKNOWN, "source": path,
        "src_packets": c.pkts[out_dir], "dst_packets": c.pkts[in_dir],
        "src_bytes": c.bytes[out_dir], "dst_bytes": c.bytes[in_dir],
    }
