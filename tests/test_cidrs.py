"""CIDR aggregation with a budget (``netpolgen.cidrs``): within the budget where the floor and
the cluster's ranges allow, covering every observed address, never reaching a cluster address,
and reporting exactly how many never-seen addresses each rule now allows."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.cidrs import CidrBudget, aggregate_model, collapse
from netpolgen.inventory.model import WorkloadRef
from netpolgen.model import CidrPeer, Evidence, PolicyModel, PortSpec, Rule, WorkloadPeer, WorkloadRules
from netpolgen.selectors import LabelSelector

SUBJECT = WorkloadRef("Deployment", "shop", "api")
SEL = LabelSelector.from_labels({"app": "api"})
HTTPS = PortSpec("TCP", 443)


def _model(addresses: list[str], port: PortSpec = HTTPS) -> PolicyModel:
    rules = tuple(Rule(CidrPeer(f"{a}/32"), port, Evidence(1)) for a in addresses)
    rules += (Rule(WorkloadPeer("shop", LabelSelector.from_labels({"app": "db"}), "shop/db[Deployment]"), PortSpec("TCP", 5432)),)
    return PolicyModel(("shop",), (WorkloadRules(SUBJECT, SEL, egress=rules),))


def _nets(model: PolicyModel) -> list[ipaddress.IPv4Network]:
    return [ipaddress.ip_network(r.peer.cidr) for r in model.workloads[0].egress if isinstance(r.peer, CidrPeer)]


def test_neighbouring_addresses_collapse_into_one_cidr_and_the_widening_is_counted() -> None:
    out = aggregate_model(_model(["52.1.2.3", "52.1.2.9", "52.1.2.200"]), CidrBudget(1), [])
    assert _nets(out) == [ipaddress.ip_network("52.1.2.0/24")]
    (note,) = out.workloads[0].widening
    assert note.startswith("egress TCP/443: 3 CIDRs -> 1 (52.1.2.0/24); 253 never-seen addresses allowed")
    assert sum(r.evidence.connections for r in out.workloads[0].egress if isinstance(r.peer, CidrPeer)) == 3


def test_the_floor_stops_widening_and_says_the_budget_was_not_met() -> None:
    out = aggregate_model(_model(["52.1.2.3", "52.1.9.3"]), CidrBudget(1, floor_v4=24), [])
    assert _nets(out) == [ipaddress.ip_network("52.1.2.3/32"), ipaddress.ip_network("52.1.9.3/32")]
    assert out.workloads[0].widening == ()  # nothing changed, nothing to report


def test_no_cidr_reaches_a_cluster_address() -> None:
    out = aggregate_model(_model(["10.0.5.1", "10.0.5.7"]), CidrBudget(1), ["10.0.5.4/32"])
    assert all(not n.overlaps(ipaddress.ip_network("10.0.5.4/32")) for n in _nets(out))
    assert {str(a) for n in _nets(out) for a in n} >= {"10.0.5.1", "10.0.5.7"}


def test_a_known_range_absorbs_its_addresses_even_beyond_the_floor() -> None:
    out = aggregate_model(_model(["3.5.1.1", "3.5.200.1"]), CidrBudget(4, known=("3.5.0.0/16",)), [])
    assert _nets(out) == [ipaddress.ip_network("3.5.0.0/16")]


def test_other_peers_and_ports_are_left_alone() -> None:
    model = _model(["52.1.2.3", "52.1.2.9"])
    out = aggregate_model(model, CidrBudget(1), [])
    assert [r for r in out.workloads[0].egress if not isinstance(r.peer, CidrPeer)] == \
        [r for r in model.workloads[0].egress if not isinstance(r.peer, CidrPeer)]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 2**12 - 1), min_size=1, max_size=20, unique=True), st.integers(1, 4),
       st.lists(st.integers(0, 2**12 - 1), max_size=3))
def test_collapse_covers_every_address_within_the_floor_and_never_a_forbidden_one(offsets, budget, forbidden_offsets) -> None:
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    forbidden = {base + f for f in forbidden_offsets} - {base + o for o in offsets}
    nets = [ipaddress.ip_network((base + o, 32)) for o in offsets]
    blocked = [ipaddress.ip_network((f, 32)) for f in forbidden]
    out = collapse(nets, CidrBudget(budget, floor_v4=22), blocked, [])
    for n in nets:
        assert any(n.subnet_of(c) for c in out)
    assert all(c.prefixlen >= 22 for c in out)
    assert not any(c.overlaps(b) for c in out for b in blocked)
    assert len(out) <= len(nets)
    # Over budget only when no allowed merge was left.
    if len(out) > budget:
        for a, b in itertools.pairwise(out):
            prefix = min(a.prefixlen, b.prefixlen)
            while not b.subnet_of(a.supernet(new_prefix=prefix)):
                prefix -= 1
            sup = a.supernet(new_prefix=prefix)
            assert sup.prefixlen < 22 or any(sup.overlaps(x) for x in blocked)


def test_generate_reports_the_widening_per_rule_and_the_self_check_still_passes(tmp_path) -> None:
    """Through the CLI: five addresses of one /24 seen from one workload, a budget of one CIDR."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    records = []
    for i, last in enumerate((3, 17, 40, 41, 250)):
        records.append({"flow": {
            "time": f"2024-01-01T00:00:{i:02d}Z", "verdict": "FORWARDED", "is_reply": False, "Type": "L3_L4",
            "IP": {"source": "10.0.0.5", "destination": f"52.1.2.{last}", "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": 40000 + i, "destination_port": 443, "flags": {"SYN": True}}},
            "source": {"namespace": "shop", "pod_name": "api-7d4b9c-x1", "labels": ["k8s:app=api", "k8s:io.kubernetes.pod.namespace=shop"]},
            "destination": {"labels": ["reserved:world"]},
        }})
    flows = tmp_path / "flows.json"
    flows.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "netpolgen", "generate", str(flows), "-o", str(out),
                           "--max-cidrs-per-rule", "1", "--kind", "cilium"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "self-check: passed" in proc.stderr
    assert "egress TCP/443: 5 CIDRs -> 1 (52.1.2.0/24); 251 never-seen addresses allowed" in proc.stderr
    text = next(out.rglob("allow-api*.yaml")).read_text()
    assert "cidr: 52.1.2.0/24" in text and "netpolgen.io/cidr-widening" in text
