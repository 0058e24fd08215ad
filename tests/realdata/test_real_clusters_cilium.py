"""The Cilium rendering on the three real Hubble clusters (and on traffic that carries DNS names):
every observed request connection (the independent reading of tests/realdata/clusters.py) is
allowed by the CiliumNetworkPolicies when the engine evaluates them, and every egress to an
outside address the flows name is a ``toFQDNs`` rule for those names, never a CIDR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netpolgen.identity import IdentityResolver
from netpolgen.pipeline import generate
from netpolgen.policy.kinds import policy_engine
from netpolgen.selfcheck import cilium_context
from netpolgen.synthesize import SynthesisOptions, _ref
from tests.conftest import REPO
from tests.realdata.clusters import CLUSTERS, cluster_files, observed_connections
from tests.realdata.test_real_clusters import _pod_for

CILIUM = SynthesisOptions(exclude_namespaces=(), kinds=("cilium",))


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cilium_run(request, samples: Path):
    files = cluster_files(samples, request.param)
    return request.param, files, generate([str(f) for f in files], [], synthesis_options=CILIUM)


def test_every_observed_request_connection_is_allowed_by_the_cilium_policies(cilium_run) -> None:
    cluster, files, result = cilium_run
    assert {p["kind"] for p in result.policies} == {"CiliumNetworkPolicy"}
    engine = policy_engine(result.inventory, result.policies,
                           cilium_context(result.edges, result.inventory, result.report.entities))
    observed = observed_connections(files)
    assert observed
    denied = []
    for src, dst, proto, port in sorted(observed):
        s, d = _pod_for(result.inventory, src), _pod_for(result.inventory, dst)
        if s != d and not engine.evaluate(s, d, port, proto).allowed:
            denied.append(f"{s} -> {d} {proto}/{port}")
    assert denied == [], f"{cluster}: observed but denied by the Cilium rendering: {denied}"
    assert result.self_check.checked > 0 and not result.self_check.failed


def fqdn_gaps(result) -> tuple[int, list[str]]:
    """(named outside egress edges, those whose Cilium rule is not toFQDNs for every name)."""
    ids = IdentityResolver(result.inventory)
    by_workload = {p["metadata"]["annotations"]["netpolgen.io/workload"]: p for p in result.policies
                   if "netpolgen.io/workload" in (p["metadata"].get("annotations") or {})}
    named, gaps = 0, []
    edges = result.edges
    for r in edges[(edges["src_kind"] == "pod") & (edges["dst_kind"] == "external") & (edges["dst_names"] != "")].itertuples():
        if r.src_namespace not in result.synthesis.namespaces:
            continue
        named += 1
        policy = by_workload[str(ids.identity(_ref(r.src_workload)).class_ref)]
        rules = policy["spec"].get("egress", [])
        port = str(r.dst_port)
        for name in r.dst_names.split(","):
            if not any({"matchName": name} in rule.get("toFQDNs", []) and
                       any(p["port"] == port for tp in rule["toPorts"] for p in tp["ports"]) for rule in rules):
                gaps.append(f"{r.src_workload} -> {name} ({r.dst_workload}) {r.proto}/{port}: no toFQDNs rule")
        if any(c.get("cidr", "").split("/")[0] == r.dst_workload for rule in rules for c in rule.get("toCIDRSet", [])):
            gaps.append(f"{r.src_workload} -> {r.dst_workload}: named, yet a toCIDRSet")
        dns_names = {d.get("matchName") for rule in rules for tp in rule["toPorts"] for d in (tp.get("rules") or {}).get("dns", [])}
        if not set(r.dst_names.split(",")) <= dns_names:
            gaps.append(f"{r.src_workload}: the port-53 rule does not let the DNS proxy see {r.dst_names}")
    return named, gaps


def test_cilium_egress_to_named_destinations_uses_to_fqdns_on_the_real_clusters(cilium_run) -> None:
    """These 2021 Hubble exports carry no ``destination_names``: their outside egress is CIDRs, and
    the check below holds for every edge that does carry names (none here; see the next tests)."""
    _, _, result = cilium_run
    named, gaps = fqdn_gaps(result)
    assert gaps == []
    outside = result.edges[(result.edges["dst_kind"] == "external") & (result.edges["src_kind"] == "pod")]
    assert named == int((outside["dst_names"] != "").sum())


def test_cilium_egress_to_named_destinations_uses_to_fqdns_on_the_demo() -> None:
    result = generate([str(REPO / "captures" / "demo.pcap")], [str(REPO / "captures" / "demo-inventory.json")],
                      synthesis_options=SynthesisOptions(kinds=("cilium",)))
    named, gaps = fqdn_gaps(result)
    assert named > 0 and gaps == []
    assert not result.self_check.failed


def test_hubble_destination_names_become_to_fqdns(tmp_path: Path) -> None:
    """Hubble flows with ``destination_names`` (as Cilium's DNS proxy fills them in), written here:
    one pod calling two names on one address and a third on another, plus its DNS lookups."""
    def flow(i: int, dst_ip: str, port: int, proto: str, names: list[str], dst: dict) -> dict:
        l4 = {"source_port": 41000 + i, "destination_port": port}
        if proto == "TCP":
            l4["flags"] = {"SYN": True}
        return {"flow": {"time": f"2024-01-01T00:00:{i:02d}Z", "verdict": "FORWARDED", "is_reply": False,
                         "Type": "L3_L4", "IP": {"source": "10.0.0.5", "destination": dst_ip, "ipVersion": "IPv4"},
                         "l4": {proto: l4},
                         "source": {"namespace": "shop", "pod_name": "api-7d4b9c-x1",
                                    "labels": ["k8s:app=api", "k8s:io.kubernetes.pod.namespace=shop"]},
                         "destination": dst, "destination_names": names}}
    world = {"labels": ["reserved:world"]}
    dns = {"namespace": "kube-system", "pod_name": "coredns-5d78c9869d-abcde",
           "labels": ["k8s:k8s-app=kube-dns", "k8s:io.kubernetes.pod.namespace=kube-system"]}
    records = [flow(0, "10.0.9.10", 53, "UDP", [], dns),
               flow(1, "52.216.1.1", 443, "TCP", ["bucket.s3.amazonaws.com", "s3.amazonaws.com"], world),
               flow(2, "140.82.1.1", 443, "TCP", ["api.github.com"], world)]
    path = tmp_path / "flows.json"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    result = generate([str(path)], [], synthesis_options=CILIUM)
    named, gaps = fqdn_gaps(result)
    assert named == 2 and gaps == []
    assert not result.self_check.failed and result.self_check.checked == 3
    (api,) = [p for p in result.policies if p["metadata"]["namespace"] == "shop" and p["metadata"]["name"] != "default-deny"]
    assert not any("toCIDRSet" in rule for rule in api["spec"]["egress"])
    assert sorted(n["matchName"] for rule in api["spec"]["egress"] for n in rule.get("toFQDNs", [])) == \
        ["api.github.com", "bucket.s3.amazonaws.com", "s3.amazonaws.com"]
