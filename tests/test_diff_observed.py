"""``diff_observed``: observed (resolved) connections vs existing policies.

Hand-made resolved tables pin each part of the report (denied, unused, unobserved, open, not
evaluated) and the exact text; the bundled demo capture checks the whole path against its
ground truth (``captures/expected-edges.tsv``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from netpolgen.diff import diff_observed, format_observed_diff, observed_diff_json
from netpolgen.inventory import ContainerPort, Inventory, Namespace, OwnerRef, Pod, load_inventory
from netpolgen.policy import RuleRef, parse_policies

REPO = Path(__file__).resolve().parents[1]


def _pod(ns: str, name: str, app: str, ip: str, ports=()) -> Pod:
    return Pod(ns, f"{name}-x1", {"app": app}, (ip,), "192.168.0.1",
               ports=tuple(ContainerPort(n, proto, pname) for pname, proto, n in ports),
               owners=(OwnerRef("ReplicaSet", f"{name}-5d4f", "", True),))


INV = Inventory(
    namespaces={"shop": Namespace("shop", {"kubernetes.io/metadata.name": "shop"})},
    pods=[_pod("shop", "web", "web", "10.0.0.1", [("http", "TCP", 8080)]),
          _pod("shop", "api", "api", "10.0.0.2", [("http", "TCP", 5000)]),
          _pod("shop", "db", "db", "10.0.0.3", [("pg", "TCP", 5432)])],
)
WEB, API, DB = "shop/web-5d4f[ReplicaSet]", "shop/api-5d4f[ReplicaSet]", "shop/db-5d4f[ReplicaSet]"


def np_(name: str, **spec) -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


POLICIES = parse_policies([
    np_("api", podSelector={"matchLabels": {"app": "api"}},
        ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}]},
                 {"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 9999}]}]),
    np_("db", podSelector={"matchLabels": {"app": "db"}}, ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                                                                     "ports": [{"port": 5432}]}]),
    np_("ghost", podSelector={"matchLabels": {"app": "gone"}}, ingress=[{}]),
])


def row(src_kind, src_wl, src_pod, src_ip, dst_kind, dst_wl, dst_pod, dst_ip, port, proto="TCP", connections=1, verdict="unknown"):
    return {"src_kind": src_kind, "src_workload": src_wl, "src_pod": src_pod, "src_ip": src_ip,
            "dst_kind": dst_kind, "dst_workload": dst_wl, "dst_pod": dst_pod, "dst_ip": dst_ip,
            "dst_port": port, "proto": proto, "connections": connections, "packets": connections * 4,
            "bytes": connections * 400, "verdict": verdict}


RESOLVED = pd.DataFrame([
    row("pod", WEB, "shop/web-x1", "10.0.0.1", "pod", API, "shop/api-x1", "10.0.0.2", 5000, connections=7),
    row("pod", API, "shop/api-x1", "10.0.0.2", "pod", DB, "shop/db-x1", "10.0.0.3", 5432, connections=3),
    row("pod", WEB, "shop/web-x1", "10.0.0.1", "pod", DB, "shop/db-x1", "10.0.0.3", 5432, connections=2),  # denied
    row("pod", WEB, "shop/web-x1", "10.0.0.1", "pod", DB, "shop/db-x1", "10.0.0.3", 5432, connections=1),  # same group
    row("external", "198.51.100.9", "", "198.51.100.9", "pod", API, "shop/api-x1", "10.0.0.2", 5000),  # denied
    row("pod", API, "shop/api-x1", "10.0.0.2", "external", "203.0.113.7", "", "203.0.113.7", 443, connections=4),
    row("unresolved", "10.9.9.9", "", "10.9.9.9", "pod", API, "shop/api-x1", "10.0.0.2", 5000, connections=5),
    row("pod", WEB, "shop/web-x1", "10.0.0.1", "pod", DB, "shop/db-x1", "10.0.0.3", 6000, verdict="denied"),
])


@pytest.fixture(scope="module")
def result():
    return diff_observed(RESOLVED, INV, POLICIES)


def test_denied_groups_by_workload_pair_and_port_with_the_isolating_policies(result):
    got = [(g.src, g.dst, g.proto, g.port, g.connections, g.directions, g.policies) for g in result.denied]
    assert got == [
        ("198.51.100.9", API, "TCP", 5000, 1, "ingress", ("shop/api",)),
        (WEB, DB, "TCP", 5432, 3, "ingress", ("shop/db",)),
    ]
    assert result.has_denied and result.denied_connections == 4 and result.connections == 18


def test_unused_rules_are_those_no_observed_connection_matched(result):
    assert [(u.rule, u.selected_pods) for u in result.unused] == [
        (RuleRef("shop/api", "ingress", 1), 1),
        (RuleRef("shop/ghost", "ingress", 0), 0),
    ]


def test_unobserved_is_what_governed_pairs_allow_beyond_what_was_seen(result):
    pairs = {(p.src, p.dst): (str(p.allowed), str(p.observed), str(p.unobserved)) for p in result.unobserved}
    # web -> api: allowed exactly what was seen (http = 5000): not listed. api -> db: same.
    assert (WEB, API) not in pairs and (API, DB) not in pairs
    assert pairs[("192.0.2.0-192.0.2.255[External]", API)] == ("TCP 9999", "No Connections", "TCP 9999")
    # Nothing isolates web's ingress or anyone's egress: those pairs are reported as open instead.
    assert all(dst in (API, DB) for _, dst in pairs)
    assert result.open_ingress == [WEB] and result.open_egress == [API, DB, WEB]


def test_unresolved_and_source_denied_rows_are_counted_not_evaluated(result):
    assert (result.unresolved_rows, result.unresolved_connections, result.source_denied_rows) == (1, 5, 1)
    assert result.rows == 6


def test_text_report(result):
    assert format_observed_diff(result) == f"""\
Observed traffic vs 3 existing policies (4 rules): 18 connections evaluated, 4 would be denied.

DENIED: observed connections the existing policies would deny (these break when enforced):
  198.51.100.9 -> {API} TCP/5000  (1 connection)
      denied at ingress by shop/api; e.g. 198.51.100.9 -> shop/api-x1
  {WEB} -> {DB} TCP/5432  (3 connections)
      denied at ingress by shop/db; e.g. shop/web-x1 -> shop/db-x1

UNUSED: rules that admitted no observed connection:
  shop/api ingress[1]: from ipBlock 192.0.2.0/24; on TCP 9999
  shop/ghost ingress[0]: from any peer; on any port  [the policy selects no pod of the inventory]

UNOBSERVED: connections the existing policies allow that were never observed:
  192.0.2.0-192.0.2.255[External] -> {API}: TCP 9999

OPEN: workloads no policy isolates (every connection in that direction is allowed):
  ingress: {WEB}
  egress: {API}, {DB}, {WEB}

Not evaluated: 1 row (5 connections) with an unresolved endpoint; 1 row the source reported as already dropped.
"""


def test_json_report_carries_the_same_facts(result):
    doc = json.loads(observed_diff_json(result))
    assert doc["summary"]["denied_connections"] == 4
    assert [(d["src"], d["dst"], d["port"], d["denied_at"]) for d in doc["denied"]] == [
        (g.src, g.dst, g.port, g.directions) for g in result.denied]
    assert [u["rule"] for u in doc["unused"]] == ["shop/api ingress[1]", "shop/ghost ingress[0]"]
    assert doc["open"] == {"ingress": [WEB], "egress": [API, DB, WEB]}


def test_all_allowed_when_the_existing_policies_admit_everything_observed():
    allow_all = parse_policies([np_("all", podSelector={}, ingress=[{}])])
    r = diff_observed(RESOLVED, INV, allow_all)
    assert not r.has_denied and r.unused == [] and "DENIED: none" in format_observed_diff(r)


# ----- the bundled real capture ------------------------------------------------------------------


def _expected_edges() -> set[tuple[str, str, str, int]]:
    with open(REPO / "captures" / "expected-edges.tsv") as f:
        return {(r["client"], r["server"], r["protocol"], int(r["port"])) for r in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def demo():
    pipeline = pytest.importorskip("netpolgen.pipeline")
    inv = load_inventory([str(REPO / "captures" / "demo-inventory.json")])
    return pipeline.read_and_resolve([str(REPO / "captures" / "demo.pcap")], inv)


def test_deny_all_everywhere_denies_exactly_the_recorded_connections(demo):
    namespaces = sorted(demo.inventory.namespaces)
    deny_all = parse_policies([{"kind": "NetworkPolicy", "metadata": {"name": "deny-all", "namespace": ns},
                                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}} for ns in namespaces])
    r = diff_observed(demo.flows, demo.inventory, deny_all)
    assert {(g.src, g.dst, g.proto, g.port) for g in r.denied} == _expected_edges()
    assert r.denied_connections == r.connections


def test_policies_generated_from_the_capture_deny_nothing_of_it(demo):
    pipeline = pytest.importorskip("netpolgen.pipeline")
    generated = pipeline.generate_from_resolved(demo).policies
    r = diff_observed(demo.flows, demo.inventory, parse_policies(generated))
    assert not r.has_denied
    assert r.policies == len(generated)
