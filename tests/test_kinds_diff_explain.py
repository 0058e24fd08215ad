"""``diff`` and ``explain`` read the Cilium policies ``generate --kind cilium`` writes: observed
traffic diffed against them finds nothing denied (DNS names and node identities come from the
traffic), explain names the Cilium rule that admits a connection, and ClusterNetworkPolicy files
are refused with one clear line rather than skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PCAP = str(REPO / "captures" / "demo.pcap")
INV = str(REPO / "captures" / "demo-inventory.json")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", *args], capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for kind in ("cilium", "clusternetworkpolicy"):
        d = tmp_path_factory.mktemp(kind)
        assert _cli("generate", PCAP, "-i", INV, "--kind", kind, "-o", str(d), "-q").returncode == 0
        out[kind] = d
    return out


def test_diff_of_the_observed_traffic_against_the_cilium_policies_denies_nothing(written) -> None:
    proc = _cli("diff", PCAP, "-i", INV, "--existing", str(written["cilium"]), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    assert doc["denied"] == [] and doc["summary"]["denied_connections"] == 0
    assert doc["summary"]["connections"] > 0
    # Every Cilium document was read (two default-denies, four workloads) and every rule was used.
    assert doc["summary"]["policies"] == 6 and doc["unused"] == []


def test_explain_names_the_cilium_rule_that_admits_a_connection(written) -> None:
    proc = _cli("explain", "shop/frontend", "shop/api", "5000/TCP", "-i", INV, "-p", str(written["cilium"]))
    assert proc.returncode == 0, proc.stderr
    assert "ALLOWED" in proc.stdout and "admitted by shop/allow-api ingress[0]" in proc.stdout
    denied = _cli("explain", "shop/frontend", "data/postgres", "5432/TCP", "-i", INV, "-p", str(written["cilium"]))
    assert denied.returncode == 1 and "DENIED" in denied.stdout


def test_clusternetworkpolicy_files_are_refused_by_explain(written) -> None:
    proc = _cli("explain", "shop/frontend", "shop/api", "5000/TCP", "-i", INV, "-p", str(written["clusternetworkpolicy"]))
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: ") and "ClusterNetworkPolicy tiers are checked by generate's self-check" in proc.stderr
