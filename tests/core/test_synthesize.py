"""Synthesis: the rules that make generated policy correct (DESIGN.md), one test each."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import pandas as pd

from netpolgen.aggregate import aggregate_edges
from netpolgen.flows import normalize_flows
from netpolgen.inventory import inventory_from_objects
from netpolgen.render import to_yaml_stream, write_policy_files
from netpolgen.resolve import resolve_flows
from netpolgen.synthesize import SynthesisOptions, synthesize
from tests import kube, shop
from tests.conftest import UPDATE_GOLDEN
from tests.schema import assert_valid_networkpolicy

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _policies(opts: SynthesisOptions | None = None, flows: pd.DataFrame | None = None, inv=None) -> list[dict]:
    inv = inv or shop.inventory()
    edges = aggregate_edges(resolve_flows(shop.flows() if flows is None else flows, inv).flows)
    return synthesize(edges, inv, opts).policies


def _by_name(policies: list[dict]) -> dict[tuple[str, str], dict]:
    return {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in policies}


def test_every_generated_object_is_a_valid_networkpolicy() -> None:
    for p in _policies():
        assert_valid_networkpolicy(p)


def test_one_default_deny_per_namespace_in_scope_and_kube_system_excluded_by_default() -> None:
    denies = [p for p in _policies() if p["metadata"]["name"] == "default-deny"]
    assert [p["metadata"]["namespace"] for p in denies] == ["data", "monitoring", "shop"]
    for p in denies:
        assert p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_policy_types_are_always_explicit_and_no_allow_policy_selects_every_pod() -> None:
    for p in _policies():
        assert p["spec"]["policyTypes"], p["metadata"]
        if p["metadata"]["name"] != "default-deny":
            assert p["spec"]["podSelector"] != {}


def test_a_peer_in_another_namespace_is_one_entry_with_both_selectors() -> None:
    pol = _by_name(_policies())[("data", "allow-postgres")]
    peers = pol["spec"]["ingress"][0]["from"]
    assert peers == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
        "podSelector": {"matchLabels": {"app": "api", "track": "stable"}},
    }]


def test_both_ends_of_a_connection_get_their_half() -> None:
    pols = _by_name(_policies())
    egress = pols[("shop", "allow-api")]["spec"]["egress"]
    assert any(r["ports"] == [{"port": 5432, "protocol": "TCP"}] for r in egress)
    ingress = pols[("data", "allow-postgres")]["spec"]["ingress"]
    assert ingress[0]["ports"] == [{"port": 5432, "protocol": "TCP"}]


def test_dns_over_udp_also_allows_tcp_on_the_kube_dns_pods_real_port() -> None:
    egress = _by_name(_policies())[("shop", "allow-api")]["spec"]["egress"]
    dns_rules = [r for r in egress if any(p["port"] == 53 for p in r["ports"])]
    assert [r["ports"] for r in dns_rules] == [[{"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]]


def test_external_and_node_peers_are_host_ipblocks() -> None:
    pols = _by_name(_policies())
    fe_in = pols[("shop", "allow-frontend")]["spec"]["ingress"]
    assert fe_in[0]["from"] == [{"ipBlock": {"cidr": "198.51.100.20/32"}}]
    prom_out = pols[("monitoring", "allow-prometheus")]["spec"]["egress"]
    assert {"ipBlock": {"cidr": "172.18.0.2/32"}} in [peer for r in prom_out for peer in r["to"]]


def test_ipv6_external_peers_are_slash_128() -> None:
    flows = normalize_flows(pd.DataFrame([{"src_ip": "10.244.1.20", "src_port": 40000, "dst_ip": "2001:db8::7",
                                           "dst_port": 443, "proto": "TCP", "direction_known": True, "connections": 1}]))
    pol = _by_name(_policies(flows=flows))[("shop", "allow-api")]
    assert pol["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "2001:db8::7/128"}}]


def test_namespace_option_limits_output_and_can_name_an_excluded_namespace() -> None:
    only = _policies(SynthesisOptions(namespaces=("data",)))
    assert {p["metadata"]["namespace"] for p in only} == {"data"}
    ks = _policies(SynthesisOptions(namespaces=("kube-system",)))
    assert {p["metadata"]["name"] for p in ks} == {"default-deny", "allow-coredns"}


def test_no_egress_writes_ingress_only_policies() -> None:
    pols = _policies(SynthesisOptions(egress=False))
    for p in pols:
        assert p["spec"]["policyTypes"] == ["Ingress"]
        assert "egress" not in p["spec"]
    assert ("monitoring", "allow-prometheus") not in _by_name(pols)  # it only had egress


def test_workloads_labels_cannot_tell_apart_get_one_class_policy() -> None:
    """a and b carry the same labels: a -> c is written as the class {a, b} -> c (one policy
    selecting both, annotated with its members and why), never as nothing."""
    objs = [kube.namespace("ns"), kube.pod("ns", "a", "10.0.0.1", {"app": "same"}),
            kube.pod("ns", "b", "10.0.0.2", {"app": "same"}), kube.pod("ns", "c", "10.0.0.3", {"app": "c"})]
    inv = inventory_from_objects(objs)
    flows = normalize_flows(pd.DataFrame([{"src_ip": "10.0.0.1", "src_port": 40000, "dst_ip": "10.0.0.3",
                                           "dst_port": 80, "proto": "TCP", "direction_known": True, "connections": 1}]))
    edges = aggregate_edges(resolve_flows(flows, inv).flows)
    res = synthesize(edges, inv)
    by_name = {p["metadata"]["name"]: p for p in res.policies}
    assert set(by_name) == {"default-deny", "allow-a", "allow-c"}
    cls = by_name["allow-a"]
    assert cls["spec"]["podSelector"] == {"matchLabels": {"app": "same"}}
    assert cls["metadata"]["annotations"]["netpolgen.io/label-class"] == "ns/a[Pod], ns/b[Pod]"
    assert cls["spec"]["egress"][0]["to"] == [{"podSelector": {"matchLabels": {"app": "c"}}}]
    assert by_name["allow-c"]["spec"]["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "same"}}}]
    assert res.problems == [] and res.skipped_edges == 0
    assert len(res.label_classes) == 1 and res.label_classes[0].startswith("ns/allow-a selects ns/a[Pod], ns/b[Pod]")


def test_workloads_that_cannot_be_selected_get_no_policy_and_are_reported() -> None:
    """A pod with no stable label cannot be selected at all: no policy names it, and it is said."""
    objs = [kube.namespace("ns"), kube.pod("ns", "a", "10.0.0.1", {"pod-template-hash": "x"}),
            kube.pod("ns", "c", "10.0.0.3", {"app": "c"})]
    inv = inventory_from_objects(objs)
    flows = normalize_flows(pd.DataFrame([{"src_ip": "10.0.0.1", "src_port": 40000, "dst_ip": "10.0.0.3",
                                           "dst_port": 80, "proto": "TCP", "direction_known": True, "connections": 1}]))
    edges = aggregate_edges(resolve_flows(flows, inv).flows)
    res = synthesize(edges, inv)
    names = {p["metadata"]["name"] for p in res.policies}
    assert names == {"default-deny"}  # c's only peer cannot be named, so c gets no rule either
    assert res.problems == ["ns/a[Pod]: its pods have no stable labels to select them by"]
    assert res.skipped_edges == 1


def test_output_is_byte_identical_whatever_the_row_order() -> None:
    flows = shop.flows()
    a = to_yaml_stream(_policies(flows=flows))
    b = to_yaml_stream(_policies(flows=flows.sample(frac=1.0, random_state=7).reset_index(drop=True)))
    assert a == b


def test_golden_files(tmp_path: Path) -> None:
    """The whole output tree for the shop scenario, byte for byte."""
    written = write_policy_files(_policies(), str(tmp_path))
    golden = GOLDEN / "shop"
    if UPDATE_GOLDEN:
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(tmp_path, golden)
    rel = sorted(os.path.relpath(p, tmp_path) for p in written)
    expected = sorted(str(p.relative_to(golden)) for p in golden.rglob("*.yaml"))
    assert rel == expected
    match, mismatch, errors = filecmp.cmpfiles(tmp_path, golden, rel, shallow=False)
    assert mismatch == [] and errors == []
