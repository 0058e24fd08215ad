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
from typing import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

#: addresses whose names are kept; past it, answers are counted but no longer learned
MAX_ADDRESSES = 1_000_000
#: names kept per address (a shared CDN address can be asked for by many names)
MAX_NAMES_PER_ADDRESS = 20

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


class DnsAnswers:
    """Accumulates address → names from DNS response payloads."""

    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {}
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
                self._learn(ipaddress.ip_address(rdata.address).compressed, asked)
                learned = True
        self.answers += learned

    def _learn(self, address: str, name: str) -> None:
        known = self.names.get(address)
        if known is None:
            if len(self.names) >= MAX_ADDRESSES:
                return
            known = self.names[address] = set()
        if len(known) < MAX_NAMES_PER_ADDRESS:
            known.add(name)

    def label(self, addresses: Iterable[str]) -> list[str]:
        """Comma-joined sorted names for each address ("" when none), as the flow table's
        ``dst_names`` column holds them."""
        cache: dict[str, str] = {}
        out = []
        for a in addresses:
            text = cache.get(a)
            if text is None:
                text = cache[a] = ",".join(sorted(self.names.get(a, ())))
            out.append(text)
        return out
