"""A small but complete cluster and the traffic seen in it, shared by the core-stage tests.

Namespaces shop, data, monitoring and kube-system on one node (172.18.0.2, pods 10.244.1.0/24):
frontend (2 pods) behind a NodePort Service; api and api-canary behind one Service whose
targetPort is the *named* port ``http`` (5000 on api, 5001 on the canary); redis; a postgres
StatefulSet in ``data``; coredns behind kube-dns; prometheus scraping a hostNetwork
node-exporter. Every row of ``FLOWS`` is a connection a real cluster would show.
"""

from __future__ import annotations

import pandas as pd

from netpolgen.flows import normalize_flows
from netpolgen.inventory import Inventory, inventory_from_objects
from tests import kube

NODE_IP = "172.18.0.2"


def objects() -> list[dict]:
    objs: list[dict] = [
        kube.namespace("shop"), kube.namespace("data"), kube.namespace("monitoring"), kube.namespace("kube-system"),
        kube.node("node-1", NODE_IP, "10.244.1.0/24"),
    ]
    objs += kube.deployment("shop", "frontend", {"app": "frontend"}, [("http", 8080, "TCP")])
    objs += [kube.rs_pod("shop", "frontend", "a1", "10.244.1.10", {"app": "frontend"}, ports=[("http", 8080, "TCP")]),
             kube.rs_pod("shop", "frontend", "b2", "10.244.1.11", {"app": "frontend"}, ports=[("http", 8080, "TCP")])]
    objs += kube.deployment("shop", "api", {"app": "api", "track": "stable"}, [("http", 5000, "TCP")])
    objs += [kube.rs_pod("shop", "api", "c3", "10.244.1.20", {"app": "api", "track": "stable"}, ports=[("http", 5000, "TCP")])]
    objs += kube.deployment("shop", "api-canary", {"app": "api", "track": "canary"}, [("http", 5001, "TCP")])
    objs += [kube.rs_pod("shop", "api-canary", "d4", "10.244.1.21", {"app": "api", "track": "canary"}, ports=[("http", 5001, "TCP")])]
    objs += kube.deployment("shop", "redis", {"app": "redis"}, [("redis", 6379, "TCP")])
    objs += [kube.rs_pod("shop", "redis", "e5", "10.244.1.30", {"app": "redis"}, ports=[("redis", 6379, "TCP")])]
    objs += [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "postgres", "namespace": "data"},
         "spec": {"selector": {"matchLabels": {"app": "postgres"}},
                  "template": {"metadata": {"labels": {"app": "postgres"}}, "spec": {"containers": [{"name": "pg"}]}}}},
        kube.pod("data", "postgres-0", "10.244.1.40",
                 {"app": "postgres", "controller-revision-hash": "postgres-7d9", "statefulset.kubernetes.io/pod-name": "postgres-0"},
                 owner=("StatefulSet", "postgres"), ports=[("pg", 5432, "TCP")]),
    ]
    objs += kube.deployment("kube-system", "coredns", {"k8s-app": "kube-dns"}, [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")])
    objs += [kube.rs_pod("kube-system", "coredns", "f6", "10.244.1.2", {"k8s-app": "kube-dns"},
                         ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")])]
    objs += kube.deployment("monitoring", "prometheus", {"app": "prometheus"}, [("web", 9090, "TCP")])
    objs += [kube.rs_pod("monitoring", "prometheus", "g7", "10.244.1.50", {"app": "prometheus"}, ports=[("web", 9090, "TCP")])]
    objs += [kube.pod("monitoring", "node-exporter-x1", NODE_IP, {"app": "node-exporter", "pod-template-generation": "1"},
                      owner=("DaemonSet", "node-exporter"), ports=[("metrics", 9100, "TCP")], host_network=True)]
    objs += [
        kube.service("shop", "frontend", "10.96.0.50", {"app": "frontend"}, [(80, 8080, "TCP")], "NodePort", [30080]),
        kube.service("shop", "api", "10.96.0.20", {"app": "api"}, [(80, "http", "TCP")]),
        kube.service("shop", "redis", "10.96.0.30", {"app": "redis"}, [(6379, 6379, "TCP")]),
        kube.service("data", "postgres", "10.96.0.40", {"app": "postgres"}, [(5432, 5432, "TCP")]),
        kube.service("kube-system", "kube-dns", "10.96.0.10", {"k8s-app": "kube-dns"}, [(53, 53, "UDP"), (53, 53, "TCP")]),
    ]
    return objs


def inventory() -> Inventory:
    return inventory_from_objects(objects())


# (src_ip, src_port, dst_ip, dst_port, proto, direction_known)
CONNECTIONS = [
    ("198.51.100.20", 50000, NODE_IP, 30080, "TCP", True),  # outside → frontend NodePort
    ("10.244.1.10", 40000, "10.96.0.20", 80, "TCP", True),  # frontend → api Service
    ("10.244.1.11", 40001, "10.96.0.20", 80, "TCP", True),
    ("10.244.1.20", 41000, "10.96.0.10", 53, "UDP", False),  # api → kube-dns (UDP, no handshake)
    ("10.244.1.20", 41001, "10.96.0.30", 6379, "TCP", True),  # api → redis Service
    ("10.244.1.20", 41002, "10.244.1.40", 5432, "TCP", True),  # api → postgres pod IP, other ns
    ("10.244.1.20", 41003, "203.0.113.7", 443, "TCP", True),  # api → external
    ("10.244.1.50", 42000, NODE_IP, 9100, "TCP", True),  # prometheus → hostNetwork exporter
    ("10.244.1.50", 42001, "10.244.1.20", 5000, "TCP", True),  # prometheus → api pod
    # Seen without its handshake and provisionally the wrong way round (6379 < 43000 would not
    # flip it, so the source's port rule left redis as the client); the inventory knows redis
    # listens on 6379 and must turn it round.
    ("10.244.1.30", 6379, "10.244.1.21", 43000, "TCP", False),
    ("10.244.1.99", 44000, "10.244.1.20", 5000, "TCP", True),  # unknown pod-range address
]


def flows() -> pd.DataFrame:
    rows = [
        {"src_ip": s, "src_port": sp, "dst_ip": d, "dst_port": dp, "proto": pr, "direction_known": known,
         "packets": 10, "bytes": 1000, "connections": 1, "first_seen": 1_700_000_000.0 + i,
         "last_seen": 1_700_000_010.0 + i, "verdict": "unknown", "source": "shop.test"}
        for i, (s, sp, d, dp, pr, known) in enumerate(CONNECTIONS)
    ]
    return normalize_flows(pd.DataFrame(rows))
