"""``netpolgen generate --kind ...`` end to end, on the demo capture and on the three real
Hubble clusters: exit 0 with the self-check passing, every written file valid against its kind's
schema (tests/kindschema.py), the kinds each run was asked for and no other, and the default kind
untouched by the new flags' defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.kindschema import assert_valid_document, load_tree, schemas_present
from tests.realdata.clusters import CLUSTERS, cluster_files

DEMO = [str(REPO / "captures" / "demo.pcap"), "--inventory", str(REPO / "captures" / "demo-inventory.json")]
KIND_DOCS = {
    "cilium": {"CiliumNetworkPolicy"},
    "cilium-clusterwide": {"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"},
    "clusternetworkpolicy": {"ClusterNetworkPolicy", "NetworkPolicy"},
}

pytestmark = pytest.mark.skipif(not schemas_present(), reason="../shared/schemas is not present")


def _run(args: list[str], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", "generate", *args, "--output", str(out), *extra],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def _inputs(name: str, samples: Path) -> list[str]:
    return DEMO if name == "demo" else [str(f) for f in cluster_files(samples, name)]


@pytest.mark.parametrize("kind", ["cilium", "clusternetworkpolicy", "cilium-clusterwide"])
@pytest.mark.parametrize("inputs", ["demo", *sorted(CLUSTERS)])
def test_each_kind_writes_schema_valid_files_that_pass_the_self_check(samples: Path, tmp_path: Path, inputs: str, kind: str) -> None:
    proc = _run(_inputs(inputs, samples), tmp_path, "--kind", kind, "--exclude-namespace", "none")
    assert proc.returncode == 0, proc.stderr
    assert "self-check: passed" in proc.stderr
    docs = load_tree(tmp_path)
    assert docs
    for doc in docs:
        assert_valid_document(doc)
    kinds = {d["kind"] for d in docs}
    assert kinds <= KIND_DOCS[kind] and "NetworkPolicy" not in kinds - KIND_DOCS[kind]
    if kind != "clusternetworkpolicy":
        assert "CiliumNetworkPolicy" in kinds
    else:
        assert "ClusterNetworkPolicy" in kinds


def test_two_kinds_are_two_complete_sets_side_by_side(tmp_path: Path) -> None:
    proc = _run(DEMO, tmp_path, "--kind", "networkpolicy", "--kind", "cilium")
    assert proc.returncode == 0, proc.stderr
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.yaml"))
    plain = [n for n in names if not n.endswith(".cilium.yaml")]
    cilium = [n for n in names if n.endswith(".cilium.yaml")]
    assert sorted(n[: -len(".cilium.yaml")] + ".yaml" for n in cilium) == plain


def test_an_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run(DEMO, tmp_path, "--kind", "calico")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: --kind: unknown kind 'calico'")
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.yaml"))


def test_the_default_kind_is_unchanged_by_the_new_flags(tmp_path: Path) -> None:
    """The same run with and without ``--kind networkpolicy`` writes byte-identical files."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(DEMO, a).returncode == 0
    assert _run(DEMO, b, "--kind", "networkpolicy").returncode == 0
    read = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.yaml")}  # noqa: E731
    assert read(a) == read(b) and read(a)


def test_fqdn_and_dns_lookup_patterns_are_written_only_when_asked(tmp_path: Path) -> None:
    """By default the port-53 rule lists the observed names (matchName); ``--fqdn-pattern`` turns
    the names it matches into one toFQDNs matchPattern (and the DNS rule with it), and
    ``--dns-lookup-pattern`` only widens what the DNS proxy answers."""
    import yaml

    plain, patterned = tmp_path / "plain", tmp_path / "patterned"
    assert _run(DEMO, plain, "--kind", "cilium", "-q").returncode == 0
    proc = _run(DEMO, patterned, "--kind", "cilium", "--fqdn-pattern", "*.example",
                "--dns-lookup-pattern", "*.*.svc.cluster.local", "-q")
    assert proc.returncode == 0, proc.stderr

    def egress(root: Path) -> list[dict]:
        return yaml.safe_load((root / "shop" / "allow-api.cilium.yaml").read_text())["spec"]["egress"]

    def dns_rules(rules: list[dict]) -> list[dict]:
        return [d for r in rules for tp in r["toPorts"] for d in (tp.get("rules") or {}).get("dns", [])]

    assert [r["toFQDNs"] for r in egress(plain) if "toFQDNs" in r] == [[{"matchName": "payments.example"}]]
    assert dns_rules(egress(plain)) == [{"matchName": "payments.example"}]
    assert [r["toFQDNs"] for r in egress(patterned) if "toFQDNs" in r] == [[{"matchPattern": "*.example"}]]
    assert dns_rules(egress(patterned)) == [{"matchPattern": "*.example"}, {"matchPattern": "*.*.svc.cluster.local"}]
    for doc in load_tree(patterned):
        assert_valid_document(doc)
    assert "self-check" not in proc.stderr  # -q: nothing printed, exit 0 says it passed


def test_existing_merges_networkpolicies_only(tmp_path: Path) -> None:
    proc = _run(DEMO, tmp_path / "out", "--kind", "cilium", "--existing", str(tmp_path / "old"))
    assert proc.returncode == 2
    assert "Error: --existing: merges NetworkPolicy files only" in proc.stderr


def test_a_second_run_replaces_an_output_holding_cluster_scoped_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for _ in range(2):
        proc = _run(DEMO, out, "--kind", "clusternetworkpolicy", "-n", "shop", "-q")
        assert proc.returncode == 0, proc.stderr
    assert (out / "_cluster" / "netpolgen-baseline.clusternetworkpolicy.yaml").is_file()


def test_the_report_covers_the_networkpolicy_documents_of_a_mixed_run(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    proc = _run(DEMO, tmp_path / "out", "--kind", "cilium", "--kind", "clusternetworkpolicy", "--report", str(report), "-q")
    assert proc.returncode == 0, proc.stderr
    md = report.with_suffix(".md").read_text()
    assert "self-check: all 7 observed connections allowed" in md
    assert "shop/allow-api" in md  # the NetworkPolicy of the clusternetworkpolicy set
