"""`netpolgen diff` and `netpolgen explain` from the command line: exit codes and the text users
see, on np-guard's minimal example (policy sets) and the bundled demo capture (observed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from netpolgen.cli import main

REPO = Path(__file__).resolve().parents[1]
DEMO_PCAP = str(REPO / "captures" / "demo.pcap")
DEMO_INV = str(REPO / "captures" / "demo-inventory.json")


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def minimal(samples: Path) -> tuple[str, str]:
    base = samples / "netpol-analyzer" / "tests"
    return str(base / "netpol-analysis-example-minimal"), str(base / "netpol-diff-example-minimal")


# ----- policy set vs policy set ------------------------------------------------------------------


def test_different_policy_sets_exit_1_with_grouped_text(minimal, capsys):
    old, new = minimal
    code, out, _ = run(["diff", "--existing", old, "--proposed", new, "--inventory", old], capsys)
    assert code == 1
    assert out == """\
Policy-set diff, existing -> proposed: 1 changed, 1 added, 0 removed (pairs of workloads or address ranges).

changed:
  default/frontend[Deployment] -> default/backend[Deployment]
      existing: TCP 9090
      proposed: TCP 9090,UDP 53

added (allowed only by proposed):
  0.0.0.0-255.255.255.255[External] -> default/backend[Deployment]: TCP 9090
"""


def test_equivalent_policy_sets_exit_0_and_say_so(minimal, tmp_path, capsys):
    old, _ = minimal
    # The same policies, reordered and with the default-deny split into two: same connectivity.
    docs = [d for d in yaml.safe_load_all(open(Path(old) / "netpols.yaml")) if d]
    deny = next(d for d in docs if d["metadata"]["name"] == "default-deny-in-namespace")
    ingress_only = {**deny, "metadata": {"name": "deny-in"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    egress_only = {**deny, "metadata": {"name": "deny-out"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    rest = [d for d in docs if d is not deny]
    (tmp_path / "split.yaml").write_text(yaml.safe_dump_all(list(reversed(rest)) + [ingress_only, egress_only]))
    code, out, _ = run(["diff", "--existing", old, "--proposed", str(tmp_path), "--inventory", old], capsys)
    assert code == 0
    assert out == "The existing and proposed policy sets allow the same connectivity (2 workloads compared).\n"


def test_policy_set_diff_json(minimal, capsys):
    old, new = minimal
    code, out, _ = run(["diff", "--existing", old, "--proposed", new, "--inventory", old, "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["equivalent"] is False
    assert doc["diff"] == [
        {"type": "changed", "src": "default/frontend[Deployment]", "dst": "default/backend[Deployment]",
         "existing": "TCP 9090", "proposed": "TCP 9090,UDP 53"},
        {"type": "added", "src": "0.0.0.0-255.255.255.255[External]", "dst": "default/backend[Deployment]",
         "existing": "No Connections", "proposed": "TCP 9090"},
    ]


@pytest.mark.parametrize("args, line", [
    (["diff", "x.pcap", "--existing", "a", "--proposed", "b", "--inventory", "i"],
     "Error: SOURCE: traffic sources cannot be combined with --proposed (that compares two policy sets)\n"),
    (["diff", "--existing", "a", "--proposed", "b"], "Error: --inventory: needed: the workloads the two policy sets are compared on\n"),
    (["diff", "--existing", "a"],
     "Error: SOURCE: give captures or flow logs to compare with --existing, or --proposed DIR to compare two policy sets\n"),
    (["diff", "--existing", "a", "--proposed", "b", "--inventory", "i", "--format", "yaml"],
     "Error: --format: 'yaml' is not one of text, json, markdown, junit\n"),
])
def test_usage_errors_are_one_line_and_exit_2(args, line, capsys):
    code, out, err = run(args, capsys)
    assert (code, out, err) == (2, "", line)


def test_a_missing_policy_directory_is_an_error(minimal, capsys):
    old, _ = minimal
    code, _, err = run(["diff", "--existing", old, "--proposed", "/nonexistent/dir", "--inventory", old], capsys)
    assert code == 2 and err == "Error: /nonexistent/dir: no such file or directory\n"


# ----- observed traffic vs existing policies -----------------------------------------------------


def _deny_all(tmp_path: Path) -> str:
    d = tmp_path / "deny"
    d.mkdir()
    docs = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-all", "namespace": ns},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}} for ns in ("shop", "data", "kube-system")]
    (d / "deny.yaml").write_text(yaml.safe_dump_all(docs))
    return str(d)


def test_observed_traffic_denied_by_existing_policies_exits_1(tmp_path, capsys):
    code, out, _ = run(["diff", DEMO_PCAP, "--inventory", DEMO_INV, "--existing", _deny_all(tmp_path)], capsys)
    assert code == 1
    # 360 = the demo's connections (UDP DNS lookups counted once per client socket, not per
    # capture point or DNAT form): recount with scapy if the demo is re-recorded
    assert out.startswith("Observed traffic vs 3 existing policies (0 rules): 360 connections evaluated, 360 would be denied.\n")
    assert ("  shop/frontend[Deployment] -> shop/api[Deployment] TCP/5000  (20 connections)\n"
            "      denied at egress+ingress by shop/deny-all; e.g. shop/frontend-2cflckpjfz-z5hvf -> shop/api-c8flp88msp-8ljqw\n") in out


def test_observed_traffic_all_allowed_exits_0_and_json_lists_nothing_denied(tmp_path, capsys):
    gen = tmp_path / "generated"
    code, _, _ = run(["generate", DEMO_PCAP, "--inventory", DEMO_INV, "--output", str(gen), "--quiet"], capsys)
    assert code == 0
    code, out, _ = run(["diff", DEMO_PCAP, "--inventory", DEMO_INV, "--existing", str(gen), "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["denied"] == [] and doc["summary"]["connections"] == 360


def test_observed_mode_without_any_existing_policies_is_a_usage_error(capsys):
    code, _, err = run(["diff", DEMO_PCAP, "--inventory", DEMO_INV], capsys)
    assert code == 2 and err.startswith("Error: --existing: no existing policies")


# ----- explain -----------------------------------------------------------------------------------


def test_explain_allowed_exits_0_and_names_the_rules(minimal, capsys):
    old, _ = minimal
    code, out, _ = run(["explain", "default/frontend", "default/backend", "9090/TCP", "--inventory", old, "--policies", old], capsys)
    assert code == 0
    assert out == """\
source default/frontend: pod default/frontend of default/frontend[Deployment]
destination default/backend: pod default/backend of default/backend[Deployment]
default/frontend (default/frontend[Deployment]) -> default/backend (default/backend[Deployment]) TCP/9090: ALLOWED
  egress  at default/frontend (default/frontend[Deployment]): allowed
           isolated by default/default-deny-in-namespace, default/frontend-netpol
           admitted by default/frontend-netpol egress[0]: to pods {app=backendservice}; on TCP 9090
  ingress at default/backend (default/backend[Deployment]): allowed
           isolated by default/backend-netpol, default/default-deny-in-namespace
           admitted by default/backend-netpol ingress[0]: from pods {app=frontend}; on TCP 9090
"""


def test_explain_denied_exits_1_and_json_says_why(minimal, capsys):
    old, _ = minimal
    code, out, _ = run(["explain", "default/backend", "8.8.8.8", "53/udp", "-i", old, "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["allowed"] is False
    assert doc["egress"]["policies"] == ["default/backend-netpol", "default/default-deny-in-namespace"]
    assert doc["egress"]["reason"] == "no egress rule of these policies admits traffic to 8.8.8.8 on UDP/53"
    assert doc["ingress"]["reason"] == "the destination is not a pod: no ingress policy applies"


def test_explain_accepts_workload_names_and_real_pods(capsys):
    code, out, _ = run(["explain", "shop/frontend", "shop/api[Deployment]", "5000", "-i", DEMO_INV,
                        "-p", str(REPO / "tests" / "golden" / "demo")], capsys)
    assert code == 0 and out.splitlines()[2].startswith("shop/frontend-2cflckpjfz-")
    assert out.splitlines()[1] == "destination shop/api[Deployment]: pod shop/api-c8flp88msp-8ljqw of shop/api[Deployment]"


@pytest.mark.parametrize("port, line", [
    ("80/ICMP", "Error: PORT/PROTO: '80/ICMP' is not PORT/PROTO (e.g. 8080/TCP, 53/UDP)\n"),
    ("http", "Error: PORT/PROTO: 'http' is not PORT/PROTO (e.g. 8080/TCP, 53/UDP)\n"),
])
def test_explain_bad_port(port, line, minimal, capsys):
    old, _ = minimal
    assert run(["explain", "default/frontend", "default/backend", port, "-i", old], capsys) == (2, "", line)
