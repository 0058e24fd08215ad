"""The report's coverage section says what the observation did not show: quiet namespaces,
low-confidence workloads, unresolved addresses, label classes, widened CIDRs — each checked
against the inputs, through the JSON form of the report (which the HTML and Markdown render)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from netpolgen.pipeline import generate
from netpolgen.sources.base import SourceOptions

REPO = Path(__file__).resolve().parents[2]
PCAP = str(REPO / "captures" / "demo.pcap")
INV = str(REPO / "captures" / "demo-inventory.json")
GOLDEN = REPO / "tests" / "golden" / "demo"


def cli_json(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "netpolgen", *args, "--format", "json"], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode in (0, 1, 3), proc.stderr
    return json.loads(proc.stdout)


def test_namespaces_with_pods_and_no_traffic_are_listed(tmp_path: Path) -> None:
    start = generate([PCAP], [INV]).sources[0].stats.first_seen
    until = f"{start + 0.005:.6f}"  # only the outside client's first requests to the frontend
    early = generate([PCAP], [INV], source_options=SourceOptions(until=float(until)))
    talking = set(early.edges["src_namespace"]) | set(early.edges["dst_namespace"])
    with_pods = {p.namespace for p in early.inventory.pods if not p.host_network}
    doc = cli_json("generate", PCAP, "-i", INV, "-o", str(tmp_path), "--until", until)
    quiet = {q["namespace"]: q["pods"] for q in doc["coverage"]["quiet_namespaces"]}
    assert set(quiet) == with_pods - talking and quiet
    for ns, n in quiet.items():
        assert n == sum(1 for p in early.inventory.pods if p.namespace == ns and not p.host_network)


def test_hubble_unresolved_low_confidence_and_label_classes(samples: Path, tmp_path: Path) -> None:
    paths = [str(samples / "hubble-flows" / f"basic-sample-400-{k}-flows.json") for k in ("tcp", "udp", "icmpv4")]
    result = generate(paths, [])
    doc = cli_json("generate", *paths, "-o", str(tmp_path))
    cov = doc["coverage"]
    assert {u["address"] for u in cov["unresolved"]} == set(result.report.unresolved) and cov["unresolved"]
    assert cov["unresolved_connections"] == result.report.unresolved_connections
    # Low confidence: fewer than 3 connections, or seen over less than a tenth of the window.
    per = defaultdict(lambda: [0, float("inf"), float("-inf")])
    for r in result.edges.itertuples():
        for kind, wl in ((r.src_kind, r.src_workload), (r.dst_kind, r.dst_workload)):
            if kind == "pod":
                per[wl][0] += int(r.connections)
                per[wl][1] = min(per[wl][1], float(r.first_seen))
                per[wl][2] = max(per[wl][2], float(r.last_seen))
    lo, hi = (min(s.stats.first_seen for s in result.sources), max(s.stats.last_seen for s in result.sources))
    want = {w for w, (n, f, la) in per.items() if n < 3 or (la - f) < 0.1 * (hi - lo)}
    assert want and {x["workload"] for x in cov["low_confidence"]} == want
    # The two OpenTelemetry collector pods carry the same labels, but their names say they are
    # one DaemonSet's: one workload (its owner inferred), so no label class is left.
    assert "kube-system/otelcol-hubble-collector[DaemonSet]" in result.inventory.inferred_owners
    assert cov["label_classes"] == []
    assert set(cov["not_selectable"]) == set(result.synthesis.problems)


def test_workloads_with_identical_labels_are_listed_as_a_label_class(tmp_path: Path) -> None:
    """Two bare pods (plain names, no owner to infer) with the same labels: one label class."""
    from tests.sources.test_calico import record

    recs = [record(source_name=n, source_name_aggr=n, source_ip=ip, source_labels={"labels": ["app=loadgen"]})
            for n, ip in (("loadgen-east", "10.48.1.11"), ("loadgen-west", "10.48.1.12"))]
    path = tmp_path / "flows.log"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    cov = cli_json("generate", str(path), "-o", str(tmp_path / "out"))["coverage"]
    assert [tuple(c["workloads"]) for c in cov["label_classes"]] == [("shop/loadgen-east[Pod]", "shop/loadgen-west[Pod]")]


def test_a_wider_ipblock_is_listed_as_widened(tmp_path: Path) -> None:
    pol = tmp_path / "policies"
    for src in GOLDEN.rglob("*.yaml"):
        dst = pol / src.relative_to(GOLDEN)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(src.read_text())
    api = yaml.safe_load((pol / "shop" / "allow-api.yaml").read_text())
    for rule in api["spec"]["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                peer["ipBlock"]["cidr"] = "203.0.113.0/24"
    (pol / "shop" / "allow-api.yaml").write_text(yaml.safe_dump(api))
    doc = cli_json("report", PCAP, "-i", INV, "-p", str(pol), "-o", str(tmp_path / "r.html"))
    assert doc["coverage"]["widened"] == [{"policy": "shop/allow-api", "cidr": "203.0.113.0/24"}]
    assert doc["self_check"]["passed"] is True  # the wider block still admits what was seen
