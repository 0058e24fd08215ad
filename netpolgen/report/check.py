"""The self-check of a policy set read back from disk (``netpolgen report``): every observed
edge touching a namespace the policies cover must be allowed by them."""

from __future__ import annotations

from netpolgen.evidence import EdgeEvidence, Evidence
from netpolgen.report.junit import Case
from netpolgen.report.model import CheckView


def edge_line(e: EdgeEvidence) -> str:
    """As the generate self-check writes it: ``src -> dst PROTO/port``."""
    return f"{e.src} -> {e.dst} {e.proto}/{e.port}"


def covered_edges(evidence: Evidence, namespaces: set[str]) -> list[int]:
    return [i for i, e in enumerate(evidence.edges) if e.src_namespace in namespaces or e.dst_namespace in namespaces]


def policy_namespaces(policies: list[dict]) -> set[str]:
    return {str((p.get("metadata") or {}).get("namespace", "")) for p in policies}


def check_view(evidence: Evidence, policies: list[dict]) -> CheckView:
    ids = covered_edges(evidence, policy_namespaces(policies))
    denied = sorted(edge_line(evidence.edges[i]) for i in ids if not evidence.admitted[i])
    return CheckView(checked=len(ids), denied=tuple(denied))


def junit_cases(evidence: Evidence, policies: list[dict]) -> list[Case]:
    """One case per observed edge the policies govern; failed when they deny it."""
    cases = []
    for i in covered_edges(evidence, policy_namespaces(policies)):
        e = evidence.edges[i]
        ok = evidence.admitted[i]
        msg = "" if ok else f"observed {e.connections} connections that the policies deny"
        cases.append(Case(edge_line(e), f"netpolgen.{e.dst_namespace or e.src_namespace or 'outside'}", msg,
                          detail=f"{msg}; e.g. {e.example_src} -> {e.example_dst}" if msg else ""))
    return cases
