"""Builders for Kubernetes objects as `kubectl get -o json` writes them, for tests.

Keeping these in one place lets every test describe a cluster in a few lines, and keeps the
objects realistic (owner chains, pod-template-hash, named ports) without hand-written JSON.
"""

from __future__ import annotations

import hashlib
from typing import Any


def _uid(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:8] + "-uid"


def namespace(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def deployment(ns: str, name: str, labels: dict[str, str], ports: list[tuple[str, int, str]] | None = None) -> list[dict]:
    """A Deployment and its ReplicaSet (hash derived from the name); pods come from ``pod``."""
    h = hashlib.sha1(name.encode()).hexdigest()[:10]
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "uid": _uid(ns, name, "deploy")},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": "c", "ports": _ports(ports)}]}}},
    }
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{name}-{h}", "namespace": ns, "uid": _uid(ns, name, "rs"),
                     "ownerReferences": [{"kind": "Deployment", "name": name, "uid": dep["metadata"]["uid"], "controller": True}]},
        "spec": {"selector": {"matchLabels": {**labels, "pod-template-hash": h}}},
    }
    return [dep, rs]


def _ports(ports: list[tuple[str, int, str]] | None) -> list[dict]:
    return [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in (ports or []) if True] if ports else []


def pod(ns: str, name: str, ip: str, labels: dict[str, str], owner: tuple[str, str] | None = None,
        ports: list[tuple[str, int, str]] | None = None, host_network: bool = False,
        node: str = "node-1", host_ip: str = "172.18.0.2", created: str | None = None,
        deleted: str | None = None, phase: str = "Running") -> dict:
    """A pod; ``owner`` is (kind, name) of its controller, e.g. ("ReplicaSet", "web-abc")."""
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": dict(labels), "uid": _uid(ns, name)}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": _uid(ns, owner[1]), "controller": True}]
    if created:
        meta["creationTimestamp"] = created
    if deleted:
        meta["deletionTimestamp"] = deleted
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "ports": _ports(ports)}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip}}


def rs_pod(ns: str, deploy: str, suffix: str, ip: str, labels: dict[str, str], **kw: Any) -> dict:
    """A pod of Deployment ``deploy`` (through its ReplicaSet, as ``deployment`` names it)."""
    h = hashlib.sha1(deploy.encode()).hexdigest()[:10]
    return pod(ns, f"{deploy}-{h}-{suffix}", ip, {**labels, "pod-template-hash": h},
               owner=("ReplicaSet", f"{deploy}-{h}"), **kw)


def service(ns: str, name: str, cluster_ip: str, selector: dict[str, str] | None,
            ports: list[tuple[int, int | str, str]], type_: str = "ClusterIP",
            node_ports: list[int] | None = None) -> dict:
    """``ports``: (port, targetPort, protocol)."""
    sp = []
    for i, (port, target, proto) in enumerate(ports):
        item: dict[str, Any] = {"name": f"p{i}", "port": port, "targetPort": target, "protocol": proto}
        if node_ports:
            item["nodePort"] = node_ports[i]
        sp.append(item)
    spec: dict[str, Any] = {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": sp, "type": type_}
    if selector is not None:
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def node(name: str, ip: str, pod_cidr: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def as_list(*groups: Any) -> dict:
    items: list[dict] = []
    for g in groups:
        items.extend(g if isinstance(g, list) else [g])
    return {"apiVersion": "v1", "kind": "List", "items": items}
