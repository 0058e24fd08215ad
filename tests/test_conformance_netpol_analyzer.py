"""Conformance with np-guard netpol-analyzer's test cases (../shared/samples/netpol-analyzer).

For every case directory with an expected output, the engine reads the same objects and must
print the same text, line for line:
- connlist: ``tests/<case>/`` → ``test_outputs/connlist/<case>_connlist_output.txt``;
- diff: ``tests/<NEW>/`` vs ``tests/<OLD>/`` → ``test_outputs/diff/diff_between_<NEW>_and_<OLD>.txt``;
- explain: every allowed/denied group of ``<case>_explain_output.txt`` names the same
  isolating policies and admitting rules as ``Engine.evaluate`` on a representative pair;
- the pod x pod matrix of the real onlineboutique cluster (``connections_map_output.txt``).

Skipped, and why:
- ``netpol-demo`` (explain): AdminNetworkPolicy and BaselineAdminNetworkPolicy
  (policy.networking.k8s.io) — outside NetworkPolicy v1;
- ``acs-security-demos_udp-5353_deny`` (explain): no input directory of that name (np-guard
  builds it in Go code);
- the ``.json``/``.csv``/``.md`` expected outputs: other renderings of the ``.txt`` compared here;
- ``services``, ``onlineboutique_workloads_changed_*``, ``ipblockstest_4``,
  ``netpol-diff-example-minimal``, ``acs-security-demos-new``, ``deny_all_*``: no connlist
  expected output (they are compared through the diffs that use them).

Partially compared, and why:
- ``acs-security-demos`` (connlist, diff, explain): lines about ``{ingress-controller}`` come
  from OpenShift Route / Ingress objects, which are outside NetworkPolicy v1; they are removed
  from the expected text, everything else must match;
- onlineboutique pod matrix: the diagonal (a pod to itself) is left out. np-guard always allows
  it; the API does not exempt it and cyclonus' truth tables (tests/test_conformance_cyclonus.py)
  apply policies to it, as the engine does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netpolgen.diff import diff_connectivity, format_npguard_diff, policy_ranges
from netpolgen.policy import Engine
from netpolgen.policy.connectivity import compute_connectivity, format_connlist
from tests.conftest import SAMPLES
from tests.policy.npguard import (
    expected_lines,
    load_case,
    npguard_workload,
    parse_explain,
    parse_pod_matrix,
    representative,
)

ROOT = SAMPLES / "netpol-analyzer"
CONNLIST = ROOT / "test_outputs" / "connlist"
DIFF = ROOT / "test_outputs" / "diff"
OUT_OF_SCOPE_LINE = "{ingress-controller}"
SKIPPED_EXPLAIN = {
    "netpol-demo": "AdminNetworkPolicy / BaselineAdminNetworkPolicy: outside NetworkPolicy v1",
    "acs-security-demos_udp-5353_deny": "no input directory for this variant",
}


def _names(pattern: str, folder: Path, rx: str) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(re.fullmatch(rx, p.name).group(1) for p in folder.glob(pattern))


CONNLIST_CASES = _names("*_connlist_output.txt", CONNLIST, r"(.+)_connlist_output\.txt")
DIFF_CASES = _names("diff_between_*.txt", DIFF, r"diff_between_(.+)\.txt")
EXPLAIN_CASES = _names("*_explain_output.txt", CONNLIST, r"(.+)_explain_output\.txt")


@pytest.fixture(autouse=True)
def _need_samples(samples: Path) -> None:
    """Skip everything when ../shared/samples is absent (the fixture skips)."""


def connectivity(case, **kw):
    return compute_connectivity(case.inventory, case.policies, workload_name=npguard_workload,
                                host_network_as_pods=True, **kw)


@pytest.mark.parametrize("case", CONNLIST_CASES or ["<no samples>"])
def test_connlist_matches_np_guard(case: str) -> None:
    got = format_connlist(connectivity(load_case(ROOT, case))).splitlines()
    assert got == expected_lines(CONNLIST / f"{case}_connlist_output.txt", drop=OUT_OF_SCOPE_LINE)


def _split_diff_name(name: str) -> tuple[str, str]:
    """``<NEW>_and_<OLD>`` where both are case directories."""
    for m in re.finditer("_and_", name):
        new, old = name[: m.start()], name[m.end():]
        if (ROOT / "tests" / new).is_dir() and (ROOT / "tests" / old).is_dir():
            return new, old
    raise ValueError(name)


@pytest.mark.parametrize("name", DIFF_CASES or ["<no samples>"])
def test_policy_set_diff_matches_np_guard(name: str) -> None:
    new_name, old_name = _split_diff_name(name)
    old, new = load_case(ROOT, old_name), load_case(ROOT, new_name)
    cuts = policy_ranges(old.policies, new.policies)
    got = format_npguard_diff(diff_connectivity(connectivity(old, extra_ranges=cuts), connectivity(new, extra_ranges=cuts)))
    assert got.splitlines() == expected_lines(DIFF / f"diff_between_{name}.txt", drop=OUT_OF_SCOPE_LINE)


@pytest.mark.parametrize("case", EXPLAIN_CASES or ["<no samples>"])
def test_explanations_name_the_same_policies_and_rules_as_np_guard(case: str) -> None:
    if case in SKIPPED_EXPLAIN:
        pytest.skip(SKIPPED_EXPLAIN[case])
    c = load_case(ROOT, case)
    engine = Engine(c.inventory, c.policies, host_network_as_pods=True)
    groups, defaults = parse_explain((CONNLIST / f"{case}_explain_output.txt").read_text())
    assert groups, "nothing parsed"
    checked = 0
    for g in groups:
        if OUT_OF_SCOPE_LINE in (g.src, g.dst):
            continue
        proto, port = g.sample()
        v = engine.evaluate(representative(c, g.src), representative(c, g.dst), port, proto)
        where = f"{g.src} => {g.dst} {proto}/{port}"
        assert v.allowed == g.allowed, where
        for name, mine in (("egress", v.egress), ("ingress", v.ingress)):
            theirs = g.directions[name]
            assert not theirs.unsupported
            assert mine.allowed == theirs.allowed, f"{where} {name}"
            if theirs.system_default:
                assert not mine.isolated, f"{where} {name}"
            elif theirs.allowed:
                assert {(r.policy, r.index + 1) for r in mine.rules} == theirs.admitting, f"{where} {name}"
            else:
                assert set(mine.policies) == theirs.selecting, f"{where} {name}"
        checked += 1
    for src, dst in defaults:
        v = engine.evaluate(representative(c, src), representative(c, dst), 1, "TCP")
        assert v.allowed and not v.egress.isolated and not v.ingress.isolated, (src, dst)
        checked += 1
    assert checked


def test_pod_matrix_of_the_real_onlineboutique_cluster(samples: Path) -> None:
    case = load_case(ROOT, "onlineboutique")
    expected = parse_pod_matrix((ROOT / "tests" / "onlineboutique" / "connections_map_output.txt").read_text())
    got = compute_connectivity(case.inventory, case.policies, workload_name=lambda p: p.key, host_network_as_pods=True)
    assert len(expected) == len(case.inventory.pods) ** 2
    for (src, dst), conns in expected.items():
        if src == dst:
            continue  # see the module docstring
        assert str(got.conns.get((src, dst), conns.none())) == str(conns), (src, dst)
