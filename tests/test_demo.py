"""End to end on the bundled demo: a real tcpdump capture of real processes (captures/README.md).

The expected connections are the recording script's own ground truth (captures/expected-edges.tsv),
written from the scenario, not from netpolgen's output.
"""

from __future__ import annotations

import csv
import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netpolgen.pipeline import generate
from netpolgen.policy import Engine, parse_policies
from tests.conftest import UPDATE_GOLDEN
from tests.schema import assert_valid_networkpolicy

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "captures" / "demo.pcap"
INVENTORY = REPO / "captures" / "demo-inventory.json"
GOLDEN = REPO / "tests" / "golden" / "demo"


def _expected_edges() -> set[tuple[str, str, str, int]]:
    with open(REPO / "captures" / "expected-edges.tsv", newline="") as f:
        return {(r["client"], r["server"], r["protocol"], int(r["port"])) for r in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def result():
    return generate([str(CAPTURE)], [str(INVENTORY)])


def test_the_observed_edges_are_exactly_the_scenarios_connections(result) -> None:
    edges = {(r.src_workload, r.dst_workload, r.proto, int(r.dst_port)) for r in result.edges.itertuples()}
    assert edges == _expected_edges()


def test_nothing_is_unresolved_and_nat_copies_are_counted_once(result) -> None:
    assert result.report.unresolved == {}
    assert result.report.nat.dnat_merged > 0 and result.report.nat.snat_merged > 0
    assert result.report.nat.masquerade_only == []


def test_every_expected_connection_is_allowed_and_nothing_else_between_the_demo_pods(result) -> None:
    inv = result.inventory
    engine = Engine(inv, parse_policies(result.policies))
    expected = _expected_edges()
    ports = sorted({(proto, port) for _, _, proto, port in expected} | {("TCP", 22), ("UDP", 5000)})
    in_scope = [p for p in inv.pods if p.namespace in ("shop", "data") and p.ips]
    clients = in_scope + [p for p in inv.pods if p.namespace == "kube-system" and p.ips]
    for src in clients:
        for dst in in_scope:
            if src.key == dst.key:
                continue
            for proto, port in ports:
                want = (str(inv.workload_of(src)), str(inv.workload_of(dst)), proto, port) in expected
                assert engine.evaluate(src.key, dst.key, port, proto).allowed == want, (src.key, dst.key, proto, port)
    for proto, port in ports:
        want = ("198.51.100.20", "shop/frontend[Deployment]", proto, port) in expected
        fe = next(p for p in in_scope if p.name.startswith("frontend"))
        assert engine.evaluate("198.51.100.20", fe.key, port, proto).allowed == want


def test_cli_writes_the_golden_tree_and_says_what_it_did(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "netpolgen", "generate", str(CAPTURE), "--inventory", str(INVENTORY),
         "--output", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "4986 packets" in proc.stderr
    assert "self-check: passed: the generated policies allow all 7 observed connections they cover" in proc.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.yaml"))
    if UPDATE_GOLDEN:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(tmp_path, GOLDEN)
    assert written == sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*.yaml"))
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, GOLDEN, written, shallow=False)
    assert mismatch == [] and errors == []
    for path in written:
        assert_valid_networkpolicy(yaml.safe_load((tmp_path / path).read_text()))


def test_cli_stdout_stream_is_the_same_policies(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "netpolgen", "generate", str(CAPTURE), "-i", str(INVENTORY), "--output", "-", "-q"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    docs = list(yaml.safe_load_all(proc.stdout))
    on_disk = {str(p.relative_to(GOLDEN)): yaml.safe_load(p.read_text()) for p in GOLDEN.rglob("*.yaml")}
    assert sorted(docs, key=str) == sorted(on_disk.values(), key=str)
    assert not os.path.exists(tmp_path / "shop")
