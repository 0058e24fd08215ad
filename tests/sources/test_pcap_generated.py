"""The vectorised pcap path against the scapy reference on generated captures.

Captures are built here with scapy's layer classes (Ethernet, 802.1Q/802.1ad, MPLS, SLL, SLL2,
raw, NULL/LOOP, NFLOG; IPv4 with options and IPv6 with extension headers; TCP/UDP/SCTP/ICMP;
fragments; VXLAN/Geneve/IP-in-IP tunnels; snaplen cuts) and written by the small writers below,
which share no code with the reader. Hypothesis draws the packet mixes and file layouts; every
drawn file must give the reference's flow table, counters and record count exactly, whatever
the block size the reader uses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit, SCTPChunkInitAck
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from netpolgen.sources.pcap import PcapSource
from tests.sources.pcap_reference import reference_connections

FLOW_KEY = ["src_ip", "dst_ip", "src_port", "dst_port", "proto"]

# -- writers (independent of netpolgen.capture) ----------------------------------------------


@dataclass(frozen=True)
class Rec:
    ts_ns: int
    data: bytes
    origlen: int
    iface: int = 0
    block: str = "epb"  # pcapng: epb, spb or opb


def write_pcap(path: Path, linktype: int, recs: list[Rec], order: str = "<", nano: bool = False,
               snaplen: int = 65535) -> Path:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for r in recs:
        sec, frac = divmod(r.ts_ns, 1_000_000_000)
        out.append(struct.pack(order + "IIII", sec, frac if nano else frac // 1000, len(r.data), r.origlen))
        out.append(r.data)
    path.write_bytes(b"".join(out))
    return path


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def write_pcapng(path: Path, interfaces: list[tuple[int, int]], recs: list[Rec], order: str = "<",
                 snaplen: int = 0) -> Path:
    """interfaces: (linktype, if_tsresol byte). Timestamps are converted to each resolution."""
    out = [_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for linktype, tsresol in interfaces:
        opts = struct.pack(order + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack(order + "HH", 0, 0)
        out.append(_block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts))
    for r in recs:
        tsresol = interfaces[r.iface][1]
        unit = 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol
        ticks = r.ts_ns * unit // 1_000_000_000
        hi, lo = ticks >> 32, ticks & 0xFFFFFFFF
        if r.block == "spb":
            out.append(_block(order, 3, struct.pack(order + "I", r.origlen) + r.data))
        elif r.block == "opb":
            out.append(_block(order, 2, struct.pack(order + "HHIIII", r.iface, 0, hi, lo, len(r.data), r.origlen) + r.data))
        else:
            out.append(_block(order, 6, struct.pack(order + "IIIII", r.iface, hi, lo, len(r.data), r.origlen) + r.data))
    path.write_bytes(b"".join(out))
    return path


# -- packets ----------------------------------------------------------------------------------

V4 = ["10.0.0.1", "10.0.0.2", "192.168.1.7", "203.0.113.9"]
V6 = ["2001:db8::1", "2001:db8::2", "fe80::1", "::ffff:10.0.0.1"]
PORTS = [53, 80, 443, 8080, 40000, 50001]

LINKS = {  # name -> link type
    "eth": 1, "vlan": 1, "qinq": 1, "mpls": 1, "sll": 113, "sll2": 276,
    "raw": 101, "null": 0, "loop": 108, "nflog": 239,
}


def frame(link: str, l3: bytes, v6: bool) -> bytes:
    """Wrap network-layer bytes in a link layer."""
    etype = 0x86DD if v6 else 0x0800
    if link == "eth":
        return bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=etype)) + l3
    if link == "vlan":
        return bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / Dot1Q(vlan=7, type=etype)) + l3
    if link == "qinq":
        return bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / Dot1AD(vlan=100) / Dot1Q(vlan=7, type=etype)) + l3
    if link == "mpls":
        return bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8847) / MPLS(label=16, s=0) / MPLS(label=17, s=1)) + l3
    if link == "sll":
        return bytes(CookedLinux(proto=etype)) + l3
    if link == "sll2":
        return bytes(CookedLinuxV2(proto=etype)) + l3
    if link == "raw":
        return l3
    if link == "null":
        return struct.pack("<I", 30 if v6 else 2) + l3  # macOS AF_INET6
    if link == "loop":
        return struct.pack(">I", 24 if v6 else 2) + l3
    if link == "nflog":
        prefix = struct.pack("<HH", 8, 10) + b"\0" * 4  # an NFULA_PREFIX-ish TLV to step over
        payload = struct.pack("<HH", 4 + len(l3), 9) + l3 + b"\0" * (-len(l3) % 4)
        return bytes([10 if v6 else 2, 0]) + struct.pack(">H", 0) + prefix + payload
    raise ValueError(link)


@st.composite
def transport(draw, v6: bool):
    sport, dport = draw(st.sampled_from(PORTS)), draw(st.sampled_from(PORTS))
    kind = draw(st.sampled_from(["tcp", "tcp", "tcp", "udp", "udp", "sctp", "icmp"]))
    if kind == "tcp":
        flags = draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "R", "SE"]))
        return TCP(sport=sport, dport=dport, flags=flags) / Raw(b"x" * draw(st.integers(0, 40)))
    if kind == "udp":
        return UDP(sport=sport, dport=dport) / Raw(b"q" * draw(st.integers(0, 30)))
    if kind == "sctp":
        chunk = draw(st.sampled_from([SCTPChunkInit(), SCTPChunkInitAck(), SCTPChunkData(data=b"d")]))
        return SCTP(sport=sport, dport=dport) / chunk
    request = draw(st.booleans())
    if v6:
        return ICMPv6EchoRequest() if request else ICMPv6EchoReply()
    return ICMP(type=8 if request else 0)


@st.composite
def ip_packet(draw, depth: int = 0):
    """Network-layer bytes and whether they are IPv6."""
    v6 = draw(st.booleans())
    src, dst = draw(st.sampled_from(V6 if v6 else V4)), draw(st.sampled_from(V6 if v6 else V4))
    tunnel = draw(st.sampled_from(["none"] * 6 + ["vxlan", "geneve", "ipip"])) if depth == 0 else "none"
    if tunnel != "none":
        inner, inner_v6 = draw(ip_packet(depth=1))
        if tunnel == "ipip":
            outer = IPv6(src="2001:db8::a", dst="2001:db8::b", nh=41 if inner_v6 else 4) if v6 else \
                IP(src="172.16.0.1", dst="172.16.0.2", proto=41 if inner_v6 else 4)
            return bytes(outer / Raw(inner)), v6
        port = draw(st.sampled_from([4789, 8472])) if tunnel == "vxlan" else 6081
        if tunnel == "vxlan":
            encap = VXLAN(vni=42, flags=draw(st.sampled_from([0x08, 0x08, 0x00])))
            body = bytes(encap) + frame("eth", inner, inner_v6)
        else:
            as_ether = draw(st.booleans())
            encap = GENEVE(vni=7, proto=0x6558 if as_ether else (0x86DD if inner_v6 else 0x0800))
            body = bytes(encap) + (frame("eth", inner, inner_v6) if as_ether else inner)
        outer_ip = IPv6(src="2001:db8::a", dst="2001:db8::b") if v6 else IP(src="172.16.0.1", dst="172.16.0.2")
        return bytes(outer_ip / UDP(sport=33333, dport=port) / Raw(body)), v6
    l4 = draw(transport(v6))
    frag = draw(st.sampled_from(["none"] * 8 + ["first", "later"]))
    if v6:
        ext = []
        if draw(st.booleans()):
            ext.append(IPv6ExtHdrHopByHop())
        if frag != "none":
            ext.append(IPv6ExtHdrFragment(offset=0 if frag == "first" else 10, m=1 if frag == "first" else 0, id=5))
        if draw(st.booleans()):
            ext.append(IPv6ExtHdrDestOpt())
        pkt = IPv6(src=src, dst=dst)
        for e in ext:
            pkt = pkt / e
        return bytes(pkt / l4), True
    opts = draw(st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00"]))  # NOPs+EOL, router alert
    flags, offset = ("MF", 0) if frag == "first" else (0, 185) if frag == "later" else (0, 0)
    return bytes(IP(src=src, dst=dst, flags=flags, frag=offset, options=opts) / l4), False


@st.composite
def capture_records(draw, link: str):
    n = draw(st.integers(1, 25))
    recs = []
    ts = 1_700_000_000_000_000_000
    for _ in range(n):
        ts += draw(st.integers(0, 5_000_000_000))
        if draw(st.integers(0, 19)) == 0 and link in ("eth", "sll"):  # not IP
            data = bytes((Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") if link == "eth" else CookedLinux()) / ARP())
        else:
            l3, v6 = draw(ip_packet())
            data = frame(link, l3, v6)
        origlen = len(data)
        if draw(st.integers(0, 9)) == 0:  # a snaplen cut somewhere in the headers
            data = data[: draw(st.integers(0, len(data)))]
        recs.append(Rec(ts, data, origlen))
    return recs


def assert_same_as_reference(path: Path, block_bytes: int) -> PcapSource:
    src = PcapSource(str(path), block_bytes=block_bytes)
    got = src.connections().sort_values(FLOW_KEY).reset_index(drop=True)
    ref = reference_connections(str(path))
    want = ref.flows.sort_values(FLOW_KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert src.stats.records == ref.records
    assert src.stats.counters == ref.counters
    return src


SETTINGS = dict(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@settings(**SETTINGS)
@given(data=st.data(), link=st.sampled_from(sorted(LINKS)), order=st.sampled_from("<>"),
       nano=st.booleans(), block=st.sampled_from([64, 300, 1 << 20]))
def test_classic_pcap_matches_reference(tmp_path_factory, data, link, order, nano, block) -> None:
    """Any mix of link layer, IP version, transport, tunnel, fragment and snaplen cut gives the
    reference's connections, counters and record count, in both byte orders and time units,
    whatever the block size (so the cross-block merge is exact)."""
    recs = data.draw(capture_records(link))
    if not nano:  # microsecond files cannot hold nanoseconds
        recs = [Rec(r.ts_ns // 1000 * 1000, r.data, r.origlen) for r in recs]
    path = write_pcap(tmp_path_factory.mktemp("g") / "x.pcap", LINKS[link], recs, order, nano)
    assert_same_as_reference(path, block)


@settings(**SETTINGS)
@given(data=st.data(), order=st.sampled_from("<>"), block=st.sampled_from([64, 1 << 20]),
       links=st.lists(st.sampled_from(sorted(LINKS)), min_size=1, max_size=3),
       resols=st.lists(st.sampled_from([6, 9, 0x80 | 20, 3]), min_size=3, max_size=3))
def test_pcapng_matches_reference(tmp_path_factory, data, order, block, links, resols) -> None:
    """pcapng with several interfaces (a link type and timestamp resolution each), EPB, SPB and
    obsolete PB records, either byte order: same result as the reference."""
    interfaces = [(LINKS[name], resols[i]) for i, name in enumerate(links)]
    recs = []
    for link_i, name in enumerate(links):
        for r in data.draw(capture_records(name)):
            block_kind = data.draw(st.sampled_from(["epb", "epb", "opb"] + (["spb"] if link_i == 0 else [])))
            recs.append(Rec(r.ts_ns, r.data, r.origlen, link_i, block_kind))
    recs = data.draw(st.permutations(recs))
    path = write_pcapng(tmp_path_factory.mktemp("g") / "x.pcapng", interfaces, recs, order)
    assert_same_as_reference(path, block)


def test_truncated_last_record_keeps_earlier_records(tmp_path: Path) -> None:
    """A file cut inside its last record: not an error; the whole records are used, the stats
    say truncated with a note naming the record, and the reference (which drops the partial
    record) agrees on the rest."""
    recs = [Rec(1_700_000_000_000_000_000 + i * 1000,
                bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / IP(src="10.0.0.1", dst="10.0.0.2") /
                      TCP(sport=40000 + i, dport=80, flags="S")), 54) for i in range(5)]
    full = write_pcap(tmp_path / "full.pcap", 1, recs).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(full[:-10])
    src = assert_same_as_reference(cut, 1 << 20)
    assert src.stats.truncated
    assert len(src.connections()) == 4
    assert any("record 5" in n for n in src.stats.notes)


@pytest.mark.parametrize("cut_header_bytes", [3, 15])
def test_truncated_inside_record_header(tmp_path: Path, cut_header_bytes: int) -> None:
    """Fewer than 16 bytes of the last record header: still a truncation, not an error."""
    recs = [Rec(1_700_000_000_000_000_000, bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / IP() / UDP(sport=5000, dport=53)), 42)] * 2
    full = write_pcap(tmp_path / "full.pcap", 1, recs).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(full[: 24 + 16 + 42 + cut_header_bytes])
    src = assert_same_as_reference(cut, 1 << 20)
    assert src.stats.truncated and src.stats.records == 1
