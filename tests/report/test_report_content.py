"""The review report says what the run found: its picture's nodes and arrows and its evidence
rows, read back from the HTML (html.parser), match the scenario's ground truth (the demo) and
the pipeline's own edge table (a real Hubble cluster); its Markdown twin says the same."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from netpolgen.pipeline import generate
from tests.report.htmlparse import parse_report

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "captures" / "demo.pcap"
INVENTORY = REPO / "captures" / "demo-inventory.json"
HUBBLE = ("basic-sample-400-tcp-flows.json", "basic-sample-400-udp-flows.json", "basic-sample-400-icmpv4-flows.json")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def _expected_edges() -> set[tuple[str, str, str, int]]:
    with open(REPO / "captures" / "expected-edges.tsv", newline="") as f:
        return {(r["client"], r["server"], r["protocol"], int(r["port"])) for r in csv.DictReader(f, delimiter="\t")}


def _drawn_edges(parsed) -> set[tuple[str, str, str, int]]:
    out = set()
    for e in parsed.edges:
        for port in e["ports"].split(","):
            proto, _, number = port.partition(" ")
            out.add((parsed.nodes[e["src"]], parsed.nodes[e["dst"]], proto, int(number)))
    return out


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("demo")
    proc = _cli("generate", str(CAPTURE), "-i", str(INVENTORY), "-o", str(out / "policies"),
                "--report", str(out / "review.html"))
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out / 'review.html'} and {out / 'review.md'}" in proc.stderr
    return out / "review.html", out / "review.md"


def test_demo_picture_has_the_scenarios_workloads_and_connections(demo_report) -> None:
    parsed = parse_report(demo_report[0].read_text())
    expected = _expected_edges()
    assert set(parsed.nodes.values()) == {w for e in expected for w in e[:2]}
    assert _drawn_edges(parsed) == expected
    # Namespaces are the groups; outside addresses are drawn apart by role.
    assert parsed.node_groups["shop/api[Deployment]"] == "shop"
    assert parsed.node_groups["data/postgres[StatefulSet]"] == "data"
    assert parsed.node_groups["198.51.100.20"] == "outside: clients"
    assert parsed.node_groups["203.0.113.7"] == "outside: servers"
    # Without --existing every arrow the policies govern is new (a rule was written for it).
    assert {e["status"] for e in parsed.edges} == {"new"}


def test_demo_evidence_rows_carry_counts_times_files_and_examples(demo_report) -> None:
    parsed = parse_report(demo_report[0].read_text())
    result = generate([str(CAPTURE)], [str(INVENTORY)])
    allow = [p for p in result.policies if p["metadata"]["name"] != "default-deny"]
    written_rules = {f"{p['metadata']['namespace']}/{p['metadata']['name']} {d}[{i}]"
                     for p in allow for d in ("ingress", "egress") for i, _ in enumerate(p["spec"].get(d) or [])}
    rows = {r["rule"]: r for r in parsed.rules}
    assert set(rows) == written_rules
    assert set(parsed.policies) == {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in result.policies}
    e = result.edges
    for row in rows.values():
        assert row["files"] == str(CAPTURE.relative_to(REPO)) or row["files"] == str(CAPTURE), row
        assert row["first-seen"].startswith("2026-11-26T08:07:4") and row["last-seen"].startswith("2026-11-26T08:07:5")
        src, _, dst = row["example"].partition(" -> ")
        assert src and dst, row
    # One rule checked against the edge table directly: the postgres ingress rule admits exactly
    # the api -> postgres edge.
    pg = e[(e["dst_workload"] == "data/postgres[StatefulSet]") & (e["dst_port"] == 5432)]
    row = rows["data/allow-postgres ingress[0]"]
    assert int(row["connections"]) == int(pg["connections"].sum())
    assert int(row["bytes"]) == int(pg["bytes"].sum())
    assert row["example"].startswith("shop/api-") and row["example"].endswith("-> data/postgres-0")


def test_demo_report_is_self_contained(demo_report) -> None:
    html = demo_report[0].read_text()
    parsed = parse_report(html)
    assert parsed.external_refs == []
    assert "default-src 'none'" in parsed.meta_csp
    assert parsed.scripts == 1 and "svg" in parsed.tags
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html


def test_demo_markdown_twin_lists_every_rule_and_the_diagram(demo_report) -> None:
    md = demo_report[1].read_text()
    parsed = parse_report(demo_report[0].read_text())
    for r in parsed.rules:
        assert f"`{r['rule']}`" in md
    assert "```mermaid" in md and "self-check: all 7 observed connections allowed" in md
    assert md.count(" -->|") == len(parsed.edges)


@pytest.fixture(scope="module")
def hubble(samples: Path, tmp_path_factory):
    paths = [str(samples / "hubble-flows" / name) for name in HUBBLE]
    out = tmp_path_factory.mktemp("hubble")
    proc = _cli("generate", *paths, "-o", str(out / "policies"), "--report", str(out / "hubble.html"), "-q")
    assert proc.returncode in (0, 3), proc.stderr  # 3: the self-check found denied edges (the report says which)
    return paths, parse_report((out / "hubble.html").read_text()), (out / "hubble.md").read_text()


def test_real_hubble_cluster_picture_matches_the_edge_table_and_the_raw_flows(hubble) -> None:
    paths, parsed, _ = hubble
    result = generate(paths, [])
    edges = result.edges
    drawn = _drawn_edges(parsed)
    table = {(r.src_workload, r.dst_workload, r.proto, int(r.dst_port)) for r in edges.itertuples()}
    assert drawn == table
    # Every namespace the raw records name on a forwarded TCP/UDP flow is a group of the picture.
    namespaces = set()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            flow = json.loads(line).get("flow", {})
            if flow.get("verdict") == "FORWARDED" and ({"TCP", "UDP"} & set(flow.get("l4", {}))):
                for end in ("source", "destination"):
                    ns = flow.get(end, {}).get("namespace")
                    if ns:
                        namespaces.add(ns)
    assert namespaces and namespaces <= set(parsed.groups)


def test_real_hubble_cluster_evidence_rows_sum_the_edges_they_admit(hubble) -> None:
    paths, parsed, md = hubble
    result = generate(paths, [])
    rows = [r for r in parsed.rules if int(r["connections"]) > 0]
    assert rows
    e = result.edges
    per_dst = defaultdict(int)
    for r in e.itertuples():
        per_dst[(r.dst_workload, int(r.dst_port))] += int(r.connections)
    for p in result.policies:
        wl = (p["metadata"].get("annotations") or {}).get("netpolgen.io/workload")
        key = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for i, rule in enumerate(p["spec"].get("ingress") or []):
            row = next(r for r in parsed.rules if r["rule"] == f"{key} ingress[{i}]")
            ports = {int(x["port"]) for x in rule["ports"]}
            # An ingress rule's peers are all clients seen on its ports: at most the traffic to them.
            assert 0 < int(row["connections"]) <= sum(per_dst[(wl, port)] for port in ports)
            assert row["files"] and set(row["files"].split()) <= set(paths)
    assert all(f"`{r['rule']}`" in md for r in parsed.rules)


def test_markdown_twin_of_a_big_run_fits_a_pull_request_comment() -> None:
    from netpolgen.report import render_markdown
    from netpolgen.report.model import CheckView, Coverage, PolicyView, Report, RuleRow

    def rows(key: str) -> tuple[RuleRow, ...]:
        return tuple(RuleRow(key, "ingress", i, f"from pods {{app=client-{i}}}; on TCP {8000 + i}", "new", 1, 5, 10,
                             500, "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", ("flows/part-0001.json",),
                             f"team/client-{i}-abc", f"{key}-xyz") for i in range(40))

    policies = tuple(PolicyView(f"team/allow-svc-{j}", "team", f"allow-svc-{j}", f"team/svc-{j}[Deployment]", "new",
                                rows(f"team/allow-svc-{j}")) for j in range(200))
    md = render_markdown(Report("big", None, (), (), (), policies, Coverage(), CheckView(checked=1)))
    assert len(md) < 65536
    assert 0 < md.count("| `team/allow-svc-") <= 250  # rule rows, across all tables together
    assert "`team/allow-svc-199` (new, 40 rules)" in md  # the rest are still named


def test_markdown_twin_drops_rows_before_it_outgrows_a_comment() -> None:
    from netpolgen.report import render_markdown
    from netpolgen.report.model import CheckView, Coverage, PolicyView, Report, RuleRow

    selector = ", ".join(f"label-{k}=value-{k}" for k in range(30))  # long selectors: ~600 characters a row
    rows = tuple(RuleRow("team/allow-x", "ingress", i, f"from pods {{{selector}}}; on TCP {8000 + i}", "new", 1, 5, 10,
                         500, "", "", (), "a", "b") for i in range(300))
    md = render_markdown(Report("big", None, (), (), (), (PolicyView("team/allow-x", "team", "allow-x", "", "new", rows),),
                                Coverage(), CheckView(checked=1)))
    assert len(md) < 65536
    assert 0 < md.count("| `team/allow-x ingress[") < 250
    assert "more rules (see the HTML report)" in md
