"""Selectors: exactly one workload's pods, never an accidental ``{}``."""

from __future__ import annotations

from netpolgen.identity import IdentityResolver
from netpolgen.inventory import WorkloadRef, inventory_from_objects
from tests import kube, shop


def test_controller_selector_is_used_when_the_inventory_has_the_controller() -> None:
    ids = IdentityResolver(shop.inventory())
    ident = ids.identity(WorkloadRef("Deployment", "shop", "api"))
    assert ident.selector is not None and ident.selector.to_dict() == {"matchLabels": {"app": "api", "track": "stable"}}


def test_without_the_controller_the_pod_labels_minus_volatile_ones_are_used() -> None:
    """StatefulSet pods carry controller-revision-hash and pod-name labels: both are dropped."""
    objs = [kube.pod("data", "db-0", "10.0.0.5", {"app": "db", "controller-revision-hash": "x1",
                                                   "statefulset.kubernetes.io/pod-name": "db-0"},
                     owner=("StatefulSet", "db"))]
    ident = IdentityResolver(inventory_from_objects(objs)).identity(WorkloadRef("StatefulSet", "data", "db"))
    assert ident.selector is not None and ident.selector.to_dict() == {"matchLabels": {"app": "db"}}


def test_a_controller_selector_that_catches_another_workload_falls_back_to_finer_labels() -> None:
    """Deployment ``web`` selects app=web, but so do the pods of ``web-canary``; the pods' own
    labels (app=web, track=stable) tell them apart."""
    objs = kube.deployment("ns", "web", {"app": "web"}) + kube.deployment("ns", "web-canary", {"app": "web", "track": "canary"})
    objs += [kube.rs_pod("ns", "web", "a", "10.0.0.1", {"app": "web", "track": "stable"}),
             kube.rs_pod("ns", "web-canary", "b", "10.0.0.2", {"app": "web", "track": "canary"})]
    ident = IdentityResolver(inventory_from_objects(objs)).identity(WorkloadRef("Deployment", "ns", "web"))
    assert ident.selector is not None and ident.selector.to_dict() == {"matchLabels": {"app": "web", "track": "stable"}}


def test_workloads_with_identical_labels_are_one_label_class() -> None:
    """No selector tells a from b: both are one class, selected together, and the identity says
    which workloads were merged and why (DESIGN.md, "label class")."""
    objs = [kube.pod("ns", "a", "10.0.0.1", {"app": "same"}), kube.pod("ns", "b", "10.0.0.2", {"app": "same"})]
    ids = IdentityResolver(inventory_from_objects(objs))
    ident = ids.identity(WorkloadRef("Pod", "ns", "a"))
    assert ident.selector is not None and ident.selector.to_dict() == {"matchLabels": {"app": "same"}}
    assert ident.members == (WorkloadRef("Pod", "ns", "a"), WorkloadRef("Pod", "ns", "b"))
    assert ident.merged and "identical labels (app=same)" in ident.reason
    assert ids.identity(WorkloadRef("Pod", "ns", "b")).class_ref == WorkloadRef("Pod", "ns", "a")


def test_a_class_keeps_out_a_workload_with_more_labels_by_does_not_exist() -> None:
    """a and b carry app=same only; c carries app=same plus tier=edge: the class {a, b} is
    selected with tier DoesNotExist, so c's pods stay out of it."""
    objs = [kube.pod("ns", "a", "10.0.0.1", {"app": "same"}), kube.pod("ns", "b", "10.0.0.2", {"app": "same"}),
            kube.pod("ns", "c", "10.0.0.3", {"app": "same", "tier": "edge"})]
    ids = IdentityResolver(inventory_from_objects(objs))
    ident = ids.identity(WorkloadRef("Pod", "ns", "b"))
    assert ident.selector is not None and ident.selector.to_dict() == {
        "matchLabels": {"app": "same"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}
    assert [m.name for m in ident.members] == ["a", "b"]
    c = ids.identity(WorkloadRef("Pod", "ns", "c"))
    assert c.selector is not None and not c.merged


def test_a_workload_whose_labels_a_bigger_one_contains_gets_does_not_exist() -> None:
    """Only one workload per label set, but web's labels are a subset of web-admin's: web is
    exact with DoesNotExist on web-admin's extra key (DESIGN.md), not merged with it."""
    objs = [kube.pod("ns", "web", "10.0.0.1", {"app": "web"}),
            kube.pod("ns", "web-admin", "10.0.0.2", {"app": "web", "role": "admin"})]
    ident = IdentityResolver(inventory_from_objects(objs)).identity(WorkloadRef("Pod", "ns", "web"))
    assert ident.selector is not None and ident.selector.to_dict() == {
        "matchLabels": {"app": "web"}, "matchExpressions": [{"key": "role", "operator": "DoesNotExist"}]}
    assert not ident.merged


def test_a_pod_without_labels_gets_no_selector_rather_than_an_empty_one() -> None:
    objs = [kube.pod("ns", "bare", "10.0.0.1", {"pod-template-hash": "abc"})]
    ident = IdentityResolver(inventory_from_objects(objs)).identity(WorkloadRef("Pod", "ns", "bare"))
    assert ident.selector is None
    assert "no stable labels" in ident.problem


def test_the_volatile_list_is_configurable() -> None:
    objs = [kube.pod("ns", "a", "10.0.0.1", {"app": "a", "version": "v1"})]
    inv = inventory_from_objects(objs)
    ident = IdentityResolver(inv, volatile=("version",)).identity(WorkloadRef("Pod", "ns", "a"))
    assert ident.selector is not None and ident.selector.to_dict() == {"matchLabels": {"app": "a"}}
