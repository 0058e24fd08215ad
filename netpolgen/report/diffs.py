"""``diff`` and ``explain`` results as Markdown (for a pull-request comment) and as JUnit cases
(each denied observed connection a failed test)."""

from __future__ import annotations

from netpolgen.report.junit import Case


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def observed_diff_markdown(d) -> str:
    """``diff_observed``'s result: the verdict first, then what breaks, what is unused, what is
    open; tables a reviewer can scan."""
    head = (":x: **{} would be denied**".format(_plural(d.denied_connections, "observed connection"))
            if d.denied else ":white_check_mark: **every observed connection is allowed**")
    out = ["## netpolgen diff: observed traffic vs existing policies", "",
           f"{head} — {_plural(d.connections, 'connection')} evaluated against "
           f"{d.policies} polic{'y' if d.policies == 1 else 'ies'} ({_plural(d.rules, 'rule')}).", ""]
    if d.denied:
        out += ["### Denied (these break when the policies are enforced)", "",
                "| source | destination | port | connections | denied at | by policies | example |",
                "|---|---|---|--:|---|---|---|"]
        out += [f"| `{_cell(g.src)}` | `{_cell(g.dst)}` | {g.proto}/{g.port} | {g.connections:,} | {g.directions} | "
                f"{_cell(', '.join(g.policies)) or '-'} | `{_cell(g.example)}` |" for g in d.denied]
        out.append("")
    if d.unused:
        out += ["<details><summary>Unused rules ({}): admitted no observed connection</summary>".format(len(d.unused)), "",
                "| rule | allows |", "|---|---|"]
        out += [f"| `{_cell(u.rule)}` | {_cell(u.text)}{' (selects no pod)' if u.selected_pods == 0 else ''} |" for u in d.unused]
        out += ["", "</details>", ""]
    if d.unobserved:
        out += ["<details><summary>Allowed but never observed ({} workload pairs)</summary>".format(len(d.unobserved)), "",
                "| source | destination | allowed, not observed |", "|---|---|---|"]
        out += [f"| `{_cell(p.src)}` | `{_cell(p.dst)}` | {_cell(p.describe())} |" for p in d.unobserved]
        out += ["", "</details>", ""]
    if d.open_ingress or d.open_egress:
        out += ["<details><summary>Workloads no policy isolates</summary>", ""]
        if d.open_ingress:
            out.append(f"- ingress: {', '.join(f'`{w}`' for w in d.open_ingress)}")
        if d.open_egress:
            out.append(f"- egress: {', '.join(f'`{w}`' for w in d.open_egress)}")
        out += ["", "</details>", ""]
    if d.unresolved_rows or d.source_denied_rows:
        out.append(f"_Not evaluated: {_plural(d.unresolved_rows, 'row')} with an unresolved endpoint, "
                   f"{_plural(d.source_denied_rows, 'row')} the source reported as dropped._")
    return "\n".join(out).rstrip() + "\n"


def observed_diff_cases(d) -> list[Case]:
    cases = [Case(f"{g.src} -> {g.dst} {g.proto}/{g.port}", "netpolgen.diff.denied",
                  f"{g.connections} observed connections denied at {g.directions} by {', '.join(g.policies) or '-'}",
                  detail=f"denied at {g.directions} by {', '.join(g.policies) or '-'}; e.g. {g.example}")
             for g in d.denied]
    cases += [Case(f"unused {u.rule}", "netpolgen.diff.unused", skipped=f"admitted no observed connection: {u.text}")
              for u in d.unused]
    if not d.denied:
        cases.insert(0, Case(f"{d.connections} observed connections allowed", "netpolgen.diff.allowed"))
    return cases


def policy_set_diff_markdown(d) -> str:
    from netpolgen.diff import ADDED, CHANGED, REMOVED

    if d.equivalent:
        return (f"## netpolgen diff: {d.old_label} vs {d.new_label}\n\n:white_check_mark: the two policy sets allow "
                f"the same connectivity ({d.workloads} workloads compared).\n")
    out = [f"## netpolgen diff: {d.old_label} vs {d.new_label}", "",
           f":warning: connectivity differs for {_plural(len(d.entries), 'pair')} of workloads or address ranges.", "",
           f"| change | source | destination | {_cell(d.old_label)} | {_cell(d.new_label)} |", "|---|---|---|---|---|"]
    for kind in (CHANGED, ADDED, REMOVED):
        for e in d.of_kind(kind):
            info = f" ({_cell(e.workloads_info)})" if e.workloads_info else ""
            out.append(f"| {kind}{info} | `{_cell(e.src)}` | `{_cell(e.dst)}` | {_cell(e.old)} | {_cell(e.new)} |")
    return "\n".join(out) + "\n"


def policy_set_diff_cases(d) -> list[Case]:
    if d.equivalent:
        return [Case(f"{d.old_label} and {d.new_label} allow the same connectivity", "netpolgen.diff.equivalent")]
    return [Case(f"{e.src} -> {e.dst}", f"netpolgen.diff.{e.kind}", f"{e.kind}: {d.old_label}: {e.old}; {d.new_label}: {e.new}")
            for e in d.entries]


def verdict_markdown(v, rule_text=None) -> str:
    out = [f"## netpolgen explain: `{v.src}` → `{v.dst}` {v.proto}/{v.port}", "",
           (":white_check_mark: **allowed**" if v.allowed else ":x: **denied**"), "",
           "| direction | at | verdict | isolated by | rules / reason |", "|---|---|---|---|---|"]
    for d, end in ((v.egress, v.src), (v.ingress, v.dst)):
        rules = "<br>".join(f"`{r}`" + (f": {_cell(rule_text[r])}" if rule_text and r in rule_text else "") for r in d.rules)
        out.append(f"| {d.direction} | `{_cell(end)}` | {'allowed' if d.allowed else 'denied'} | "
                   f"{_cell(', '.join(d.policies)) or '-'} | {rules or _cell(d.reason)} |")
    out += [f"\n_note: {n}_" for n in v.notes]
    return "\n".join(out) + "\n"


def verdict_cases(v) -> list[Case]:
    denied = [d for d in (v.egress, v.ingress) if not d.allowed]
    msg = "; ".join(f"{d.direction} denied: {d.reason}" for d in denied)
    return [Case(f"{v.src} -> {v.dst} {v.proto}/{v.port}", "netpolgen.explain", msg)]
