"""The NetworkPolicy and the CiliumNetworkPolicy rendering of the same rule model allow the same
connections (hypothesis): over random clusters and traffic (the strategy of
test_least_privilege), every ordered pair of pods, and pod/outside-address pairs, on every port
the strategy uses, one engine evaluating each rendering gives the same verdict. Cilium's own
semantics enter through ``netpolgen.policy.cilium``, whose conformance tests cite the docs."""

from __future__ import annotations

import itertools

import pandas as pd
from hypothesis import HealthCheck, given, settings

from netpolgen.aggregate import aggregate_edges
from netpolgen.flows import normalize_flows
from netpolgen.inventory import inventory_from_objects
from netpolgen.kinds import render_kind
from netpolgen.policy import Engine, parse_policies
from netpolgen.policy.kinds import policy_engine
from netpolgen.resolve import resolve_flows
from netpolgen.selfcheck import cilium_context
from netpolgen.synthesize import SynthesisOptions, build_model
from tests.properties.test_least_privilege import EXTERNALS, PORTS, _endpoint_ip, _objects, clusters


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_networkpolicy_and_cilium_renderings_allow_the_same_connections(cluster: dict) -> None:
    inv = inventory_from_objects(_objects(cluster))
    rows = [{"src_ip": _endpoint_ip(cluster, s, r), "src_port": 40000 + n, "dst_ip": _endpoint_ip(cluster, d, r),
             "dst_port": port, "proto": proto, "direction_known": True, "connections": 1, "packets": 1, "bytes": 60}
            for n, (s, d, (proto, port), r) in enumerate(cluster["conns"])]
    resolved = resolve_flows(normalize_flows(pd.DataFrame(rows)), inv)
    edges = aggregate_edges(resolved.flows)
    model, _ = build_model(edges, inv, SynthesisOptions(exclude_namespaces=()))
    np_engine = Engine(inv, parse_policies(render_kind("networkpolicy", model)))
    cilium_docs = render_kind("cilium", model)
    assert {d["kind"] for d in cilium_docs} <= {"CiliumNetworkPolicy"}
    cilium_engine = policy_engine(inv, cilium_docs, cilium_context(edges, inv, {}))

    pods = sorted(p.key for p in inv.pods if not p.from_template)
    ends = pods + EXTERNALS
    questions = [(s, d, port, proto) for s, d in itertools.permutations(ends, 2)
                 if "/" in s or "/" in d for proto, port in PORTS]
    frame = pd.DataFrame([{"src_pod": s if "/" in s else "", "src_ip": "" if "/" in s else s,
                           "dst_pod": d if "/" in d else "", "dst_ip": "" if "/" in d else d,
                           "dst_port": port, "proto": proto} for s, d, port, proto in questions])
    a = np_engine.evaluate_flows(frame)["allowed"].tolist()
    b = cilium_engine.evaluate_flows(frame)["allowed"].tolist()
    differ = [q for q, x, y in zip(questions, a, b, strict=True) if x != y]
    assert differ == [], (differ[:5], cilium_docs)
    assert any(a)  # something observed is allowed: the comparison is not between two empty sets
