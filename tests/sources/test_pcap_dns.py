"""DNS answers in captures name the addresses they resolved (``dst_names``), as Hubble's DNS
records do for flow logs.

Checked two ways: on every real capture in ../shared/samples/pcaps against scapy's own DNS
dissector (an independent parser), and end to end on a built capture where a workload resolves
an outside name through a CNAME chain and then connects: its egress policy names the address.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from netpolgen.capture.dnsnames import DnsAnswers
from netpolgen.pipeline import generate
from netpolgen.sources.pcap import PcapSource
from tests import kube, shop
from tests.sources.pcap_reference import reference_connections
from tests.sources.test_pcap_samples import ALL_CAPTURES, PCAPS, VERSION2_SECTION

ADDRESS_TYPES = (1, 28)  # A, AAAA


def scapy_names(path: Path) -> dict[str, set[str]]:
    """Address → question names of the NOERROR DNS responses from UDP port 53: the packets
    found by the scapy-based reference reader (every link type the source reads), their
    payloads dissected by scapy's DNS layer."""
    names: dict[str, set[str]] = {}
    for payload in reference_connections(str(path)).dns:
        d = DNS(payload)
        if d.qr != 1 or d.rcode != 0 or not d.qd:
            continue
        asked = d.qd[0].qname.decode().rstrip(".").lower()
        for rr in d.an or []:
            if rr.type in ADDRESS_TYPES:
                names.setdefault(ipaddress.ip_address(rr.rdata).compressed, set()).add(asked)
    return names


@pytest.mark.parametrize("name", sorted(set(ALL_CAPTURES) - VERSION2_SECTION))
def test_names_agree_with_scapy_on_every_sample(samples: Path, name: str) -> None:
    path = PCAPS / name
    src = PcapSource(str(path))
    flows = src.connections()
    expected = scapy_names(path)
    assert src.dns.names == expected
    # every flow to a named address carries its names (no column when the capture named none)
    named = flows["dst_names"] if "dst_names" in flows else [""] * len(flows)
    for dst, text in zip(flows["dst_ip"], named, strict=True):
        assert text == ",".join(sorted(expected.get(dst, ())))


def test_the_demo_capture_names_what_its_pods_looked_up() -> None:
    """captures/demo.pcap is real traffic recorded with tcpdump: its pods resolve Service names
    and the outside payments API through a DNS server, and the names match scapy's reading of
    the same answers."""
    demo = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"
    src = PcapSource(str(demo))
    src.connections()
    assert src.dns.names == scapy_names(demo)
    assert src.dns.names == {"10.96.200.7": {"redis.shop.svc.cluster.local"},
                             "10.96.33.5": {"postgres.data.svc.cluster.local"},
                             "203.0.113.7": {"payments.example"}}


def test_the_samples_hold_dns_answers(samples: Path) -> None:
    """The comparison above is not vacuous: real answers, one of them through a CNAME."""
    names = scapy_names(PCAPS / "arkime" / "dns-udp.pcap")
    assert names.get("192.30.252.128") == {"www.github.com"}  # asked www.github.com, CNAME github.com
    assert scapy_names(PCAPS / "tcpdump" / "dns_udp.pcap") == {
        "192.139.46.66": {"www.tcpdump.org"}, "198.199.88.104": {"www.tcpdump.org"}}


def _frames() -> list:
    api, dns_ip, ext = "10.244.1.20", "10.96.0.10", "203.0.113.7"
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    query = DNS(id=7, rd=1, qd=DNSQR(qname="API.Example.com", qtype="A"))
    answer = DNS(id=7, qr=1, aa=0, rd=1, ra=1, qd=DNSQR(qname="API.Example.com", qtype="A"),
                 an=[DNSRR(rrname="API.Example.com", type="CNAME", rdata="edge.cdn.example.net"),
                     DNSRR(rrname="edge.cdn.example.net", type="A", rdata=ext)])
    missing = DNS(id=8, qr=1, rcode=3, qd=DNSQR(qname="gone.example.com"),
                  an=[DNSRR(rrname="gone.example.com", type="A", rdata="198.51.100.99")])
    frames = [
        eth / IP(src=api, dst=dns_ip) / UDP(sport=41000, dport=53) / query,
        eth / IP(src=dns_ip, dst=api) / UDP(sport=53, dport=41000) / answer,
        eth / IP(src=dns_ip, dst=api) / UDP(sport=53, dport=41004) / missing,  # NXDOMAIN: no name
        # a header that says "one answer, no error" over bytes that are no DNS message
        eth / IP(src=dns_ip, dst=api) / UDP(sport=53, dport=41005)
        / Raw(b"\x00\x09\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + b"\xff" * 9),
    ]
    for flags, (s, sp, d, dp) in (("S", (api, 41003, ext, 443)), ("SA", (ext, 443, api, 41003)),
                                  ("A", (api, 41003, ext, 443))):
        frames.append(eth / IP(src=s, dst=d) / TCP(sport=sp, dport=dp, flags=flags))
    for i, f in enumerate(frames):
        f.time = 1_700_000_000 + i
    return frames


def test_a_resolved_outside_address_is_named_in_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "node.pcap"
    wrpcap(str(path), _frames())
    src = PcapSource(str(path))
    flows = src.connections()
    row = flows[flows["dst_ip"] == "203.0.113.7"].iloc[0]
    assert row["dst_names"] == "api.example.com"
    assert src.dns.names == {"203.0.113.7": {"api.example.com"}}  # not the NXDOMAIN's address
    assert f"{path}: 1 DNS answers named 1 addresses (kept as dst_names)" in src.stats.notes
    assert f"{path}: 1 UDP datagrams from port 53 were not DNS messages; ignored" in src.stats.notes

    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(kube.as_list(*shop.objects())))
    result = generate([str(path)], [str(inv)])
    api = next(p for p in result.policies if p["metadata"]["name"] == "allow-api")
    assert api["metadata"]["annotations"]["netpolgen.io/egress-dns-names"] == "203.0.113.7=api.example.com"
    egress_blocks = [peer["ipBlock"]["cidr"] for rule in api["spec"]["egress"] for peer in rule.get("to", [])
                     if "ipBlock" in peer]
    assert "203.0.113.7/32" in egress_blocks


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(1, 3))
def test_any_bytes_after_an_answer_header_are_parsed_or_counted_never_raised(body: bytes, answers: int) -> None:
    """Captures carry whatever was on port 53: a payload is named, ignored or counted."""
    dns = DnsAnswers()
    header = b"\x00\x01\x81\x80\x00\x01" + answers.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    dns.add(header + body)
    assert dns.unparsed + dns.answers <= 1
    for address, names in dns.names.items():
        assert ipaddress.ip_address(address).compressed == address and names
