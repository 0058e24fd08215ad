"""The report as Markdown for a pull-request comment: the same sections as the HTML, a Mermaid
diagram for small graphs (GitHub and GitLab draw it), and tables cut before a comment's limit."""

from __future__ import annotations

import re

from netpolgen.report.model import DENIED, REMOVED, Report, RuleRow
from netpolgen.report.svg import COLOURS, port_label

#: Forges cap a comment at 65,536 characters; the rule tables (all of them together) stop well
#: before, and the policies after that are listed by name.
MAX_RULE_ROWS = 250
MERMAID_MAX_NODES = 40


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _mermaid(report: Report) -> list[str]:
    ids = {n.id: f"n{i}" for i, n in enumerate(report.nodes)}
    out = ["```mermaid", "flowchart LR"]
    groups: dict[str, list] = {}
    for n in report.nodes:
        groups.setdefault(n.group, []).append(n)
    for gi, (g, ns) in enumerate(sorted(groups.items())):
        out.append(f'  subgraph g{gi}["{_quote(g)}"]')
        out += [f'    {ids[n.id]}["{_quote(n.label)}"]' for n in ns]
        out.append("  end")
    styles = []
    for i, e in enumerate(report.edges):
        arrow = "-.->" if e.status in (REMOVED, DENIED) else "-->"
        out.append(f'  {ids[e.src]} {arrow}|"{_quote(port_label(e.ports))}"| {ids[e.dst]}')
        colour = COLOURS[e.status]
        styles.append(f"  linkStyle {i} stroke:{colour}")
    return out + styles + ["```"]


def _quote(text: str) -> str:
    return re.sub(r'["\[\]{}|<>]', "_", text)


def _rules_table(rows: list[RuleRow], budget: int = MAX_RULE_ROWS) -> list[str]:
    out = ["| rule | allows | status | connections | bytes | first seen | last seen | input files | example |",
           "|---|---|---|--:|--:|---|---|---|---|"]
    for r in rows[:budget]:
        example = f"`{r.example_src}` → `{r.example_dst}`" if r.example_src else r.note
        out.append(f"| `{_cell(r.ref)}` | {_cell(r.text)} | {r.status} | {r.connections:,} | "
                   f"{f'{r.bytes:,}' if r.bytes else '-'} | {r.first_seen or '-'} | {r.last_seen or '-'} | "
                   f"{_cell(', '.join(r.files)) or '-'} | {_cell(example)} |")
    if len(rows) > budget:
        out.append(f"\n… and {len(rows) - budget} more rules (see the HTML report).")
    return out


def _bullets(items: list[str], empty: str) -> list[str]:
    return [f"- {i}" for i in items] if items else [f"_{empty}_"]


#: The size the twin aims below (a comment's limit is 65,536; the rest is margin for a preamble).
MAX_CHARS = 60_000


def render_markdown(report: Report) -> str:
    """The twin; with fewer rule rows when long selectors would push it past ``MAX_CHARS``."""
    for budget in (MAX_RULE_ROWS, 120, 60, 20, 0):
        text = _render(report, budget)
        if len(text) <= MAX_CHARS:
            break
    return text


def _render(report: Report, max_rows: int) -> str:
    r = report
    chk = r.self_check
    rules = [row for p in r.policies for row in p.rules]
    counts = {s: sum(1 for x in rules if x.status == s) for s in ("new", "unchanged")}
    if chk.unavailable:
        verdict = f":warning: self-check skipped: {chk.unavailable}"
    elif chk.denied:
        verdict = f":x: self-check: {len(chk.denied)} of {chk.checked} observed connections are DENIED"
    else:
        verdict = f":white_check_mark: self-check: all {chk.checked} observed connection{'' if chk.checked == 1 else 's'} allowed"
    window = f"{r.window[0]} .. {r.window[1]}" if r.window else "unknown"
    out = [f"## {r.title}", "",
           f"{len(r.policies)} policies, {len(rules)} rules ({counts['new']} new, {counts['unchanged']} unchanged"
           + (f", {len(r.unused)} unused" if r.baseline else "") + f"), {r.connections:,} connections observed "
           f"over {window}" + (f", compared with {r.baseline}" if r.baseline else "") + ".", "", verdict, ""]
    out += [f"- `{d}`" for d in chk.denied]
    if chk.denied:
        out.append("")
    out.append("### Connectivity")
    if len(r.nodes) <= MERMAID_MAX_NODES:
        out += _mermaid(r)
    else:
        out.append(f"_{len(r.nodes)} nodes and {len(r.edges)} arrows: too many for a diagram here; "
                   "the HTML report draws them._")
    out += ["", "### Policies and their evidence", ""]
    budget = max_rows
    unlisted: list[str] = []
    for p in r.policies:
        n = len(p.rules)
        if budget <= 0:
            unlisted.append(f"`{p.key}` ({p.status}, {n} rule{'' if n == 1 else 's'})")
            continue
        out.append(f"<details><summary><b>{p.key}</b> ({p.status}, {n} rule{'' if n == 1 else 's'})</summary>")
        out.append("")
        out += _rules_table(list(p.rules), budget) if p.rules else ["_default-deny: no rules_"]
        budget -= n
        out += ["", "</details>", ""]
    if unlisted:
        out += [f"{len(unlisted)} more policies, their rules in the HTML report: " + ", ".join(unlisted), ""]
    if r.baseline:
        out += ["### Rules nothing used over the window", ""]
        out += _rules_table(list(r.unused)) if r.unused else ["_none_"]
        out.append("")
    c = r.coverage
    out += ["### Coverage", "", "**Namespaces with pods and no observed traffic**", ""]
    out += _bullets([f"{ns} ({n} pods)" for ns, n in c.quiet_namespaces], "none")
    out += ["", "**Low-confidence workloads** (seen briefly or in few connections)", ""]
    out += _bullets([f"`{w}`: {y}" for w, y in c.low_confidence], "none")
    out += ["", "**Unresolved addresses** (no rule written)", ""]
    out += _bullets([f"`{a}`: {y}" for a, y in c.unresolved], "none")
    out += ["", "**Label classes** (workloads no selector can tell apart)", ""]
    out += _bullets([f"{ns}: `{{{lab}}}`: {', '.join(ws)}" for ns, lab, ws in c.label_classes], "none")
    out += ["", "**Widened CIDRs**", ""]
    out += _bullets([f"{p}: `{cidr}`" for p, cidr in c.widened], "none")
    if c.not_selectable:
        out += ["", "**Workloads that could not be selected exactly**", ""]
        out += _bullets(list(c.not_selectable), "none")
    return "\n".join(out) + "\n"
