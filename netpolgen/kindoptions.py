"""``generate``'s output-kind and CIDR-budget flags as SynthesisOptions fields, checked."""

from __future__ import annotations

import ipaddress

from netpolgen.errors import UsageError


def kind_options(kinds: list[str] | None, fqdn_patterns: list[str] | None, max_cidrs: int | None,
                 floor_v4: int, floor_v6: int, known: list[str] | None, existing: str | None = None,
                 dns_patterns: list[str] | None = None) -> dict:
    """Keyword arguments for ``SynthesisOptions`` (none when the flags keep the defaults, so a
    default run is built exactly as before)."""
    from netpolgen.cidrs import CidrBudget
    from netpolgen.kinds import check_kinds

    out: dict = {}
    if kinds:
        out["kinds"] = check_kinds(tuple(k.strip().lower() for k in kinds))
        if existing is not None and out["kinds"] != ("networkpolicy",):
            raise UsageError(None, "--existing", "merges NetworkPolicy files only; use it without --kind, or --kind networkpolicy")
    if fqdn_patterns:
        for p in fqdn_patterns:
            if not p or any(c.isspace() for c in p):
                raise UsageError(None, "--fqdn-pattern", f"{p!r} is not a DNS name pattern")
        out["fqdn_patterns"] = tuple(fqdn_patterns)
    for p in dns_patterns or []:
        if not p or any(c.isspace() for c in p):
            raise UsageError(None, "--dns-lookup-pattern", f"{p!r} is not a DNS name pattern")
    if dns_patterns:
        out["dns_patterns"] = tuple(dns_patterns)
    if known and max_cidrs is None:
        raise UsageError(None, "--known-range", "only applies with --max-cidrs-per-rule")
    for text in known or []:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError as e:
            raise UsageError(None, "--known-range", f"{text!r} is not a CIDR ({e})") from None
    if max_cidrs is not None:
        out["cidr_budget"] = CidrBudget(max_cidrs, floor_v4, floor_v6, tuple(known or ()))
    return out
