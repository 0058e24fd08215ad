"""Cluster-wide baselines: the rules every namespace was seen to need (DNS to kube-dns, scrapes
from monitoring) written once, as a CiliumClusterwideNetworkPolicy (``--kind
cilium-clusterwide``) or a Baseline-tier ClusterNetworkPolicy (``--kind clusternetworkpolicy``),
with the namespace policies on top. Shown on a small cluster built here: each set passes its
self-check, validates against its schema, and a workload never observed gets exactly the shared
rules, nothing more."""

from __future__ import annotations

import pandas as pd
import pytest

from netpolgen.aggregate import aggregate_edges
from netpolgen.flows import normalize_flows
from netpolgen.inventory import inventory_from_objects
from netpolgen.pipeline import self_check
from netpolgen.policy.kinds import policy_engine
from netpolgen.resolve import resolve_flows
from netpolgen.selfcheck import cilium_context
from netpolgen.synthesize import SynthesisOptions, synthesize
from tests import kube
from tests.kindschema import assert_valid_document, schemas_present

WORKLOADS = [  # (namespace, name, ip)
    ("alpha", "web", "10.1.0.1"), ("alpha", "new", "10.1.0.9"), ("beta", "api", "10.2.0.1"),
    ("kube-system", "coredns", "10.9.0.1"), ("monitoring", "prometheus", "10.8.0.1"),
]
CONNECTIONS = [  # what was observed; alpha/new never talked
    ("10.1.0.1", "10.9.0.1", 53, "UDP"), ("10.2.0.1", "10.9.0.1", 53, "UDP"),
    ("10.8.0.1", "10.1.0.1", 9090, "TCP"), ("10.8.0.1", "10.2.0.1", 9090, "TCP"),
    ("10.1.0.1", "10.2.0.1", 8080, "TCP"),
]


def _run(kind: str):
    objs = [kube.namespace(ns) for ns in ("alpha", "beta", "kube-system", "monitoring")]
    for ns, name, ip in WORKLOADS:
        labels = {"k8s-app": "kube-dns"} if name == "coredns" else {"app": name}
        objs += kube.deployment(ns, name, labels) + [kube.rs_pod(ns, name, "x1", ip, labels)]
    inv = inventory_from_objects(objs)
    rows = [{"src_ip": s, "src_port": 40000 + i, "dst_ip": d, "dst_port": port, "proto": proto, "direction_known": True,
             "connections": 1, "packets": 1, "bytes": 60} for i, (s, d, port, proto) in enumerate(CONNECTIONS)]
    edges = aggregate_edges(resolve_flows(normalize_flows(pd.DataFrame(rows)), inv).flows)
    result = synthesize(edges, inv, SynthesisOptions(namespaces=("alpha", "beta"), kinds=(kind,)))
    return inv, edges, result


def _ask(inv, edges, docs, src: str, dst: str, port: int, proto: str = "TCP") -> bool:
    pod = {ip: p.key for p in inv.pods for ip in p.ips}
    engine = policy_engine(inv, docs, cilium_context(edges, inv, {}))
    row = pd.DataFrame([{"src_pod": pod[src], "src_ip": "", "dst_pod": pod[dst], "dst_ip": "", "dst_port": port, "proto": proto}])
    return bool(engine.evaluate_flows(row)["allowed"].iloc[0])


@pytest.mark.parametrize("kind", ["cilium-clusterwide", "clusternetworkpolicy"])
def test_the_baseline_states_the_shared_rules_once_and_the_output_passes_its_self_check(kind: str) -> None:
    inv, edges, result = _run(kind)
    docs = result.policy_sets[kind]
    cluster_scoped = [d for d in docs if "namespace" not in d["metadata"]]
    assert len(cluster_scoped) == 1
    if schemas_present():
        for d in docs:
            assert_valid_document(d)
    check = self_check(edges, inv, result)
    assert check.checked == len(CONNECTIONS) and not check.failed, check.denied
    # The never-observed workload: DNS and the monitoring scrape (what every namespace needs), nothing else.
    assert _ask(inv, edges, docs, "10.1.0.9", "10.9.0.1", 53, "UDP")
    assert _ask(inv, edges, docs, "10.8.0.1", "10.1.0.9", 9090)
    assert not _ask(inv, edges, docs, "10.1.0.9", "10.2.0.1", 8080)
    assert not _ask(inv, edges, docs, "10.2.0.1", "10.1.0.9", 8080)
    # Observed workloads keep exactly what they did.
    assert _ask(inv, edges, docs, "10.1.0.1", "10.2.0.1", 8080)
    assert not _ask(inv, edges, docs, "10.2.0.1", "10.1.0.1", 8080)


def test_clusterwide_cilium_moves_the_shared_rules_out_of_the_namespace_policies() -> None:
    _, _, result = _run("cilium-clusterwide")
    docs = result.policy_sets["cilium-clusterwide"]
    (ccnp,) = [d for d in docs if d["kind"] == "CiliumClusterwideNetworkPolicy"]
    assert ccnp["spec"]["endpointSelector"]["matchExpressions"][0]["values"] == ["alpha", "beta"]
    assert [r["toEndpoints"][0]["matchLabels"]["k8s-app"] for r in ccnp["spec"]["egress"]] == ["kube-dns"]
    assert [r["fromEndpoints"][0]["matchLabels"]["app"] for r in ccnp["spec"]["ingress"]] == ["prometheus"]
    namespaced = [d for d in docs if d["kind"] == "CiliumNetworkPolicy" and d["metadata"]["name"] != "default-deny"]
    text = repr(namespaced)
    assert "kube-dns" not in text and "prometheus" not in text
    assert "'8080'" in text  # alpha/web -> beta/api stays in the namespace policies


def test_the_clusternetworkpolicy_baseline_accepts_the_shared_rules_then_denies() -> None:
    _, _, result = _run("clusternetworkpolicy")
    docs = result.policy_sets["clusternetworkpolicy"]
    (base,) = [d for d in docs if d["kind"] == "ClusterNetworkPolicy"]
    assert base["spec"]["tier"] == "Baseline"
    assert [r["action"] for r in base["spec"]["egress"]] == ["Accept", "Deny"]
    assert [r["action"] for r in base["spec"]["ingress"]] == ["Accept", "Deny"]
    assert {d["kind"] for d in docs} == {"ClusterNetworkPolicy", "NetworkPolicy"}
    assert not any(d["metadata"]["name"] == "default-deny" for d in docs)  # the baseline denies instead
