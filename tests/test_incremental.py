"""Incremental runs (generate --existing DIR): what DIR holds stays, new observed connections add
rules with their evidence, unchanged files are not rewritten (byte-identical, same inode), rules
nothing used are listed and removed only with --prune."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netpolgen.evidence import when
from netpolgen.pipeline import generate

REPO = Path(__file__).resolve().parents[1]
PCAP = str(REPO / "captures" / "demo.pcap")
INV = str(REPO / "captures" / "demo-inventory.json")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(d)): (p.read_bytes(), p.stat().st_ino) for p in sorted(d.rglob("*.yaml"))}


@pytest.fixture(scope="module")
def early_until() -> str:
    """A moment 20 ms into the demo capture: every connection but the api's to its outside
    payments API has been seen by then (checked below, not assumed)."""
    start = generate([PCAP], [INV]).sources[0].stats.first_seen
    return f"{start + 0.02:.6f}"


def _ann(path: Path) -> dict[str, str]:
    return yaml.safe_load(path.read_text())["metadata"].get("annotations") or {}


def test_growing_traffic_adds_rules_with_evidence_and_leaves_unchanged_files_alone(tmp_path: Path, early_until: str) -> None:
    out = tmp_path / "policies"
    first = cli("generate", PCAP, "-i", INV, "-o", str(out), "--until", early_until, "-q")
    assert first.returncode == 0, first.stderr
    before = snapshot(out)
    api_before = yaml.safe_load((out / "shop" / "allow-api.yaml").read_text())
    assert not any(peer.get("ipBlock") for r in api_before["spec"]["egress"] for peer in r["to"])

    second = cli("generate", PCAP, "-i", INV, "--existing", str(out))
    assert second.returncode == 0, second.stderr
    assert "existing " + str(out) + ": 5 policies unchanged, 1 changed, 0 new, 0 removed" in second.stderr
    after = snapshot(out)
    assert set(after) == set(before)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"shop/allow-api.yaml"}
    for k in set(after) - changed:
        assert after[k] == before[k]  # same bytes and same inode: never rewritten

    api = yaml.safe_load((out / "shop" / "allow-api.yaml").read_text())
    # The rules of the first run stay, in their order; the new connection adds one rule at the end.
    assert api["spec"]["egress"][: len(api_before["spec"]["egress"])] == api_before["spec"]["egress"]
    assert api["spec"]["ingress"] == api_before["spec"]["ingress"]
    (added,) = api["spec"]["egress"][len(api_before["spec"]["egress"]):]
    assert added == {"to": [{"ipBlock": {"cidr": "203.0.113.7/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    # ... with its evidence: the rule-flows annotation counts the new rule's connections, which
    # are the api -> 203.0.113.7:443 edge of the full capture.
    full = generate([PCAP], [INV]).edges
    pay = int(full[(full["dst_workload"] == "203.0.113.7")]["connections"].sum())
    index = len(api["spec"]["egress"]) - 1
    notes = _ann(out / "shop" / "allow-api.yaml")
    assert f"egress[{index}]={pay}" in notes["netpolgen.io/rule-flows"].split()
    # The window is the observation's: cut at --until in the first run, the whole capture now.
    start = generate([PCAP], [INV]).sources[0].stats
    first_window = _ann_text(before["shop/allow-api.yaml"][0])["netpolgen.io/window"]
    assert first_window == f"{when(start.first_seen)}/{when(float(early_until))}"
    assert notes["netpolgen.io/window"] == f"{when(start.first_seen)}/{when(start.last_seen)}"


def _ann_text(text: bytes) -> dict[str, str]:
    return yaml.safe_load(text)["metadata"]["annotations"]


def test_the_same_input_twice_changes_no_file(tmp_path: Path) -> None:
    out = tmp_path / "p"
    assert cli("generate", PCAP, "-i", INV, "-o", str(out), "-q").returncode == 0
    before = snapshot(out)
    again = cli("generate", PCAP, "-i", INV, "--existing", str(out))
    assert again.returncode == 0
    assert snapshot(out) == before
    assert "6 policies unchanged, 0 changed, 0 new, 0 removed" in again.stderr


def test_unused_rules_are_listed_and_removed_only_with_prune(tmp_path: Path, early_until: str) -> None:
    out = tmp_path / "p"
    assert cli("generate", PCAP, "-i", INV, "-o", str(out), "-q").returncode == 0
    full = snapshot(out)
    listed = cli("generate", PCAP, "-i", INV, "--existing", str(out), "--until", early_until)
    assert listed.returncode == 0, listed.stderr
    assert "rules nothing used over the window (kept; --prune removes them):" in listed.stderr
    assert "shop/allow-api egress[1]: to ipBlock 203.0.113.7/32; on TCP 443" in listed.stderr
    assert snapshot(out) == full  # listed, not removed

    pruned = cli("generate", PCAP, "-i", INV, "--existing", str(out), "--until", early_until, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    after = snapshot(out)
    assert {k for k in after if after[k] != full[k]} == {"shop/allow-api.yaml"}
    api = yaml.safe_load((out / "shop" / "allow-api.yaml").read_text())
    assert not any(peer.get("ipBlock") for r in api["spec"]["egress"] for peer in r["to"])
    assert os.path.exists(out / "shop" / "default-deny.yaml")


def test_existing_into_another_directory_writes_the_whole_merged_tree(tmp_path: Path, early_until: str) -> None:
    base = tmp_path / "base"
    assert cli("generate", PCAP, "-i", INV, "-o", str(base), "--until", early_until, "-q").returncode == 0
    before = snapshot(base)
    proc = cli("generate", PCAP, "-i", INV, "--existing", str(base), "-o", str(tmp_path / "next"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert snapshot(base) == before
    nxt = {k: v[0] for k, v in snapshot(tmp_path / "next").items()}
    assert set(nxt) == set(before)
    assert {k for k in nxt if nxt[k] != before[k][0]} == {"shop/allow-api.yaml"}


def test_report_against_existing_colours_new_and_unchanged(tmp_path: Path, early_until: str) -> None:
    from tests.report.htmlparse import parse_report

    out = tmp_path / "p"
    assert cli("generate", PCAP, "-i", INV, "-o", str(out), "--until", early_until, "-q").returncode == 0
    proc = cli("generate", PCAP, "-i", INV, "--existing", str(out), "--report", str(tmp_path / "r.html"), "-q")
    assert proc.returncode == 0, proc.stderr
    parsed = parse_report((tmp_path / "r.html").read_text())
    status = {(parsed.nodes[e["src"]], parsed.nodes[e["dst"]]): e["status"] for e in parsed.edges}
    assert status.pop(("shop/api[Deployment]", "203.0.113.7")) == "new"
    assert set(status.values()) == {"unchanged"}
    new_rules = {r["rule"] for r in parsed.rules if r["status"] == "new"}
    api = yaml.safe_load((out / "shop" / "allow-api.yaml").read_text())
    at = next(i for i, r in enumerate(api["spec"]["egress"]) if r["to"][0].get("ipBlock"))
    assert new_rules == {f"shop/allow-api egress[{at}]"}
    assert {r["status"] for r in parsed.rules} == {"new", "unchanged"}


def test_hubble_tcp_then_tcp_and_udp(samples: Path, tmp_path: Path) -> None:
    tcp = str(samples / "hubble-flows" / "basic-sample-400-tcp-flows.json")
    udp = str(samples / "hubble-flows" / "basic-sample-400-udp-flows.json")
    out = tmp_path / "p"
    assert cli("generate", tcp, "-o", str(out), "-q").returncode in (0, 3)
    before = snapshot(out)
    assert cli("generate", tcp, udp, "--existing", str(out), "-q").returncode in (0, 3)
    after = snapshot(out)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed, "UDP flows add DNS rules"
    for k in set(before) - changed:
        assert after[k] == before[k]
    # Every changed file gained rules (none lost) and a rule for UDP 53 with evidence.
    for k in changed:
        old = yaml.safe_load(before[k][0]) if k in before else {"spec": {}}
        new = yaml.safe_load(after[k][0])
        for d in ("ingress", "egress"):
            assert new["spec"].get(d, [])[: len(old["spec"].get(d, []))] == old["spec"].get(d, [])
        assert any(p.get("port") == 53 and p.get("protocol") == "UDP" for r in new["spec"].get("egress", []) for p in r["ports"])
        flows = dict(x.split("=") for x in new["metadata"]["annotations"]["netpolgen.io/rule-flows"].split())
        assert all(int(v) > 0 for v in flows.values())


def test_report_draws_a_rule_nothing_used_as_removed(tmp_path: Path, early_until: str) -> None:
    from tests.report.htmlparse import parse_report

    out = tmp_path / "p"
    assert cli("generate", PCAP, "-i", INV, "-o", str(out), "-q").returncode == 0
    proc = cli("generate", PCAP, "-i", INV, "--existing", str(out), "--until", early_until, "--report",
               str(tmp_path / "r.html"), "-q")
    assert proc.returncode == 0, proc.stderr
    parsed = parse_report((tmp_path / "r.html").read_text())
    removed = [(parsed.nodes[e["src"]], parsed.nodes[e["dst"]], e["ports"]) for e in parsed.edges if e["status"] == "removed"]
    assert removed == [("shop/api[Deployment]", "203.0.113.7", "TCP 443")]
    api = yaml.safe_load((out / "shop" / "allow-api.yaml").read_text())
    at = next(i for i, r in enumerate(api["spec"]["egress"]) if r["to"][0].get("ipBlock"))
    unused = [r for r in parsed.rules if r["status"] == "removed"]
    assert [r["rule"] for r in unused] == [f"shop/allow-api egress[{at}]"]
    assert unused[0]["connections"] == "0"


def test_report_subcommand_compares_with_an_earlier_directory(tmp_path: Path, early_until: str) -> None:
    from tests.report.htmlparse import parse_report

    assert cli("generate", PCAP, "-i", INV, "-o", str(tmp_path / "old"), "--until", early_until, "-q").returncode == 0
    assert cli("generate", PCAP, "-i", INV, "-o", str(tmp_path / "new"), "-q").returncode == 0
    proc = cli("report", PCAP, "-i", INV, "-p", str(tmp_path / "new"), "--existing", str(tmp_path / "old"),
               "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {tmp_path / 'r.html'} and {tmp_path / 'r.md'}: 6 policies, which allow every observed connection they govern\n"
    parsed = parse_report((tmp_path / "r.html").read_text())
    new = {(parsed.nodes[e["src"]], parsed.nodes[e["dst"]]) for e in parsed.edges if e["status"] == "new"}
    assert new == {("shop/api[Deployment]", "203.0.113.7")}


def test_existing_that_is_a_file_is_one_error_line(tmp_path: Path) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text("kind: NetworkPolicy\n")
    proc = cli("generate", PCAP, "-i", INV, "--existing", str(f))
    assert proc.returncode == 2
    assert proc.stderr == f"Error: {f}: --existing must be a directory (the output of an earlier run)\n"


def test_existing_directory_not_there_yet_is_started(tmp_path: Path) -> None:
    out = tmp_path / "gitops" / "policies"
    proc = cli("generate", PCAP, "-i", INV, "--existing", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "0 policies unchanged, 0 changed, 6 new, 0 removed" in proc.stderr
    assert sorted(p.read_bytes() for p in out.rglob("*.yaml")) == \
        sorted(p.read_bytes() for p in (REPO / "tests" / "golden" / "demo").rglob("*.yaml"))
