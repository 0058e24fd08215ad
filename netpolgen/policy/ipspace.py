"""Address ranges for ipBlocks: integer intervals per IP family, and partitions of the space.

An ipBlock (``cidr`` minus ``except``) is a union of inclusive integer intervals. For
workload-level connectivity the address space is cut into *atoms* at every boundary any ipBlock
draws: inside an atom every address is treated the same by every rule, so one evaluation per
atom is exact. That is also how np-guard names external peers (``a.b.c.d-w.x.y.z[External]``).
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass
from typing import Iterable

FAMILY_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, order=True)
class IPRange:
    """Inclusive interval of addresses of one family."""

    family: int
    start: int
    end: int

    def __str__(self) -> str:
        return f"{_addr(self.family, self.start)}-{_addr(self.family, self.end)}"

    def contains(self, family: int, value: int) -> bool:
        return family == self.family and self.start <= value <= self.end

    def cidrs(self) -> list[str]:
        """The shortest list of CIDRs covering exactly this range."""
        first, last = _addr_obj(self.family, self.start), _addr_obj(self.family, self.end)
        return [str(n) for n in ipaddress.summarize_address_range(first, last)]


def _addr_obj(family: int, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value)


def _addr(family: int, value: int) -> str:
    return str(_addr_obj(family, value))


def universe(family: int) -> IPRange:
    return IPRange(family, 0, (1 << FAMILY_BITS[family]) - 1)


def parse_ip(text: str) -> tuple[int, int] | None:
    """(family, integer value) of an address, or None when ``text`` is not one.

    IPv4-mapped IPv6 addresses count as IPv4: that is the address the policy would see.
    """
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.version, int(addr)


def cidr_range(cidr: str) -> IPRange:
    """The range of a CIDR. Host bits are ignored (as the API server accepts them). Raises
    ValueError for anything that is not a CIDR."""
    if "/" not in cidr:
        raise ValueError(f"{cidr!r} is not a CIDR (address/prefix)")
    net = ipaddress.ip_network(cidr.strip(), strict=False)
    return IPRange(net.version, int(net.network_address), int(net.broadcast_address))


def subtract(ranges: Iterable[IPRange], holes: Iterable[IPRange]) -> tuple[IPRange, ...]:
    """``ranges`` minus ``holes`` as sorted disjoint ranges."""
    out: list[IPRange] = []
    hole_list = sorted(holes)
    for r in merge_touching(ranges):
        cur = r.start
        for h in hole_list:
            if h.family != r.family or h.end < cur or h.start > r.end:
                continue
            if h.start > cur:
                out.append(IPRange(r.family, cur, h.start - 1))
            cur = max(cur, h.end + 1)
            if cur > r.end:
                break
        if cur <= r.end:
            out.append(IPRange(r.family, cur, r.end))
    return tuple(out)


def merge_touching(ranges: Iterable[IPRange]) -> list[IPRange]:
    """Merge overlapping or adjacent ranges of the same family."""
    out: list[IPRange] = []
    for r in sorted(ranges):
        if out and out[-1].family == r.family and r.start <= out[-1].end + 1:
            last = out[-1]
            out[-1] = IPRange(r.family, last.start, max(last.end, r.end))
        else:
            out.append(r)
    return out


class Partition:
    """The atoms of one family's address space cut at a set of boundaries.

    Atom ``i`` runs from ``starts[i]`` to ``starts[i+1] - 1`` (the last to the family's end).
    """

    def __init__(self, family: int, ranges: Iterable[IPRange] = ()) -> None:
        self.family = family
        top = universe(family).end
        cuts = {0}
        for r in ranges:
            if r.family != family:
                continue
            cuts.add(r.start)
            if r.end < top:
                cuts.add(r.end + 1)
        self.starts: list[int] = sorted(cuts)
        self._top = top

    def __len__(self) -> int:
        return len(self.starts)

    def atom(self, i: int) -> IPRange:
        end = self.starts[i + 1] - 1 if i + 1 < len(self.starts) else self._top
        return IPRange(self.family, self.starts[i], end)

    def atoms(self) -> list[IPRange]:
        return [self.atom(i) for i in range(len(self.starts))]

    def index_of(self, value: int) -> int:
        """The atom holding address ``value``."""
        return bisect.bisect_right(self.starts, value) - 1
