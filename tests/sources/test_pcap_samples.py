"""The pcap source on the real captures in ../shared/samples/pcaps.

Expectations come from the samples' own oracles, never from this code: the scapy reference
(every file), Arkime's expected sessions, Zeek's community-id and conn.log baselines, and
tcpdump's expected decodes (.out files).
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

from netpolgen.sources.pcap import PcapSource
from tests.sources.conftest import SAMPLES
from tests.sources.pcap_reference import reference_connections

PCAPS = SAMPLES / "pcaps"
FLOW_KEY = ["src_ip", "dst_ip", "src_port", "dst_port", "proto"]
ALL_CAPTURES = sorted(
    str(p.relative_to(PCAPS)) for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng")
) if PCAPS.is_dir() else []
# A section of pcapng version 2 in the middle: scapy (the reference) stops reading there, the
# source skips that section and reads on. Checked on its own below.
VERSION2_SECTION = {"gopacket/pcapgo/tests/le/test901.pcapng", "gopacket/pcapgo/tests/be/test901.pcapng"}


def flows_of(path: Path) -> tuple[pd.DataFrame, PcapSource]:
    src = PcapSource(str(path))
    return src.connections(), src


def row(df: pd.DataFrame, src_ip: str, src_port: int, dst_ip: str, dst_port: int, proto: str) -> pd.Series:
    hit = df[(df.src_ip == src_ip) & (df.src_port == src_port) & (df.dst_ip == dst_ip)
             & (df.dst_port == dst_port) & (df.proto == proto)]
    assert len(hit) == 1, f"no single row {src_ip}:{src_port} -> {dst_ip}:{dst_port} {proto} in\n{df[FLOW_KEY]}"
    return hit.iloc[0]


@pytest.mark.parametrize("name", sorted(set(ALL_CAPTURES) - VERSION2_SECTION))
def test_sample_matches_scapy_reference(samples: Path, name: str) -> None:
    """Every sample parses, and the vectorised path gives exactly the reference's flow table,
    counters and record count."""
    path = PCAPS / name
    got, src = flows_of(path)
    ref = reference_connections(str(path))
    got = got[list(ref.flows.columns)]  # names from DNS answers are checked in test_pcap_dns
    pd.testing.assert_frame_equal(got.sort_values(FLOW_KEY).reset_index(drop=True),
                                  ref.flows.sort_values(FLOW_KEY).reset_index(drop=True), check_dtype=False)
    assert src.stats.records == ref.records
    assert src.stats.counters == ref.counters
    assert not src.stats.truncated


@pytest.mark.parametrize("name", sorted(VERSION2_SECTION))
def test_unknown_pcapng_version_section_is_skipped(samples: Path, tmp_path: Path, name: str) -> None:
    """test901 holds sections of version 1, 2, 1: the result equals the reference on the same
    file with the version-2 section cut out, and a note names the skipped section."""
    data = (PCAPS / name).read_bytes()
    order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    sections, pos = [], 0
    while pos < len(data):  # split at section headers, reading block lengths
        blen = int.from_bytes(data[pos + 4 : pos + 8], "little" if order == "<" else "big")
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            sections.append(pos)
        pos += blen
    sections.append(len(data))
    kept = b""
    for start, end in pairwise(sections):
        major = int.from_bytes(data[start + 12 : start + 14], "little" if order == "<" else "big")
        if major == 1:
            kept += data[start:end]
    assert len(kept) < len(data)
    spliced = tmp_path / "v1-only.pcapng"
    spliced.write_bytes(kept)
    got, src = flows_of(PCAPS / name)
    ref = reference_connections(str(spliced))
    pd.testing.assert_frame_equal(got.drop(columns="source").sort_values(FLOW_KEY).reset_index(drop=True),
                                  ref.flows.drop(columns="source").sort_values(FLOW_KEY).reset_index(drop=True),
                                  check_dtype=False)
    assert src.stats.records == ref.records
    assert any("version 2.0" in n for n in src.stats.notes)


# -- Arkime ---------------------------------------------------------------------------------


def _arkime_sessions() -> dict[str, list[dict]]:
    by_file: dict[str, list[dict]] = defaultdict(list)
    path = PCAPS / "arkime" / "EXPECTED_SESSIONS.tsv"
    if not path.is_file():
        return {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    header = lines[0].lstrip("# ").split(": ", 1)[1].split(" ")
    for rec in csv.DictReader(lines[1:], fieldnames=header, delimiter="\t"):
        by_file[rec["pcap"]].append(rec)
    return by_file


ARKIME = _arkime_sessions()


@pytest.mark.parametrize("pcap", sorted(ARKIME))
def test_arkime_session_directions_and_packets(samples: Path, pcap: str) -> None:
    """Each Arkime TCP/UDP session (sessions of one 5-tuple summed: Arkime splits long ones)
    is one row with Arkime's orientation, per-direction packet counts (when a handshake was
    seen), and a known direction exactly when Arkime saw a SYN or SYN-ACK."""
    df, _ = flows_of(PCAPS / "arkime" / pcap)
    sessions: dict[tuple, list[int]] = {}
    for s in ARKIME[pcap]:
        if s["proto"] not in ("6", "17") or (s["src_port"] == "0" and s["dst_port"] == "0"):
            continue  # ICMP sessions, and Arkime's session for the VXLAN tunnel itself
        key = (s["src_ip"], int(s["src_port"]), s["dst_ip"], int(s["dst_port"]), "TCP" if s["proto"] == "6" else "UDP")
        acc = sessions.setdefault(key, [0, 0, 0])
        acc[0] += int(s["src_pkts"])
        acc[1] += int(s["dst_pkts"])
        acc[2] += sum(int(s[c]) for c in ("tcp_syn", "tcp_synack") if s[c] != "-")
    if not sessions:
        pytest.skip("no TCP/UDP sessions in this capture")
    for key, (src_pkts, dst_pkts, handshakes) in sessions.items():
        r = row(df, *key)
        if handshakes:
            assert (r.src_packets, r.dst_packets) == (src_pkts, dst_pkts), key
        else:
            # Without a handshake Arkime flips a session by port after counting, so its
            # per-direction split names the wrong side (single-packets: a server's FIN is
            # counted as the client's); only the total is comparable.
            assert r.packets == src_pkts + dst_pkts, key
        assert bool(r.direction_known) == (key[4] == "TCP" and handshakes > 0), key


# -- Zeek -----------------------------------------------------------------------------------

_CID = re.compile(r"orig_h=([^,]+), orig_p=(\d+)/(\w+), resp_h=([^,]+), resp_p=(\d+)/\w+")


@pytest.mark.parametrize("name", ["icmp", "icmp6", "ipv6", "tcp", "udp"])
def test_zeek_community_id_orientation(samples: Path, name: str) -> None:
    """Zeek's orig/resp per connection: TCP/UDP rows have orig as source; for ICMP (whose
    'ports' are types in Zeek) an echo's requester is the source, and every pair has a row."""
    baseline = (PCAPS / "zeek" / "communityid" / f"{name}.pcap.out").read_text()
    df, _ = flows_of(PCAPS / "zeek" / "communityid" / f"{name}.pcap")
    conns = _CID.findall(baseline)
    assert conns
    for orig_h, orig_p, kind, resp_h, resp_p in conns:
        if kind in ("tcp", "udp"):
            r = row(df, orig_h, int(orig_p), resp_h, int(resp_p), kind.upper())
            assert bool(r.direction_known) == (kind == "tcp")
            continue
        proto = "ICMPv6" if ":" in orig_h else "ICMP"
        pair = df[(df.proto == proto) & (((df.src_ip == orig_h) & (df.dst_ip == resp_h))
                                        | ((df.src_ip == resp_h) & (df.dst_ip == orig_h)))]
        assert len(pair) == 1, (orig_h, resp_h)
        if int(orig_p) in (8, 128):  # echo request
            assert pair.iloc[0].src_ip == orig_h and pair.iloc[0].direction_known


def test_zeek_reordered_handshake(samples: Path) -> None:
    """tcp_handshake-reorder: the SYN-ACK is the first packet; Zeek flips the connection so
    orig is the SYN's sender. So do we, with the direction known."""
    flipped = (PCAPS / "zeek" / "baselines" / "core.connection_flipped_out").read_text()
    after = [ln for ln in flipped.splitlines() if "connection_flipped" in ln][0]
    orig_h, orig_p, _, resp_h, resp_p = _CID.search(after).groups()
    df, _ = flows_of(PCAPS / "zeek" / "tcp_handshake-reorder.pcap")
    assert len(df) == 1
    r = row(df, orig_h, int(orig_p), resp_h, int(resp_p), "TCP")
    assert r.direction_known


def _zeek_conn_log(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    fields = next(ln for ln in lines if ln.startswith("#fields")).split("\t")[1:]
    return [dict(zip(fields, ln.split("\t"), strict=False)) for ln in lines if ln and not ln.startswith("#")]


@pytest.mark.parametrize("log,pcap", [
    ("core.q-in-q_conn.log", "q-in-q.pcap"),
    ("scripts.policy.protocols.conn.vlan-logging_conn.log", "q-in-q.pcap"),
    ("core.vlan-mpls_conn.log", "mixed-vlan-mpls.pcap"),
])
def test_zeek_conn_log(samples: Path, log: str, pcap: str) -> None:
    """Zeek's conn.log through QinQ, VLAN and MPLS: same orientation, per-direction packets and
    per-direction IP bytes (Zeek's orig_ip_bytes/resp_ip_bytes count IP lengths, as we do)."""
    df, _ = flows_of(PCAPS / "zeek" / pcap)
    conns = _zeek_conn_log(PCAPS / "zeek" / "baselines" / log)
    assert conns
    for c in conns:
        r = row(df, c["id.orig_h"], int(c["id.orig_p"]), c["id.resp_h"], int(c["id.resp_p"]), c["proto"].upper())
        assert (r.src_packets, r.dst_packets) == (int(c["orig_pkts"]), int(c["resp_pkts"]))
        assert (r.src_bytes, r.dst_bytes) == (int(c["orig_ip_bytes"]), int(c["resp_ip_bytes"]))
    assert len(df) == len(conns)


def test_zeek_nflog_http(samples: Path) -> None:
    """NFLOG link type: the HTTP connection in Zeek's http.log, client as source."""
    (c,) = _zeek_conn_log(PCAPS / "zeek" / "baselines" / "core.nflog_http.log")
    df, _ = flows_of(PCAPS / "zeek" / "nflog-http.pcap")
    assert row(df, c["id.orig_h"], int(c["id.orig_p"]), c["id.resp_h"], int(c["id.resp_p"]), "TCP").direction_known


def test_zeek_sll2_loopback_icmp(samples: Path) -> None:
    """SLL2 (tcpdump -i any): Zeek sees ICMP echo on 192.0.2.1 and ICMPv6 echo on a link-local
    address, both to themselves; so do we, plus its ARP counted as not IP."""
    base = (PCAPS / "zeek" / "baselines" / "core.linuxsll2_stdout").read_text()
    df, src = flows_of(PCAPS / "zeek" / "linux_dlt_sll2.pcap")
    for orig_h, _op, _k, resp_h, _rp in set(_CID.findall(base)):
        proto = "ICMPv6" if ":" in orig_h else "ICMP"
        assert len(df[(df.src_ip == orig_h) & (df.dst_ip == resp_h) & (df.proto == proto)]) == 1
    assert src.stats.counters.get("non_ip", 0) >= 1


# -- tcpdump ----------------------------------------------------------------------------------

_ADDR = r"((?:\d{1,3}\.){3}\d{1,3}|[0-9a-f:]*:[0-9a-f:]+)"
_TUPLE = re.compile(_ADDR + r"\.(\d+) > " + _ADDR + r"\.(\d+): (?:Flags \[([^\]]*)\])?")
# .out files decoded without -v (one packet per line, addresses on it).
TCPDUMP_PLAIN = ["dns_tcp", "dns_udp", "geneve-tcp", "nflog-e"]
TCPDUMP_PCAP = {"dns_tcp": "dns_tcp.pcap", "dns_udp": "dns_udp.pcap", "geneve-tcp": "geneve.pcap",
                "nflog-e": "nflog.pcap"}


@pytest.mark.parametrize("out", TCPDUMP_PLAIN)
def test_tcpdump_decode(samples: Path, out: str) -> None:
    """Per 5-tuple in tcpdump's decode (the inner packet for Geneve): our packet count, and for
    TCP the client tcpdump shows sending the SYN (or receiving the SYN-ACK)."""
    text = (PCAPS / "tcpdump" / f"{out}.out").read_text()
    df, _ = flows_of(PCAPS / "tcpdump" / TCPDUMP_PCAP[out])
    packets: Counter = Counter()
    client: dict[frozenset, tuple] = {}
    kinds: dict[frozenset, str] = {}
    for line in text.splitlines():
        found = _TUPLE.findall(line)
        if not found:
            continue
        sa, sp, da, dp, flags = found[-1]  # the innermost packet on the line
        a, b = (sa, int(sp)), (da, int(dp))
        key = frozenset((a, b))
        packets[key] += 1
        kinds[key] = "TCP" if flags else "UDP"  # tcpdump prints Flags [..] for TCP only
        if key not in client and flags:
            if "S" in flags and "." not in flags:
                client[key] = (a, b)
            elif "S" in flags:
                client[key] = (b, a)
    assert packets
    for key, n in packets.items():
        ends = sorted(key)
        hit = df[df.apply(lambda r, want=set(ends): {(r.src_ip, r.src_port), (r.dst_ip, r.dst_port)} == want, axis=1)]
        assert len(hit) == 1, key
        assert hit.iloc[0].packets == n
        if key in client:
            (ca, cp), (sa_, sp_) = client[key]
            r = hit.iloc[0]
            assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port) == (ca, cp, sa_, sp_)
            assert r.direction_known and r.proto == kinds[key] == "TCP"


def test_tcpdump_nanosecond_timestamps(samples: Path) -> None:
    """The nanosecond-magic SLL capture: first/last seen are tcpdump's --nano times (UTC time of
    day, to float precision) and the SYN's sender is the client."""
    lines = (PCAPS / "tcpdump" / "tcp-handshake-nano.out").read_text().splitlines()
    times = []
    for ln in lines:
        hh, mm, ss = ln.split()[1].split(":")
        times.append(int(hh) * 3600 + int(mm) * 60 + float(ss))
    df, _ = flows_of(PCAPS / "tcpdump" / "tcp-handshake-nano.pcap")
    (r,) = df.itertuples()
    assert r.first_seen % 86400 == pytest.approx(min(times), abs=1e-6)
    assert r.last_seen % 86400 == pytest.approx(max(times), abs=1e-6)
    first = _TUPLE.search(lines[0])
    assert (r.src_ip, r.src_port) == (first.group(1), int(first.group(2)))


# -- overlays ---------------------------------------------------------------------------------

_VXLAN_OUTER = re.compile(_ADDR + r"\.\d+ > " + _ADDR + r"\.(\d+): VXLAN")
_INNER_ICMP = re.compile(_ADDR + r" > " + _ADDR + r": ICMP echo (request|reply)")


def test_vxlan_flannel_port_8472(samples: Path) -> None:
    """flannel's VXLAN on 8472: the inner ICMP echo is the row (requester as source, packets as
    tcpdump shows), inner ARP is counted as not IP, and no row carries a tunnel endpoint."""
    text = (PCAPS / "tcpdump" / "vxlan_port_8472.out").read_text()
    df, src = flows_of(PCAPS / "tcpdump" / "vxlan_port_8472.pcap")
    outer = {a for m in _VXLAN_OUTER.findall(text) for a in m[:2]}
    echoes = _INNER_ICMP.findall(text)
    requester = next((s, d) for s, d, kind in echoes if kind == "request")
    assert outer and echoes
    assert not (set(df.src_ip) | set(df.dst_ip)) & outer
    r = row(df, requester[0], 0, requester[1], 0, "ICMP")
    assert r.packets == len(echoes) and r.direction_known
    assert src.stats.counters["non_ip"] == text.count("ethertype ARP")
    assert src.stats.counters["encapsulated_vxlan"] == len(_VXLAN_OUTER.findall(text))


def test_vxlan_arkime(samples: Path) -> None:
    """Arkime's VXLAN capture: its inner ICMP session (per-direction packets) is our row; its
    outer UDP session (the tunnel) is not a connection."""
    sessions = ARKIME["vxlan.pcap"]
    df, src = flows_of(PCAPS / "arkime" / "vxlan.pcap")
    tunnel = next(s for s in sessions if s["proto"] == "17")
    inner = next(s for s in sessions if s["proto"] == "1")
    assert not (set(df.src_ip) | set(df.dst_ip)) & {tunnel["src_ip"], tunnel["dst_ip"]}
    r = row(df, inner["src_ip"], 0, inner["dst_ip"], 0, "ICMP")
    assert (r.src_packets, r.dst_packets) == (int(inner["src_pkts"]), int(inner["dst_pkts"]))
    assert src.stats.counters["encapsulated"] == src.stats.records


def test_geneve(samples: Path) -> None:
    """Geneve (with options on one side): the inner SSH connection is the row, oriented by its
    SYN; the tunnel endpoints appear in no row."""
    text = (PCAPS / "tcpdump" / "geneve-tcp.out").read_text()
    df, src = flows_of(PCAPS / "tcpdump" / "geneve.pcap")
    pairs = [_TUPLE.findall(ln) for ln in text.splitlines() if "Geneve" in ln]
    outer = {a for p in pairs for a in (p[0][0], p[0][2])}
    syn = next(p[-1] for p in pairs if p[-1][4] == "S")
    assert not (set(df.src_ip) | set(df.dst_ip)) & outer
    r = row(df, syn[0], int(syn[1]), syn[2], int(syn[3]), "TCP")
    assert r.direction_known and r.packets == len(pairs)
    assert src.stats.counters["encapsulated_geneve"] == src.stats.records


def test_qinq_arp_only(samples: Path) -> None:
    """802.1ad QinQ frames carrying ARP: no rows, each frame counted as not IP."""
    text = (PCAPS / "tcpdump" / "802.1ad_QinQ.out").read_text()
    df, src = flows_of(PCAPS / "tcpdump" / "802.1ad_QinQ.pcap")
    assert df.empty
    assert src.stats.counters["non_ip"] == text.count("ethertype ARP")


def test_empty_pcapng_is_valid(samples: Path) -> None:
    """tcpdump's empty.pcapng (a section header only): zero rows, zero records, no error."""
    df, src = flows_of(PCAPS / "tcpdump" / "empty.pcapng")
    assert df.empty and src.stats.records == 0 and not src.stats.truncated
