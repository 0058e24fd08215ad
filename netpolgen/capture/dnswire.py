"""The addresses a DNS response gives for its question, read straight from the wire.

A node capture holds tens of thousands of DNS answers, and dnspython spends ~100 µs building each
one as a message object: more than reading the whole rest of the capture. What netpolgen needs
from an answer is small: the question's name and the A/AAAA addresses of the answer section.
``read_answers`` reads just that, for the messages that look like what resolvers send (a query
response with one question, records of class IN of the common types, an EDNS record without
options), and says ``UNSURE`` for everything else; the caller then asks dnspython
(``netpolgen.capture.dnsnames.reference_answers``), so whatever this reader takes, it takes
exactly as dnspython would, and what it does not know it leaves to dnspython. The tests check
the two agree on every DNS message of the fixtures and on generated and mutated messages.

Where this reader is stricter than dnspython (a name with characters dnspython would escape in
text, a compression pointer to a place dnspython might accept), it is UNSURE, never different.
"""

from __future__ import annotations

import ipaddress
from typing import Final

#: "ask dnspython": the message is not of the shape this reader vouches for
UNSURE: Final = object()

# A result: None (not a DNS message: dnspython cannot parse it) or (question name, addresses of
# the answer section's A/AAAA records, in the order dnspython's rrsets list them).
Answers = tuple[str, tuple[str, ...]] | None

_A, _NS, _CNAME, _PTR, _AAAA, _OPT = 1, 2, 5, 12, 28, 41  # OPT has the root as owner
_NAME_TYPES = frozenset({_NS, _CNAME, _PTR})  # rdata is one (compressible) name
_CLASS_IN = 1
_MAX_POINTERS = 16  # dnspython's MAX_COMPRESSION_POINTER_CHAIN
# bytes of a label that dnspython's to_text() writes as they are (anything else it escapes)
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class _Unsure(Exception):
    pass


def _name(wire: bytes, pos: int, end: int) -> tuple[tuple[bytes, ...], int]:
    """(labels, lowercased; position after the name) of the name at ``pos``, read no further
    than ``end``. Compression pointers must point strictly backwards, before every segment read
    so far, and a segment may not run into the one it was reached from (dnspython's rules, or
    stricter)."""
    labels: list[bytes] = []
    after = -1
    limit = end
    segment = pos
    hops = 0
    length = 1
    while True:
        if pos >= limit:
            raise _Unsure
        count = wire[pos]
        if count == 0:
            pos += 1
            break
        if count < 64:
            stop = pos + 1 + count
            if stop > limit:
                raise _Unsure
            label = wire[pos + 1:stop]
            if not _PLAIN.issuperset(label):
                raise _Unsure
            labels.append(label.lower())
            length += count + 1
            pos = stop
        elif count >= 192:
            if pos + 2 > limit:
                raise _Unsure
            target = ((count & 0x3F) << 8) | wire[pos + 1]
            if after < 0:
                after = pos + 2
            if target >= segment:
                raise _Unsure
            hops += 1
            if hops > _MAX_POINTERS:
                raise _Unsure
            limit = segment  # the target may not overlap the segment it was reached from
            segment = pos = target
        else:
            raise _Unsure
    if length > 255 or not labels:
        raise _Unsure
    return tuple(labels), (pos if after < 0 else after)


def read_answers(wire: bytes) -> Answers | object:
    """The question name and the answer addresses of a DNS response, or ``UNSURE``."""
    try:
        return _read(wire)
    except _Unsure:
        return UNSURE


def _read(wire: bytes) -> Answers:
    end = len(wire)
    if end < 12:
        raise _Unsure
    flags = (wire[2] << 8) | wire[3]
    qd = (wire[4] << 8) | wire[5]
    counts = ((wire[6] << 8) | wire[7], (wire[8] << 8) | wire[9], (wire[10] << 8) | wire[11])
    # a standard query's response without error, one question (anything else: dnspython)
    if not flags & 0x8000 or flags & 0x7800 or flags & 0x000F or qd != 1:
        raise _Unsure
    qname, pos = _name(wire, 12, end)
    if pos + 4 > end or ((wire[pos + 2] << 8) | wire[pos + 3]) != _CLASS_IN:
        raise _Unsure
    pos += 4
    rrsets: dict[tuple[tuple[bytes, ...], int], list[bytes]] = {}
    have_opt = False
    for section, count in enumerate(counts):
        for _ in range(count):
            if pos < end and wire[pos] == 0:  # the root name: only EDNS's OPT record has it here
                if (section != 2 or have_opt or pos + 11 > end or (wire[pos + 1] << 8) | wire[pos + 2] != _OPT
                        or wire[pos + 5] or wire[pos + 9] or wire[pos + 10]):
                    # not OPT, a second OPT, an extended rcode (dnspython folds it into the
                    # rcode) or EDNS options: dnspython
                    raise _Unsure
                have_opt = True
                pos += 11
                continue
            owner, pos = _name(wire, pos, end)
            if pos + 10 > end:
                raise _Unsure
            rtype = (wire[pos] << 8) | wire[pos + 1]
            rclass = (wire[pos + 2] << 8) | wire[pos + 3]
            rdlen = (wire[pos + 8] << 8) | wire[pos + 9]
            pos += 10
            stop = pos + rdlen
            if stop > end:
                raise _Unsure
            if rclass != _CLASS_IN:
                raise _Unsure
            if rtype == _A:
                if rdlen != 4:
                    raise _Unsure
            elif rtype == _AAAA:
                if rdlen != 16:
                    raise _Unsure
            elif rtype in _NAME_TYPES:
                _, after = _name(wire, pos, stop)
                if after != stop:
                    raise _Unsure
            else:
                raise _Unsure
            if section == 0 and (rtype == _A or rtype == _AAAA):
                rdata = wire[pos:stop]
                group = rrsets.setdefault((owner, rtype), [])
                if rdata not in group:  # a set: the same record twice is one
                    group.append(rdata)
            pos = stop
    asked = b".".join(qname).decode("ascii")
    addresses = tuple(
        ipaddress.ip_address(rdata).compressed for group in rrsets.values() for rdata in group
    )
    return asked, addresses
