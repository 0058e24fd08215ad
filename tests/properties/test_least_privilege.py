"""Least privilege, as a property over random clusters and traffic (hypothesis).

For any cluster and any set of observed connections, the generated policies, evaluated by the
policy engine (an implementation independent of synthesis):
1. allow every observed connection, and
2. deny every connection between known endpoints that was not observed, wherever one end is a
   workload of a namespace the policies cover (at workload granularity: a workload's pods are
   one peer; DNS over UDP also allows TCP on its port). Namespaces with no observed traffic
   get no policies, so nothing there is isolated.
"""

from __future__ import annotations

import itertools

import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from netpolgen.aggregate import aggregate_edges
from netpolgen.flows import normalize_flows
from netpolgen.inventory import inventory_from_objects
from netpolgen.policy import Engine, parse_policies
from netpolgen.resolve import resolve_flows
from netpolgen.synthesize import SynthesisOptions, synthesize
from tests import kube

NAMESPACES = ["alpha", "beta", "gamma"]
PORTS = [("TCP", 80), ("TCP", 5432), ("UDP", 53), ("TCP", 53), ("UDP", 9000), ("SCTP", 3868)]
EXTERNALS = ["203.0.113.7", "198.51.100.20", "2001:db8::9"]


@st.composite
def clusters(draw: st.DrawFn) -> dict:
    n_workloads = draw(st.integers(1, 5))
    workloads = []
    for i in range(n_workloads):
        ns = draw(st.sampled_from(NAMESPACES))
        replicas = draw(st.integers(1, 2))
        # Every workload shares "tier: web" with some others, so a selector on shared labels
        # alone would be too broad: the synthesizer must pick the distinguishing one.
        labels = {"app": f"w{i}", "tier": draw(st.sampled_from(["web", "db"]))}
        pods = [(f"10.1.{i}.{r + 1}", f"{r}") for r in range(replicas)]
        workloads.append({"ns": ns, "name": f"w{i}", "labels": labels, "pods": pods})
    endpoints = [("wl", i) for i in range(n_workloads)] + [("ext", ip) for ip in EXTERNALS]
    conns = draw(st.lists(
        st.tuples(st.sampled_from(endpoints), st.sampled_from(endpoints), st.sampled_from(PORTS), st.integers(0, 1)),
        min_size=1, max_size=12,
    ))
    conns = [c for c in conns if not (c[0][0] == "ext" and c[1][0] == "ext") and c[0] != c[1]]
    assume(conns)
    return {"workloads": workloads, "conns": conns}


def _objects(cluster: dict) -> list[dict]:
    objs = [kube.namespace(ns) for ns in NAMESPACES]
    for w in cluster["workloads"]:
        objs += kube.deployment(w["ns"], w["name"], w["labels"])
        objs += [kube.rs_pod(w["ns"], w["name"], suffix, ip, w["labels"]) for ip, suffix in w["pods"]]
    return objs


def _endpoint_ip(cluster: dict, ep: tuple, replica: int) -> str:
    if ep[0] == "ext":
        return ep[1]
    pods = cluster["workloads"][ep[1]]["pods"]
    return pods[replica % len(pods)][0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_generated_policies_allow_exactly_what_was_observed(cluster: dict) -> None:
    inv = inventory_from_objects(_objects(cluster))
    rows = []
    for n, (src, dst, (proto, port), replica) in enumerate(cluster["conns"]):
        rows.append({"src_ip": _endpoint_ip(cluster, src, replica), "src_port": 40000 + n,
                     "dst_ip": _endpoint_ip(cluster, dst, replica), "dst_port": port, "proto": proto,
                     "direction_known": True, "connections": 1, "packets": 1, "bytes": 60})
    flows = normalize_flows(pd.DataFrame(rows))
    resolved = resolve_flows(flows, inv)
    assert not (resolved.flows["src_kind"] == "unresolved").any()
    result = synthesize(aggregate_edges(resolved.flows), inv, SynthesisOptions(exclude_namespaces=()))
    assert result.problems == []
    engine = Engine(inv, parse_policies(result.policies))

    def who(ep: tuple) -> str:
        return ep[1] if ep[0] == "ext" else f"wl{ep[1]}"

    observed = {(who(s), who(d), proto, port) for s, d, (proto, port), _ in cluster["conns"]}
    for s, d, proto, port in list(observed):  # the DNS fallback twin counts as observed
        if port == 53:
            observed.add((s, d, "TCP" if proto == "UDP" else "UDP", port))

    def pod_endpoints(ep: tuple) -> list[str]:
        if ep[0] == "ext":
            return [ep[1]]
        w = cluster["workloads"][ep[1]]
        return [f"{w['ns']}/{p.key.split('/')[1]}" for p in inv.pods_of(inv.workload_of(inv.pods_at(w["pods"][0][0])[0]))]

    def covered(ep: tuple) -> bool:
        return ep[0] == "wl" and cluster["workloads"][ep[1]]["ns"] in result.namespaces

    endpoints = [("wl", i) for i in range(len(cluster["workloads"]))] + [("ext", ip) for ip in EXTERNALS]
    for s, d in itertools.permutations(endpoints, 2):
        if s[0] == "ext" and d[0] == "ext":
            continue
        for proto, port in PORTS:
            expected = (who(s), who(d), proto, port) in observed
            if not expected and not (covered(s) or covered(d)):
                continue  # neither end is isolated by the output: open, as before
            for sp in pod_endpoints(s):
                for dp in pod_endpoints(d):
                    verdict = engine.evaluate(sp, dp, port, proto)
                    assert verdict.allowed == expected, (sp, dp, proto, port, expected, result.policies)
    assert result.namespaces  # something was observed, so something is covered and checked
