"""The human summary of a generate run (printed on stderr): what was read, what became policy,
and everything the tool could not be sure of — said, not guessed."""

from __future__ import annotations

from netpolgen.pipeline import GenerateResult
from netpolgen.resolve import ResolveReport
from netpolgen.timeparse import format_when

_MAX_LISTED = 20


def _when(ts: float | None) -> str:
    return format_when(ts)


def _listed(items: list[str], indent: str = "    ") -> list[str]:
    out = [indent + i for i in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        out.append(f"{indent}... and {len(items) - _MAX_LISTED} more")
    return out


def _external_peers(result: GenerateResult) -> list[str]:
    """Each outside address the rules name, with the DNS names seen resolving to it."""
    edges = result.edges
    peers: dict[str, set[str]] = {}
    for kind_col, wl_col in (("src_kind", "src_workload"), ("dst_kind", "dst_workload")):
        rows = edges[edges[kind_col] == "external"]
        for ip, names in zip(rows[wl_col], rows["dst_names"] if kind_col == "dst_kind" else [""] * len(rows), strict=True):
            peers.setdefault(ip, set()).update(n for n in str(names).split(",") if n)
    return [f"{ip}" + (f" ({', '.join(sorted(n))})" if n else "") for ip, n in sorted(peers.items())]


def _node_peers(result: GenerateResult) -> list[str]:
    """Each node address the rules name (as ipBlock), with what the inventory calls it."""
    edges = result.edges
    out: dict[str, str] = {}
    for kind_col, wl_col in (("src_kind", "src_workload"), ("dst_kind", "dst_workload")):
        for ip in edges.loc[edges[kind_col] == "node", wl_col].unique():
            node = result.inventory.node_at(ip)
            out[ip] = node.name if node is not None and node.name != ip else ""
    return [ip + (f" ({name})" if name else "") for ip, name in sorted(out.items())]


def format_self_check(result: GenerateResult, limit: int | None = _MAX_LISTED) -> list[str]:
    """The self-check's lines; ``limit=None`` lists every denied connection."""
    chk = result.self_check
    if chk.unavailable:
        return [f"self-check: skipped: {chk.unavailable}"]
    if not chk.denied:
        return [f"self-check: passed: the generated policies allow all {chk.checked} observed connections they cover"]
    head = (f"self-check: FAILED: {len(chk.denied)} of {chk.checked} observed connections are DENIED"
            " by the generated policies:")
    listed = [f"    {d}" for d in chk.denied] if limit is None else _listed(chk.denied)
    return [head, *listed]


def format_reading(result: GenerateResult) -> str:
    """The summary's first part: each input, what was read from it and what was skipped."""
    return "\n".join(_reading_lines(result)) + "\n"


def no_traffic_message(result: GenerateResult) -> str:
    """Why there is nothing to write: what was read, in one line."""
    records = sum(src.stats.records for src in result.sources)
    skipped: dict[str, int] = {}
    for src in result.sources:
        for reason, n in src.stats.skipped.counts.items():
            skipped[reason] = skipped.get(reason, 0) + n
    parts = [f"{len(result.sources)} file(s), {records} records or packets"]
    if skipped:
        parts.append(f"{sum(skipped.values())} skipped ({', '.join(f'{r}: {n}' for r, n in sorted(skipped.items()))})")
    rep = result.report
    if rep.non_port_protocols:
        parts.append("only protocols without ports (" + ", ".join(f"{k} {v}" for k, v in sorted(rep.non_port_protocols.items())) + ")")
    if rep.outside_window:
        parts.append(f"{rep.outside_window} rows outside --since/--until")
    if rep.loopback_connections:
        parts.append(f"{rep.loopback_connections} loopback connections")
    return "no usable traffic (read " + "; ".join(parts) + "); nothing written"


def _reading_lines(result: GenerateResult) -> list[str]:
    lines: list[str] = []
    for src in result.sources:
        st = src.stats
        unit = "packets" if src.format_name == "pcap" else "records"
        line = f"read {src.path} ({src.format_name}): {st.records} {unit}"
        if st.first_seen is not None:
            line += f", {_when(st.first_seen)} .. {_when(st.last_seen)}"
        lines.append(line)
        if st.truncated:
            lines.append("  truncated: the file ends mid-record; what was read before it is used")
        for key in sorted(st.counters):
            lines.append(f"  {key}: {st.counters[key]}")
        if st.skipped.total:
            reasons = ", ".join(f"{r}: {n}" for r, n in sorted(st.skipped.counts.items()))
            lines.append(f"  skipped {st.skipped.total} records ({reasons})")
            lines.extend(_listed(st.skipped.examples))
        for note in st.notes:
            lines.append(f"  {note}")
    return lines


def _connection_lines(rep: ResolveReport) -> list[str]:
    """The connections line and what was done to them on the way (each only when it happened)."""
    lines: list[str] = []
    lines.append(f"connections: {rep.connections}"
                 f" ({rep.inferred_directions} with direction inferred, not seen;"
                 f" {rep.reoriented_by_inventory} re-oriented by inventory ports)")
    if rep.outside_window:
        lines.append(f"  outside --since/--until: {rep.outside_window} rows ignored")
    if rep.non_port_protocols:
        lines.append("  no rules for protocols without ports: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(rep.non_port_protocols.items())))
    if rep.loopback_connections:
        lines.append(f"  loopback (inside a pod or node; no policy applies): {rep.loopback_connections}")
    if rep.service_connections:
        lines.append(f"  via Services (mapped to backend pods and target ports): {rep.service_connections}")
    if rep.sightings_merged:
        lines.append(f"  seen at several capture points (counted once): {rep.sightings_merged}")
    if rep.nat.dnat_merged:
        lines.append(f"  seen before and after Service DNAT (counted once, backend from the DNAT side): {rep.nat.dnat_merged}")
    if rep.nat.snat_merged:
        lines.append(f"  seen before and after masquerade/SNAT (attributed to the client, not the node): {rep.nat.snat_merged}")
    if rep.denied_connections:
        lines.append(f"  denied by the source's own verdict (reported, not allowed): {rep.denied_connections}")
    return lines


def format_summary(result: GenerateResult, written: list[str] | None = None) -> str:
    rep = result.report
    lines = _reading_lines(result)
    lines.extend(_connection_lines(rep))
    lines.append(f"edges: {len(result.edges)}")
    syn = result.synthesis
    n_deny = sum(1 for p in syn.policies if p["metadata"]["name"] == "default-deny")
    lines.append(f"policies: {len(syn.policies)} ({n_deny} default-deny, {len(syn.policies) - n_deny} allow)"
                 f" in namespaces: {', '.join(syn.namespaces) or '-'}")
    if written is not None:
        lines.append(f"written: {len(written)} files")
    for kind, docs in getattr(syn, "policy_sets", {}).items():
        lines.append(f"  --kind {kind}: {len(docs)} documents ({', '.join(sorted({d['kind'] for d in docs}))})")
    if getattr(syn, "widening", None):
        lines.append("outside addresses widened into CIDRs (--max-cidrs-per-rule):")
        lines.extend(f"    {w}" for w in syn.widening)
    ignored = getattr(result.inventory, "ignored_kinds", None) or {}
    if ignored:
        lines.append("inventory: objects of kinds netpolgen does not use (ignored): "
                     + ", ".join(f"{kind} {n}" for kind, n in sorted(ignored.items())))
    if result.inventory.skipped_files:
        lines.append("inventory: not read (skipped):")
        lines.extend(_listed(sorted(result.inventory.skipped_files)))
    syn_classes = result.synthesis.label_classes
    if result.inventory.inferred_owners:
        inferred = result.inventory.inferred_owners
        lines.append(f"owners inferred from pod names and labels (the records name none): {len(inferred)}")
        lines.extend(_listed([f"{ref}: {how}" for ref, how in sorted(inferred.items())]))
    if syn_classes:
        lines.append(f"label classes merged (labels cannot tell the workloads apart; one policy each): {len(syn_classes)}")
        lines.extend(_listed(syn_classes))
    nodes = _node_peers(result)
    if nodes:
        lines.append("node peers (ipBlock /32 or /128; pod labels cannot select a node):")
        lines.extend(_listed(nodes))
    external = _external_peers(result)
    if external:
        lines.append("external peers (ipBlock /32 or /128):")
        lines.extend(_listed(external))
    if rep.unresolved:
        lines.append(f"unresolved addresses (no rule written; {rep.unresolved_connections} connections):")
        lines.extend(_listed([f"{ip}: {why}" for ip, why in sorted(rep.unresolved.items())]))
    if rep.host_network_peers:
        lines.append("node / hostNetwork peers (allowed as ipBlock /32):")
        lines.extend(_listed([f"{ip}: {', '.join(sorted(p))}" for ip, p in sorted(rep.host_network_peers.items())]))
    if rep.nat.masquerade_only:
        lines.append("node -> outside, only the masqueraded form seen (the pod behind it is unknown; no rule):")
        lines.extend(_listed(rep.nat.masquerade_only))
    if syn.problems:
        lines.append("workloads that could not be selected exactly (no policy written for them):")
        lines.extend(_listed(syn.problems))
    if syn.skipped_edges:
        lines.append(f"edges with no rule because of the above: {syn.skipped_edges}")
    chk = result.self_check
    lines.append(f"observed connections: {chk.observed} ({chk.checked} in the namespaces written:"
                 f" {chk.allowed} allowed, {len(chk.denied)} denied by the output);"
                 f" addresses unresolved: {len(rep.unresolved)}")
    lines.extend(format_self_check(result, limit=None if chk.failed else _MAX_LISTED))
    return "\n".join(lines) + "\n"
