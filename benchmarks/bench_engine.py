"""Benchmark: evaluate 1,000,000 observed connections against 1,000 policies over 5,000 pods.

The cluster, the policies and the connections are generated deterministically (fixed seed):
50 namespaces x 10 workloads x 10 pods; one default-deny per namespace, one allow policy per
workload (ingress from a few workloads of its namespace and one elsewhere, on a numbered or a
named port; egress to its callees, DNS in kube-system and HTTPS outside 10/8), and 450 more
with matchExpressions, port ranges, ipBlocks with except and namespace selectors. Seven in ten
connections follow a workload's egress callees, the rest go to random pods or outside
addresses, some come in from outside.

Prints the time to compile the policy set and to run ``Engine.evaluate_flows`` (the target is
under 10 s on the project machine), and the share of connections allowed as a sanity figure.

    .venv/bin/python benchmarks/bench_engine.py [--connections N] [--pods-per-workload N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netpolgen.inventory import ContainerPort, Inventory, Namespace, OwnerRef, Pod  # noqa: E402
from netpolgen.policy import Engine, parse_policies  # noqa: E402

SEED = 20261126
N_NAMESPACES = 50
WORKLOADS_PER_NS = 10
TIERS = ("front", "back", "data")


def build_cluster(rng: np.random.Generator, pods_per_workload: int) -> tuple[Inventory, list[dict], list[tuple[int, int]]]:
    """(inventory, workloads as (namespace index, workload index)) with named ports whose
    numbers differ between workloads."""
    namespaces = {}
    pods: list[Pod] = []
    workloads = []
    for n in range(N_NAMESPACES):
        ns = f"ns{n:02d}"
        namespaces[ns] = Namespace(ns, {"kubernetes.io/metadata.name": ns, "team": f"t{n % 5}", "env": "prod" if n % 2 else "dev"})
        for w in range(WORKLOADS_PER_NS):
            workloads.append((n, w))
            http = 8000 + (w % 5)
            for i in range(pods_per_workload):
                pod_index = len(pods)
                ip = f"10.{(pod_index >> 16) & 255}.{(pod_index >> 8) & 255}.{pod_index & 255}"
                pods.append(Pod(
                    ns, f"w{w}-{i}", {"app": f"w{w}", "tier": TIERS[w % 3], "pod-template-hash": "abc"},
                    (ip,), f"192.168.{n}.{i % 4 + 1}",
                    ports=(ContainerPort(http, "TCP", "http"), ContainerPort(9090, "TCP", "metrics")),
                    owners=(OwnerRef("ReplicaSet", f"w{w}-abc", "", True),),
                ))
    namespaces["kube-system"] = Namespace("kube-system", {"kubernetes.io/metadata.name": "kube-system"})
    for i in range(2):
        pods.append(Pod("kube-system", f"coredns-{i}", {"k8s-app": "kube-dns"}, (f"10.250.0.{i + 1}",), "192.168.0.1",
                        ports=(ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp")),
                        owners=(OwnerRef("ReplicaSet", "coredns-abc", "", True),)))
    return Inventory(namespaces=namespaces, pods=pods), workloads


def build_policies(rng: np.random.Generator, callees: dict[tuple[int, int], list[tuple[int, int]]]) -> list[dict]:
    policies = []

    def np_(name, ns, spec):
        policies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": name, "namespace": ns}, "spec": spec})

    for n in range(N_NAMESPACES):
        np_("default-deny", f"ns{n:02d}", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    callers: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for src, dsts in callees.items():
        for d in dsts:
            callers.setdefault(d, []).append(src)
    for (n, w), dsts in sorted(callees.items()):
        ns = f"ns{n:02d}"
        ingress = []
        for (cn, cw) in callers.get((n, w), []):
            peer = {"podSelector": {"matchLabels": {"app": f"w{cw}"}}}
            if cn != n:
                peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": f"ns{cn:02d}"}}
            port = {"port": "http"} if (cw + w) % 2 else {"port": 8000 + (w % 5), "protocol": "TCP"}
            ingress.append({"from": [peer], "ports": [port]})
        ingress.append({"from": [{"namespaceSelector": {"matchLabels": {"team": "t0"}}}], "ports": [{"port": "metrics"}]})
        egress = [
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.0.0/16"]}}], "ports": [{"port": 443}]},
        ]
        for (dn, dw) in dsts:
            peer = {"podSelector": {"matchLabels": {"app": f"w{dw}"}}}
            if dn != n:
                peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": f"ns{dn:02d}"}}
            egress.append({"to": [peer], "ports": [{"port": 8000 + (dw % 5)}]})
        np_(f"w{w}", ns, {"podSelector": {"matchLabels": {"app": f"w{w}"}}, "policyTypes": ["Ingress", "Egress"],
                          "ingress": ingress, "egress": egress})
    for k in range(1000 - len(policies)):
        n = int(rng.integers(N_NAMESPACES))
        ns = f"ns{n:02d}"
        kind = k % 3
        if kind == 0:
            spec = {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": [TIERS[k % 3], TIERS[(k + 1) % 3]]}]},
                    "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
                                           "podSelector": {"matchLabels": {"tier": "front"}}}],
                                 "ports": [{"port": 9000, "endPort": 9100}]}]}
        elif kind == 1:
            a, b = int(rng.integers(1, 200)), int(rng.integers(0, 256))
            spec = {"podSelector": {"matchLabels": {"app": f"w{k % WORKLOADS_PER_NS}"}}, "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"ipBlock": {"cidr": f"{a}.{b}.0.0/16", "except": [f"{a}.{b}.{k % 256}.0/24"]}}],
                                 "ports": [{"port": "http"}]}]}
        else:
            spec = {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": f"t{k % 5}"}}}],
                                "ports": [{"port": 9090}, {"port": 7000, "endPort": 7010, "protocol": "UDP"}]}]}
        np_(f"extra-{k}", ns, spec)
    return policies


def build_connections(rng: np.random.Generator, inv: Inventory, workloads, callees, n: int, pods_per_workload: int) -> pd.DataFrame:
    pods = inv.pods
    keys = np.array([p.key for p in pods], dtype=object)
    ips = np.array([p.ips[0] for p in pods], dtype=object)
    http = np.array([p.ports[0].port for p in pods], dtype=np.int64)
    n_app = len(workloads) * pods_per_workload  # application pods come first
    wl_index = {w: i for i, w in enumerate(workloads)}
    callee_table = [[wl_index[d] for d in callees[w]] for w in workloads]
    max_callees = max(len(c) for c in callee_table)
    table = np.array([c + [c[0]] * (max_callees - len(c)) for c in callee_table], dtype=np.int64)

    src = rng.integers(0, n_app, n)
    src_wl = src // pods_per_workload
    kind = rng.random(n)
    dst_wl = table[src_wl, rng.integers(0, max_callees, n)]
    dst = dst_wl * pods_per_workload + rng.integers(0, pods_per_workload, n)
    random_dst = kind >= 0.7
    dst[random_dst] = rng.integers(0, len(pods), random_dst.sum())
    port = http[dst].copy()
    proto = np.full(n, "TCP", dtype=object)
    odd_port = rng.random(n) < 0.1
    port[odd_port] = rng.choice([9090, 443, 53, 7005, 9050], odd_port.sum())
    dns = dst >= n_app
    port[dns], proto[dns] = 53, "UDP"

    externals = np.array([f"{int(a)}.{int(b)}.{int(c)}.{int(d)}" for a, b, c, d in rng.integers(1, 255, (2000, 4))], dtype=object)
    src_key, src_ip = keys[src].copy(), ips[src].copy()
    dst_key, dst_ip = keys[dst].copy(), ips[dst].copy()
    outbound = kind >= 0.9
    dst_key[outbound], dst_ip[outbound] = "", externals[rng.integers(0, len(externals), outbound.sum())]
    port[outbound], proto[outbound] = 443, "TCP"
    inbound = (kind >= 0.85) & (kind < 0.9)
    src_key[inbound], src_ip[inbound] = "", externals[rng.integers(0, len(externals), inbound.sum())]
    return pd.DataFrame({"src_pod": src_key, "src_ip": src_ip, "dst_pod": dst_key, "dst_ip": dst_ip,
                         "dst_port": port, "proto": proto})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--pods-per-workload", type=int, default=10)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(SEED)

    t0 = time.perf_counter()
    inv, workloads = build_cluster(rng, args.pods_per_workload)
    callees = {w: [workloads[int(i)] for i in rng.choice(len(workloads), 3, replace=False)] for w in workloads}
    policies = parse_policies(build_policies(rng, callees))
    flows = build_connections(rng, inv, workloads, callees, args.connections, args.pods_per_workload)
    t1 = time.perf_counter()
    engine = Engine(inv, policies)
    t2 = time.perf_counter()
    result = engine.evaluate_flows(flows)
    t3 = time.perf_counter()

    print(f"pods: {len(inv.pods)}  policies: {len(policies)}  rules: {len(engine.rules())}  "
          f"pod classes: {engine.compiled.n_classes}  connections: {len(flows):,}")
    print(f"generate: {t1 - t0:.2f} s")
    print(f"compile (Engine): {t2 - t1:.2f} s")
    print(f"evaluate_flows: {t3 - t2:.2f} s  ({len(flows) / max(t3 - t2, 1e-9):,.0f} connections/s)")
    print(f"compile + evaluate: {t3 - t1:.2f} s")
    print(f"allowed: {result['allowed'].mean():.1%}  egress denied: {(~result['egress_allowed']).mean():.1%}  "
          f"ingress denied: {(~result['ingress_allowed']).mean():.1%}")


if __name__ == "__main__":
    main()
