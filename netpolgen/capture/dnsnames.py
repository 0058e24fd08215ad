"""DNS answers seen in a capture → the names each address was looked up by.

A workload that calls an outside service asks DNS first; the answer (a UDP datagram from port
53) says which addresses the name stood for. Those names label the ipBlock peers of egress rules
(the ``netpolgen.io/egress-dns-names`` annotation), as Hubble's DNS records do for flow logs.

The name kept is the question's, the one the workload asked for: in a CNAME chain
(``api.example.com`` → ``edge.cdn.net`` → A 203.0.113.7) the address is labelled
``api.example.com``. Only answers with no error code count; a datagram that is not a DNS
message (a capture of something else on port 53) is counted and ignored.

Each distinct message is read once: the same lookup answered again differs only in its 2-byte
transaction ID, so answers are remembered by the bytes after it. The message itself is read by
``dnswire.read_answers`` when it has the usual shape, and by dnspython otherwise (the reference:
the tests check the two agree).
"""

from __future__ import annotations

import ipaddress

from netpolgen.capture.dnswire import UNSURE, Answers, read_answers
from netpolgen.names import AddressNames

#: addresses whose names are kept; past it, answers are counted but no longer learned
MAX_ADDRESSES = 1_000_000
#: names kept per address (a shared CDN address can be asked for by many names)
MAX_NAMES_PER_ADDRESS = 20
#: distinct messages whose answers are remembered, and the largest message remembered
MEMO_ENTRIES = 200_000
MEMO_MAX_BYTES = 1024


def reference_answers(payload: bytes) -> Answers:
    """What dnspython reads in ``payload``: None when it is not a DNS message; otherwise the
    question's name (lowercase, no final dot) and the A/AAAA addresses of the answer section,
    rrset by rrset -- or ("", ()) for a message that is not a response without error."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype

    try:
        msg = dns.message.from_wire(payload, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, IndexError):
        return None
    if not msg.flags & dns.flags.QR or msg.rcode() != dns.rcode.NOERROR or not msg.question:
        return "", ()
    asked = msg.question[0].name.to_text(omit_final_dot=True).lower()
    addresses = tuple(
        ipaddress.ip_address(rdata.address).compressed
        for rrset in msg.answer if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        # an A/AAAA record outside class IN has no address (GenericRdata; found by fuzzing)
        for rdata in rrset if getattr(rdata, "address", None) is not None
    )
    return asked, addresses


def answers_of(payload: bytes) -> Answers:
    """``reference_answers(payload)``, read without dnspython when the message allows."""
    found = read_answers(payload)
    return reference_answers(payload) if found is UNSURE else found  # type: ignore[return-value]


class DnsAnswers(AddressNames):
    """Accumulates address → names from DNS response payloads."""

    def __init__(self) -> None:
        super().__init__(MAX_ADDRESSES, MAX_NAMES_PER_ADDRESS)
        self.answers = 0  # responses that named at least one address
        self.unparsed = 0  # port-53 payloads that were not DNS responses
        self._memo: dict[bytes, Answers] = {}  # message minus its ID -> what it says

    def add(self, payload: bytes) -> None:
        key = payload[2:]
        memo = self._memo
        if key in memo:
            found = memo[key]
        else:
            found = answers_of(payload)
            if len(memo) < MEMO_ENTRIES and len(payload) <= MEMO_MAX_BYTES:
                memo[key] = found
        if found is None:
            self.unparsed += 1
            return
        asked, addresses = found
        for address in addresses:
            self.learn(address, asked)
        self.answers += bool(addresses)
