"""inventory_from_flows / merge_inventories: an inventory from flow-log metadata, and a real
inventory winning over it."""

from __future__ import annotations

import pandas as pd
import pytest

from netpolgen.flows import concat_flows, normalize_flows
from netpolgen.inventory import WorkloadRef
from netpolgen.inventory.from_flows import inventory_from_flows, merge_inventories
from netpolgen.inventory.loader import inventory_from_objects
from netpolgen.sources.hubble import HubbleSource
from tests import kube


def flows(*rows: dict) -> pd.DataFrame:
    base = {"src_port": 40000, "dst_port": 80, "proto": "TCP", "connections": 1, "verdict": "allowed",
            "direction_known": True, "first_seen": 100.0, "last_seen": 200.0}
    return normalize_flows(pd.DataFrame([{**base, **r} for r in rows]))


def test_hubble_sample_pods_workloads_and_nothing_for_reserved(samples):
    """From the 2021-06 Hubble sample (no workloads field): each pod with its IP and stable
    labels, Deployments recognised from the ReplicaSet-hash pod names, and nothing for
    reserved:host or reserved:world addresses."""
    src = HubbleSource(str(samples / "hubble-flows" / "basic-sample-10-flows.json"))
    df = concat_flows(src.chunks())
    inv = inventory_from_flows(df)
    keys = {p.key for p in inv.pods}
    assert keys == set(df["src_pod"]) - {""} | set(df["dst_pod"]) - {""}
    reviews = inv.pod("bookinfo/reviews-v1-545db77b95-s6jb8")
    assert reviews.ips == ("10.0.2.16",)
    assert reviews.labels == {"app": "reviews", "security.istio.io/tlsMode": "istio", "version": "v1"}
    assert inv.workload_of(reviews) == WorkloadRef("Deployment", "bookinfo", "reviews-v1")
    assert inv.pods_at("10.0.2.1") == [] and inv.pods_at("35.246.31.234") == []
    assert set(inv.namespaces) == {"bookinfo", "istio-system", "kube-system"}
    assert inv.namespace_labels("bookinfo") == {"kubernetes.io/metadata.name": "bookinfo"}


@pytest.mark.parametrize("workload, pod, expected", [
    ("Deployment/web", "web-6d4cf56db6-x7k2p", ("Deployment", "web")),
    ("StatefulSet/db", "db-0", ("StatefulSet", "db")),
    ("DaemonSet/agent", "agent-q8x5t", ("DaemonSet", "agent")),
    ("CronJob/backup", "backup-28000000-zzbbd", ("CronJob", "backup")),
    ("Job/migrate", "migrate-5kx2d", ("Job", "migrate")),
    ("", "web-6d4cf56db6-x7k2p", ("Deployment", "web")),  # from the name alone
    ("", "backup-28000000-zzbbd", ("CronJob", "backup")),
    ("", "standalone", ("Pod", "standalone")),
    # <name>-<5> is a DaemonSet's or a Job's pod; a Job's carries job-name, so without it the
    # owner is inferred as a DaemonSet (and the summary says it was inferred)
    ("", "agent-q8x5t", ("DaemonSet", "agent")),
    ("", "db-1", ("StatefulSet", "db")),  # <sts>-<ordinal>
])
def test_workload_column_and_kubernetes_names_give_the_owner(workload, pod, expected):
    """Inventory.workload_of answers the workload the flows named, or Kubernetes' naming."""
    inv = inventory_from_flows(flows({"src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "src_namespace": "app",
                                      "src_pod": f"app/{pod}", "src_labels": "app=x", "src_owner": workload}))
    p = inv.pod(f"app/{pod}")
    assert inv.workload_of(p) == WorkloadRef(expected[0], "app", expected[1])


def test_controller_labels_give_the_owner_and_are_then_dropped():
    """Calico keeps every pod label: the controllers' own labels name the owner, then go
    (volatile, DESIGN.md), leaving the labels a selector may use."""
    inv = inventory_from_flows(flows(
        {"src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "src_namespace": "a", "src_pod": "a/agent-q8x5t",
         "src_labels": "app=agent,controller-revision-hash=5d9f,pod-template-generation=3",
         "dst_namespace": "a", "dst_pod": "a/web-0",
         "dst_labels": "app=web,controller-revision-hash=web-7f,statefulset.kubernetes.io/pod-name=web-0"},
        {"src_ip": "10.0.0.3", "dst_ip": "10.0.0.2", "src_namespace": "a", "src_pod": "a/sync-28000001-abcde",
         "src_labels": "app=sync,job-name=sync-28000001,controller-uid=1234"},
    ))
    agent, web, sync = inv.pod("a/agent-q8x5t"), inv.pod("a/web-0"), inv.pod("a/sync-28000001-abcde")
    assert inv.workload_of(agent) == WorkloadRef("DaemonSet", "a", "agent")
    assert inv.workload_of(web) == WorkloadRef("StatefulSet", "a", "web")
    assert inv.workload_of(sync) == WorkloadRef("CronJob", "a", "sync")
    assert (agent.labels, web.labels, sync.labels) == ({"app": "agent"}, {"app": "web"}, {"app": "sync"})


def test_one_pod_per_key_with_all_its_addresses_and_common_labels():
    """A pod seen on both sides and with two addresses (dual stack) is one Pod; labels that
    differ between records (an aggregated Calico endpoint) are not kept."""
    inv = inventory_from_flows(flows(
        {"src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "src_namespace": "a", "src_pod": "a/x-*", "src_labels": "app=x,v=1"},
        {"src_ip": "fd00::2", "dst_ip": "fd00::1", "dst_namespace": "a", "dst_pod": "a/x-*", "dst_labels": "app=x,v=2"},
    ))
    assert [p.key for p in inv.pods] == ["a/x-*"]
    assert inv.pods[0].ips == ("10.0.0.1", "fd00::1") and inv.pods[0].labels == {"app": "x"}


def test_an_address_reused_by_two_pods_is_told_apart_by_time():
    """Two pods held 10.0.0.9 one after the other: the flow's time picks the right one."""
    inv = inventory_from_flows(flows(
        {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.2", "src_namespace": "a", "src_pod": "a/old", "first_seen": 100.0, "last_seen": 150.0},
        {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.2", "src_namespace": "a", "src_pod": "a/new", "first_seen": 300.0, "last_seen": 350.0},
    ))
    assert [p.name for p in inv.pods_at("10.0.0.9", 120.0)] == ["old"]
    assert [p.name for p in inv.pods_at("10.0.0.9", 320.0)] == ["new"]


def test_merge_real_inventory_wins_and_flows_fill_gaps():
    """The real inventory keeps its pods and its addresses; a flow pod it does not know is added
    without the addresses it knows (the records that name the pod still resolve to it: an
    address reused over the window, issue "every address one story"); what the real one had
    added (a cluster range) stays."""
    real = inventory_from_objects([kube.as_list(
        kube.deployment("shop", "web", {"app": "web"}),
        kube.rs_pod("shop", "web", "abcde", "10.1.0.5", {"app": "web"}),
        kube.service("shop", "web", "10.96.0.10", {"app": "web"}, [(80, 8080, "TCP")]),
    )])
    real.add_cluster_network("10.200.0.0/16")
    from_flows = inventory_from_flows(flows(
        {"src_ip": "10.1.0.5", "dst_ip": "10.1.0.7", "src_namespace": "shop", "src_pod": "shop/impostor",
         "dst_namespace": "shop", "dst_pod": "shop/cache-7c9f8d6b5-qwert", "dst_labels": "app=cache",
         "dst_owner": "Deployment/cache"},
    ))
    merged = merge_inventories(real, from_flows)
    assert [p.key for p in merged.pods_at("10.1.0.5")] == [p.key for p in real.pods_at("10.1.0.5")]
    impostor = merged.pod("shop/impostor")
    assert impostor is not None and impostor.ips == ()
    cache = merged.pod("shop/cache-7c9f8d6b5-qwert")
    assert cache is not None and merged.workload_of(cache) == WorkloadRef("Deployment", "shop", "cache")
    assert merged.service_at("10.96.0.10") is not None
    assert merged.in_cluster_range("10.200.3.4")
    assert len([p for p in merged.pods if p.from_template]) == len([p for p in real.pods if p.from_template])
