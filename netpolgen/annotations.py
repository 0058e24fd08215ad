"""Evidence annotations on the policies written: short ``netpolgen.io/...`` keys a reviewer reads
beside the rules (``--no-annotations`` leaves them out).

- ``netpolgen.io/flows``: connections the policy's rules admitted over the window;
- ``netpolgen.io/first-seen`` / ``netpolgen.io/last-seen``: when the first and last of them were seen;
- ``netpolgen.io/window``: the observation window the evidence comes from (ISO 8601 interval);
- ``netpolgen.io/rule-flows``: connections per rule (``ingress[0]=12 egress[1]=3``); a rule at 0
  is allowed for another reason (the TCP twin of a DNS rule) or was kept from an earlier run.

Everything is computed from the input alone (no clock, no host name), so the same input gives
the same annotations and a re-run leaves the files byte-identical. Default-deny policies carry
none: they hold no rule the traffic could be evidence for.
"""

from __future__ import annotations

from netpolgen.evidence import Evidence, when

PREFIX = "netpolgen.io/"
FLOWS = PREFIX + "flows"
FIRST_SEEN = PREFIX + "first-seen"
LAST_SEEN = PREFIX + "last-seen"
WINDOW = PREFIX + "window"
RULE_FLOWS = PREFIX + "rule-flows"
EVIDENCE_KEYS = (FLOWS, FIRST_SEEN, LAST_SEEN, WINDOW, RULE_FLOWS)


def _with_own_metadata(policy: dict) -> dict:
    """A copy that shares the spec (policies are read, never edited) but owns its metadata."""
    q = dict(policy)
    q["metadata"] = dict(policy.get("metadata") or {})
    return q


def _has_rules(policy: dict) -> bool:
    spec = policy.get("spec") or {}
    return bool(spec.get("ingress") or spec.get("egress"))


def evidence_annotations(policy: dict, evidence: Evidence) -> dict[str, str]:
    """The evidence keys for one policy (empty for a policy without rules, and for kinds other
    than NetworkPolicy: the evidence is gathered by the NetworkPolicy engine's rule references)."""
    if policy.get("kind", "NetworkPolicy") != "NetworkPolicy" or not _has_rules(policy):
        return {}
    meta = policy.get("metadata") or {}
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    rules = evidence.of_policy(key)
    t = evidence.tally(evidence.policy_edges(key))
    out = {FLOWS: str(t.connections)}
    if t.first_seen is not None:
        out[FIRST_SEEN] = when(t.first_seen)
        out[LAST_SEEN] = when(t.last_seen)
    if evidence.window is not None:
        out[WINDOW] = f"{when(evidence.window[0])}/{when(evidence.window[1])}"
    out[RULE_FLOWS] = " ".join(
        f"{r.ref.direction}[{r.ref.index}]={evidence.connections(r.edges)}"
        for r in sorted(rules, key=lambda r: (r.ref.direction != "ingress", r.ref.index))
    )
    return out


def annotate(policies: list[dict], evidence: Evidence) -> list[dict]:
    """Copies of ``policies`` with their evidence annotations (earlier ones replaced)."""
    out = []
    for p in policies:
        q = _without_evidence(p)
        notes = {**q["metadata"].get("annotations", {}), **evidence_annotations(q, evidence)}
        if notes:
            q["metadata"]["annotations"] = notes
        out.append(q)
    return out


def strip(policies: list[dict]) -> list[dict]:
    """Copies without evidence annotations (``--no-annotations``): the rules and their
    identifying annotations (workload, DNS names) only."""
    out = []
    for p in policies:
        out.append(_without_evidence(p))
    return out


def _without_evidence(p: dict) -> dict:
    """A copy of ``p`` (its own metadata) whose annotations hold no evidence key; none at all
    when nothing else is left."""
    q = _with_own_metadata(p)
    meta = q["metadata"]
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in EVIDENCE_KEYS}
    if notes:
        meta["annotations"] = notes
    else:
        meta.pop("annotations", None)
    return q
