"""One meaning of --format across subcommands: what is printed. JSON validates against the
package's schemas, JUnit parses back with each denied observed connection a failed case,
Markdown reads as a PR comment, and the input format is --input-format everywhere (the old
spellings still work, with a warning)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from netpolgen.schemas import NAMES, load_schema

REPO = Path(__file__).resolve().parents[1]
PCAP = str(REPO / "captures" / "demo.pcap")
INV = str(REPO / "captures" / "demo-inventory.json")
GOLDEN = REPO / "tests" / "golden" / "demo"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def validate(doc: dict, name: str) -> None:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.fixture(scope="module")
def deny_only(tmp_path_factory) -> Path:
    """The demo's default-deny policies alone: they deny every observed connection of shop and data."""
    d = tmp_path_factory.mktemp("deny-only")
    for ns in ("shop", "data"):
        (d / f"{ns}.yaml").write_text((GOLDEN / ns / "default-deny.yaml").read_text())
    return d


def test_every_schema_is_valid_draft_2020_12() -> None:
    for name in NAMES:
        jsonschema.Draft202012Validator.check_schema(load_schema(name))


def test_generate_json_validates_and_says_what_was_written(tmp_path: Path) -> None:
    proc = cli("generate", PCAP, "-i", INV, "-o", str(tmp_path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    validate(doc, "generate")
    assert sorted(doc["files"]["written"]) == sorted(str(p) for p in tmp_path.rglob("*.yaml"))
    assert doc["self_check"]["passed"] is True
    assert {r["policy"] for p in doc["policies"] for r in p["rules"]} <= {p["key"] for p in doc["policies"]}


def test_generate_with_existing_and_report_json_validate(tmp_path: Path) -> None:
    assert cli("generate", PCAP, "-i", INV, "-o", str(tmp_path / "pol"), "-q").returncode == 0
    merged = cli("generate", PCAP, "-i", INV, "--existing", str(tmp_path / "pol"), "--format", "json")
    assert merged.returncode == 0, merged.stderr
    doc = json.loads(merged.stdout)
    validate(doc, "generate")
    assert doc["files"]["written"] == [] and len(doc["files"]["unchanged"]) == 6
    rep = cli("report", PCAP, "-i", INV, "-p", str(tmp_path / "pol"), "-o", str(tmp_path / "r.html"), "--format", "json")
    assert rep.returncode == 0, rep.stderr
    validate(json.loads(rep.stdout), "generate")


def test_diff_json_of_both_modes_and_explain_json_validate(samples: Path, deny_only: Path) -> None:
    observed = cli("diff", PCAP, "-i", INV, "--existing", str(deny_only), "--format", "json")
    assert observed.returncode == 1
    validate(json.loads(observed.stdout), "diff-observed")
    base = samples / "netpol-analyzer" / "tests"
    old, new = str(base / "netpol-analysis-example-minimal"), str(base / "netpol-diff-example-minimal")
    sets = cli("diff", "--existing", old, "--proposed", new, "--inventory", old, "--format", "json")
    assert sets.returncode == 1
    doc = json.loads(sets.stdout)
    validate(doc, "diff-policy-sets")
    assert doc["diff"] and all(doc["old"] in e and doc["new"] in e for e in doc["diff"])
    explain = cli("explain", "shop/frontend", "shop/api[Deployment]", "5000", "-i", INV, "-p", str(GOLDEN), "--format", "json")
    assert explain.returncode == 0
    validate(json.loads(explain.stdout), "explain")


def test_a_schema_rejects_what_it_does_not_describe() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate({"summary": {}, "denied": [], "unused": [], "unobserved": [], "open": {}}, "diff-observed")


def _cases(xml_text: str) -> list[ET.Element]:
    root = ET.fromstring(xml_text)
    assert root.tag == "testsuites"
    return [tc for suite in root.iter("testsuite") for tc in suite.iter("testcase")]


def test_diff_junit_makes_each_denied_connection_a_failed_case(deny_only: Path) -> None:
    as_json = json.loads(cli("diff", PCAP, "-i", INV, "--existing", str(deny_only), "--format", "json").stdout)
    proc = cli("diff", PCAP, "-i", INV, "--existing", str(deny_only), "--format", "junit")
    assert proc.returncode == 1
    cases = _cases(proc.stdout)
    failed = {tc.get("name"): tc.find("failure") for tc in cases if tc.find("failure") is not None}
    want = {f"{d['src']} -> {d['dst']} {d['protocol']}/{d['port']}" for d in as_json["denied"]}
    assert want and set(failed) == want
    for d in as_json["denied"]:
        f = failed[f"{d['src']} -> {d['dst']} {d['protocol']}/{d['port']}"]
        assert str(d["connections"]) in f.get("message") and d["example"] in f.text
    suite = ET.fromstring(proc.stdout).find("testsuite")
    assert int(suite.get("failures")) == len(want) and int(suite.get("tests")) == len(cases)


def test_generate_junit_passes_every_observed_edge(tmp_path: Path) -> None:
    proc = cli("generate", PCAP, "-i", INV, "-o", str(tmp_path), "--format", "junit")
    assert proc.returncode == 0, proc.stderr
    cases = _cases(proc.stdout)
    assert len(cases) == 7 and all(tc.find("failure") is None for tc in cases)


def test_report_junit_fails_what_a_policy_set_denies(deny_only: Path, tmp_path: Path) -> None:
    proc = cli("report", PCAP, "-i", INV, "-p", str(deny_only), "-o", str(tmp_path / "r.html"), "--format", "junit")
    assert proc.returncode == 1
    cases = _cases(proc.stdout)
    assert cases and all(tc.find("failure") is not None for tc in cases)


def test_explain_junit_is_one_case_failed_when_denied(deny_only: Path) -> None:
    proc = cli("explain", "shop/frontend", "shop/api[Deployment]", "5000", "-i", INV, "-p", str(deny_only), "--format", "junit")
    assert proc.returncode == 1
    (case,) = _cases(proc.stdout)
    assert "denied" in case.find("failure").get("message")


def test_diff_markdown_reads_as_a_pr_comment(deny_only: Path) -> None:
    as_json = json.loads(cli("diff", PCAP, "-i", INV, "--existing", str(deny_only), "--format", "json").stdout)
    md = cli("diff", PCAP, "-i", INV, "--existing", str(deny_only), "--format", "markdown").stdout
    assert md.startswith("## netpolgen diff: observed traffic vs existing policies")
    assert f"{as_json['summary']['denied_connections']} observed connections would be denied" in md
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(rows) == len(as_json["denied"])
    for d in as_json["denied"]:
        assert any(f"`{d['src']}`" in r and f"`{d['dst']}`" in r and f"{d['protocol']}/{d['port']}" in r for r in rows)


def test_policy_set_diff_markdown_has_one_row_per_changed_pair(samples: Path) -> None:
    base = samples / "netpol-analyzer" / "tests"
    old, new = str(base / "netpol-analysis-example-minimal"), str(base / "netpol-diff-example-minimal")
    doc = json.loads(cli("diff", "--existing", old, "--proposed", new, "--inventory", old, "--format", "json").stdout)
    md = cli("diff", "--existing", old, "--proposed", new, "--inventory", old, "--format", "markdown").stdout
    assert len([line for line in md.splitlines() if line.startswith(("| changed", "| added", "| removed"))]) == len(doc["diff"])


def test_input_format_is_one_option_and_old_spellings_warn(tmp_path: Path) -> None:
    new = cli("generate", PCAP, "-i", INV, "-o", str(tmp_path / "a"), "--input-format", "pcap", "-q")
    assert new.returncode == 0 and new.stderr == ""
    old = cli("generate", PCAP, "-i", INV, "-o", str(tmp_path / "b"), "--format", "pcap", "-q")
    assert old.returncode == 0
    assert old.stderr == "Warning: --format pcap (an input format) is deprecated; use --input-format pcap\n"
    alias = cli("generate", PCAP, "-i", INV, "-o", str(tmp_path / "c"), "--source-format", "pcap", "-q")
    assert alias.returncode == 0 and "--source-format is deprecated; use --input-format" in alias.stderr
    for name in ("a", "b", "c"):
        assert sorted(p.read_bytes() for p in (tmp_path / name).rglob("*.yaml")) == \
            sorted(p.read_bytes() for p in GOLDEN.rglob("*.yaml"))
    diff = cli("diff", PCAP, "-i", INV, "--existing", str(GOLDEN), "--source-format", "pcap")
    assert diff.returncode == 0 and "--source-format is deprecated" in diff.stderr


def test_help_shows_input_format_and_hides_the_deprecated_aliases() -> None:
    for cmd in ("generate", "diff"):
        text = cli(cmd, "--help").stdout
        assert "--input-format" in text and "--source-format" not in text
        assert "junit" in text


def test_a_format_that_does_not_exist_is_one_error_line() -> None:
    proc = cli("explain", "a/b", "c/d", "80", "-i", INV, "--format", "yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "Error: --format: 'yaml' is not one of text, json, markdown, junit"


def test_generate_markdown_is_the_reports_twin(tmp_path: Path) -> None:
    proc = cli("generate", PCAP, "-i", INV, "-o", str(tmp_path / "p"), "--report", str(tmp_path / "r.html"),
               "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (tmp_path / "r.md").read_text()
    assert proc.stdout.startswith("## netpolgen report\n")


def test_generate_junit_fails_exactly_what_the_self_check_denies(tmp_path: Path) -> None:
    # A pod no selector can name (only a volatile label) calls web: the self-check denies that
    # connection, and the junit output fails that case and passes the other (lb -> web).
    from tests import kube

    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(kube.as_list(
        kube.namespace("ns"), kube.pod("ns", "bare", "10.0.0.1", {"pod-template-hash": "x"}),
        kube.pod("ns", "lb", "10.0.0.2", {"app": "lb"}), kube.pod("ns", "web", "10.0.0.3", {"app": "web"}))))
    flows = tmp_path / "flows.csv"
    flows.write_text("src_ip,dst_ip,src_port,dst_port,proto\n10.0.0.1,10.0.0.3,40000,80,TCP\n10.0.0.2,10.0.0.3,40001,80,TCP\n")
    doc = json.loads(cli("generate", str(flows), "-i", str(inv), "-o", str(tmp_path / "a"), "--format", "json").stdout)
    proc = cli("generate", str(flows), "-i", str(inv), "-o", str(tmp_path / "b"), "--format", "junit")
    assert proc.returncode == 3
    cases = _cases(proc.stdout)
    failed = {tc.get("name") for tc in cases if tc.find("failure") is not None}
    # the self-check's lines are "<connection>: <why>"; junit names the connection
    assert failed == {d.split(": ", 1)[0] for d in doc["self_check"]["denied"]} == {"ns/bare[Pod] -> ns/web[Pod] TCP/80"}
    assert len(cases) == doc["self_check"]["checked"]
