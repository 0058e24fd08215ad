"""The wire reader of DNS answers (``capture/dnswire.py``) says what dnspython says, or defers.

dnspython is the reference decoder: ``reference_answers`` reads a payload with it. On every DNS
payload of every sample capture, of the demo capture and of the benchmark's DNS-heavy capture,
on messages built by dnspython itself and on mutations of them, ``read_answers`` either answers
exactly as the reference does or says UNSURE (and then the reference is asked). And answers are
remembered per message without its transaction ID: a capture's names are the same with the
memo as when every payload is read by the reference one by one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dns.message
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.capture import dnsnames
from netpolgen.capture.dnsnames import DnsAnswers, answers_of, reference_answers
from netpolgen.capture.dnswire import UNSURE, read_answers
from netpolgen.sources.pcap import PcapSource
from tests.sources.pcap_reference import reference_connections
from tests.sources.test_pcap_samples import ALL_CAPTURES, PCAPS, VERSION2_SECTION

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "captures" / "demo.pcap"


def _gen_capture():
    spec = importlib.util.spec_from_file_location("gen_capture", REPO / "benchmarks" / "gen_capture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_capture", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dns_heavy(tmp_path_factory) -> Path:
    """The benchmark's DNS-heavy capture, small: 20,000 packets, 500 names."""
    path = tmp_path_factory.mktemp("dns") / "dns-heavy.pcap"
    _gen_capture().generate(str(path), 20_000, "pcap", dns_names=500)
    return path


def _payloads(path: Path) -> list[bytes]:
    """Every UDP payload from port 53 the scapy-based reference reader finds in ``path``."""
    return list(reference_connections(str(path)).dns)


def _agree(payload: bytes) -> bool:
    """read_answers defers or agrees with dnspython; True when it did not defer."""
    fast = read_answers(payload)
    if fast is UNSURE:
        return False
    assert fast == reference_answers(payload), payload.hex()
    return True


@pytest.mark.parametrize("name", sorted(set(ALL_CAPTURES) - VERSION2_SECTION))
def test_every_sample_payload_reads_as_dnspython_reads_it(samples: Path, name: str) -> None:
    for payload in _payloads(PCAPS / name):
        _agree(payload)
        assert answers_of(payload) == reference_answers(payload)


def test_the_samples_and_the_demo_are_read_without_dnspython(samples: Path) -> None:
    """Not vacuous: real answers (a CNAME chain among them) take the wire reader's path."""
    payloads = _payloads(PCAPS / "arkime" / "dns-udp.pcap") + _payloads(PCAPS / "tcpdump" / "dns_udp.pcap")
    payloads += _payloads(DEMO)
    taken = [p for p in payloads if _agree(p)]
    assert len(taken) >= 5
    assert any(answers_of(p)[0] == "www.github.com" and answers_of(p)[1] for p in taken)


def test_the_dns_heavy_capture_is_read_without_dnspython_and_as_dnspython_reads_it(dns_heavy: Path) -> None:
    payloads = _payloads(dns_heavy)
    responses = [p for p in payloads if p[2] & 0x80]
    assert len(responses) > 200
    assert all(_agree(p) for p in responses)
    assert {len(answers_of(p)[1]) for p in responses} == {1, 2, 3}  # one to three addresses


def test_names_are_the_same_with_the_memo_as_read_one_by_one(dns_heavy: Path, monkeypatch) -> None:
    src = PcapSource(str(dns_heavy))
    src.connections()
    expected = DnsAnswers()
    unparsed = answers = 0
    seen = 0
    for payload in src_payloads(dns_heavy):
        seen += 1
        found = reference_answers(payload)
        if found is None:
            unparsed += 1
            continue
        for address in found[1]:
            expected.learn(address, found[0])
        answers += bool(found[1])
    assert seen > 200 and expected.names
    assert src.dns.names == expected.names
    assert (src.dns.answers, src.dns.unparsed) == (answers, unparsed)


def src_payloads(path: Path) -> list[bytes]:
    """The payloads PcapSource hands DnsAnswers.add, in order (recorded on a second read)."""
    got: list[bytes] = []
    original = DnsAnswers.add

    def record(self, payload: bytes) -> None:
        got.append(payload)
        original(self, payload)

    DnsAnswers.add = record
    try:
        PcapSource(str(path)).connections()
    finally:
        DnsAnswers.add = original
    return got


def test_a_repeated_lookup_is_read_once_whatever_its_transaction_id(monkeypatch) -> None:
    calls: list[bytes] = []
    real = dnsnames.answers_of
    monkeypatch.setattr(dnsnames, "answers_of", lambda p: calls.append(p) or real(p))
    book = DnsAnswers()
    wire = _message("shop.example.com", [("shop.example.com", "A", "203.0.113.9")]).to_wire()
    for txid in (1, 2, 3, 4000):
        book.add(txid.to_bytes(2, "big") + wire[2:])
    assert len(calls) == 1
    assert book.names == {"203.0.113.9": {"shop.example.com"}} and book.answers == 4


# ----- generated messages -------------------------------------------------------------------

_LABEL = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12)
_NAME = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_V4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_V6 = st.integers(0, 2**128 - 1).map(lambda n: str(__import__("ipaddress").IPv6Address(n)))
_RECORD = st.one_of(
    st.tuples(_NAME, st.just("A"), _V4),
    st.tuples(_NAME, st.just("AAAA"), _V6),
    st.tuples(_NAME, st.just("CNAME"), _NAME),
    st.tuples(_NAME, st.just("PTR"), _NAME),
    st.tuples(_NAME, st.just("TXT"), st.just('"v=spf1"')),  # a type the wire reader defers
)


def _message(qname: str, answers: list[tuple[str, str, str]], qtype: str = "A", edns: int = -1,
             rcode: int = 0, extra: list[tuple[str, str, str]] = ()) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, use_edns=edns if edns >= 0 else None)
    msg = dns.message.make_response(query)
    msg.set_rcode(rcode)
    for section, records in ((msg.answer, answers), (msg.additional, extra)):
        for owner, rtype, value in records:
            rrset = dns.rrset.from_text(owner + ".", 60, "IN", rtype, value + ("." if rtype in ("CNAME", "PTR") else ""))
            section.append(rrset)
    return msg


@settings(max_examples=400, deadline=None)
@given(_NAME, st.lists(_RECORD, max_size=6), st.sampled_from(["A", "AAAA", "MX"]), st.sampled_from([-1, 0, 1]),
       st.sampled_from([0, 0, 0, 3]), st.lists(_RECORD, max_size=2), st.integers(0, 65535))
def test_generated_messages_read_as_dnspython_reads_them(qname, answers, qtype, edns, rcode, extra, txid) -> None:
    wire = bytearray(_message(qname, answers, qtype, edns, rcode, extra).to_wire())
    wire[0:2] = txid.to_bytes(2, "big")
    taken = _agree(bytes(wire))
    # the common shape (no deferred type, no error) is always the wire reader's
    if rcode == 0 and all(t != "TXT" for _, t, _ in answers + extra):
        assert taken


@settings(max_examples=600, deadline=None)
@given(_NAME, st.lists(_RECORD, min_size=1, max_size=4), st.data())
def test_mutated_messages_are_read_as_dnspython_reads_them_or_deferred(qname, answers, data) -> None:
    """Flipped bytes, cut messages and trailing junk: the wire reader never disagrees."""
    wire = bytearray(_message(qname, answers, edns=data.draw(st.sampled_from([-1, 0]))).to_wire())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(12, len(wire) + 8))
    wire = wire[:cut] + b"\x00" * max(0, cut - len(wire))
    try:
        reference = reference_answers(bytes(wire))
    except Exception:  # dnspython itself raises outside its error classes: the wire reader must defer
        assert read_answers(bytes(wire)) is UNSURE
        return
    fast = read_answers(bytes(wire))
    assert fast is UNSURE or fast == reference
