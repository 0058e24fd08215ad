"""DNS answers seen in a capture → the names each address was looked up by.

A workload that calls an outside service asks DNS first; the answer (a UDP datagram from port
53) says which addresses the name stood for. Those names label the ipBlock peers of egress rules
(the ``netpolgen.io/egress-dns-names`` annotation), as Hubble's DNS records do for flow logs.

The name kept is the question's, the one the workload asked for: in a CNAME chain
(``api.example.com`` → ``edge.cdn.net`` → A 203.0.113.7) the address is labelled
``api.example.com``. Only answers with no error code count; a datagram that is not a DNS
message (a capture of something else on port 53) is counted and ignored. Messages are parsed
with dnspython.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from netpolgen.names import AddressNames

#: addresses whose names are kept; past it, answers are counted but no longer learned
MAX_ADDRESSES = 1_000_000
#: names kept per address (a shared CDN address can be asked for by many names)
MAX_NAMES_PER_ADDRESS = 20

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


class DnsAnswers(AddressNames):
    """Accumulates address → names from DNS response payloads."""

    def __init__(self) -> None:
        super().__init__(MAX_ADDRESSES, MAX_NAMES_PER_ADDRESS)
        self.answers = 0  # responses that named at least one address
        self.unparsed = 0  # port-53 payloads that were not DNS responses

    def add(self, payload: bytes) -> None:
        try:
            msg = dns.message.from_wire(payload, ignore_trailing=True)
        except (dns.exception.DNSException, ValueError, IndexError):
            self.unparsed += 1
            return
        if not msg.flags & dns.flags.QR or msg.rcode() != dns.rcode.NOERROR or not msg.question:
            return
        asked = msg.question[0].name.to_text(omit_final_dot=True).lower()
        learned = False
        for rrset in msg.answer:
            if rrset.rdtype not in _ADDRESS_TYPES:
                continue
            for rdata in rrset:
                address = getattr(rdata, "address", None)  # absent outside class IN (found by fuzzing)
                if address is None:
                    continue
                self.learn(ipaddress.ip_address(address).compressed, asked)
                learned = True
        self.answers += learned
