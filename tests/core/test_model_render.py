"""The rule model and its NetworkPolicy rendering.

- A hand-built model with every peer kind: those NetworkPolicy can name render exactly
  (checked against the Kubernetes schema), those it cannot are refused with a clear error.
- A property (hypothesis): for random models over a small random cluster, the rendered
  NetworkPolicies, evaluated by the policy engine, allow exactly the model's connections
  between pods (every rule's peer x port, both directions required), and nothing else.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.errors import OutputError
from netpolgen.inventory import WorkloadRef, inventory_from_objects
from netpolgen.model import (
    CidrPeer,
    DnsNamePeer,
    EntityPeer,
    Evidence,
    NamespacePeer,
    NodePeer,
    PolicyModel,
    PortSpec,
    Rule,
    WorkloadPeer,
    WorkloadRules,
)
from netpolgen.policy import Engine, parse_policies
from netpolgen.renderers.networkpolicy import NetworkPolicyRenderer
from netpolgen.selectors import LabelSelector
from tests import kube
from tests.schema import assert_valid_networkpolicy


def _sel(**labels: str) -> LabelSelector:
    return LabelSelector.from_labels(labels)


def test_a_hand_built_model_with_every_peer_kind_netpolicy_can_name() -> None:
    web = WorkloadRef("Deployment", "shop", "web")
    rules = WorkloadRules(
        subject=web, selector=_sel(app="web"),
        ingress=(
            Rule(WorkloadPeer("shop", _sel(app="lb"), "shop/lb[Deployment]"), PortSpec("TCP", 8080), Evidence(3, 1.0, 2.0)),
            Rule(WorkloadPeer("monitoring", _sel(app="prom"), "monitoring/prom[Deployment]"), PortSpec("TCP", 9090)),
            Rule(NamespacePeer("ops"), PortSpec("TCP", 9090)),
            Rule(NodePeer("172.18.0.2"), PortSpec("TCP", 8080)),
        ),
        egress=(
            Rule(CidrPeer("203.0.113.0/24"), PortSpec("TCP", 443)),
            Rule(NodePeer("fd00::2"), PortSpec("UDP", 30000, 30010)),
        ),
        dns_names=("203.0.113.7=api.example",),
    )
    docs = NetworkPolicyRenderer().render(PolicyModel(("shop",), (rules,)))
    deny, allow = docs
    assert deny["metadata"]["name"] == "default-deny" and deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert allow["metadata"]["name"] == "allow-web"
    assert allow["metadata"]["annotations"] == {"netpolgen.io/workload": "shop/web[Deployment]",
                                                "netpolgen.io/egress-dns-names": "203.0.113.7=api.example"}
    assert allow["spec"]["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"podSelector": {"matchLabels": {"app": "lb"}}}],
         "ports": [{"port": 8080, "protocol": "TCP"}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                   "podSelector": {"matchLabels": {"app": "prom"}}},
                  {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}],
         "ports": [{"port": 9090, "protocol": "TCP"}]},
    ]
    assert allow["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 443, "protocol": "TCP"}]},
        {"to": [{"ipBlock": {"cidr": "fd00::2/128"}}], "ports": [{"port": 30000, "protocol": "UDP", "endPort": 30010}]},
    ]
    for doc in docs:
        assert_valid_networkpolicy(doc)


@pytest.mark.parametrize("peer", [DnsNamePeer("api.example.com"), EntityPeer("world")])
def test_peers_networkpolicy_cannot_name_are_refused_not_dropped(peer) -> None:
    rules = WorkloadRules(WorkloadRef("Deployment", "shop", "web"), _sel(app="web"), egress=(Rule(peer, PortSpec("TCP", 443)),))
    assert type(peer) not in NetworkPolicyRenderer.peer_kinds
    with pytest.raises(OutputError, match="cannot name the"):
        NetworkPolicyRenderer().render(PolicyModel(("shop",), (rules,)))


# ----- property: rendered policies allow exactly the model ------------------------------------

NAMESPACES = ("a", "b")
PORTS = (PortSpec("TCP", 80), PortSpec("TCP", 443), PortSpec("UDP", 53), PortSpec("SCTP", 9))
WORKLOADS = [(ns, f"w{i}") for ns in NAMESPACES for i in range(3)]


def _cluster():
    objs = [kube.namespace(ns) for ns in NAMESPACES]
    for n, (ns, name) in enumerate(WORKLOADS):
        objs.append(kube.pod(ns, name, f"10.9.{n}.1", {"app": name, "tier": "x"}))
    return inventory_from_objects([kube.as_list(*objs)])


INVENTORY = _cluster()


@st.composite
def models(draw: st.DrawFn) -> PolicyModel:
    in_scope = draw(st.sets(st.sampled_from(NAMESPACES), min_size=1))
    subjects = draw(st.sets(st.sampled_from([w for w in WORKLOADS if w[0] in in_scope]), min_size=1))
    out = []
    for ns, name in sorted(subjects):
        def rules() -> tuple[Rule, ...]:
            picked = draw(st.lists(st.tuples(st.sampled_from(WORKLOADS), st.sampled_from(PORTS)), max_size=5))
            return tuple(Rule(WorkloadPeer(pns, _sel(app=pname), f"{pns}/{pname}[Pod]"), port) for (pns, pname), port in picked)
        out.append(WorkloadRules(WorkloadRef("Pod", ns, name), _sel(app=name), ingress=rules(), egress=rules()))
    return PolicyModel(tuple(sorted(in_scope)), tuple(out))


def _allowed_by_model(model: PolicyModel, src: tuple[str, str], dst: tuple[str, str], port: PortSpec) -> bool:
    """What the model means: an isolated direction allows only its rules' peers and ports."""
    by_subject = {(w.subject.namespace, w.subject.name): w for w in model.workloads}

    def side(owner: tuple[str, str], other: tuple[str, str], direction: str) -> bool:
        if owner[0] not in model.namespaces:
            return True  # no policy selects it: not isolated
        w = by_subject.get(owner)
        rules = () if w is None else (w.ingress if direction == "ingress" else w.egress)
        return any(r.port == port and (r.peer.namespace, dict(r.peer.selector.match_labels)["app"]) == other for r in rules)

    return side(src, dst, "egress") and side(dst, src, "ingress")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models())
def test_rendered_networkpolicies_allow_exactly_the_model(model: PolicyModel) -> None:
    engine = Engine(INVENTORY, parse_policies(NetworkPolicyRenderer().render(model)))
    for src in WORKLOADS:
        for dst in WORKLOADS:
            if src == dst:
                continue
            for port in PORTS:
                got = engine.evaluate(f"{src[0]}/{src[1]}", f"{dst[0]}/{dst[1]}", port.port, port.protocol).allowed
                assert got == _allowed_by_model(model, src, dst, port), (src, dst, port)


def test_every_renderer_writes_or_refuses_each_peer_kind_of_the_model() -> None:
    """A renderer's peer_kinds are peer kinds of the model, and a peer kind it does not list is
    refused with an OutputError, never dropped silently."""
    from netpolgen.model import PEER_KINDS

    samples = {WorkloadPeer: WorkloadPeer("shop", _sel(app="lb"), "shop/lb[Deployment]"), NamespacePeer: NamespacePeer("ops"),
               NodePeer: NodePeer("172.18.0.2"), CidrPeer: CidrPeer("203.0.113.0/24"),
               DnsNamePeer: DnsNamePeer("api.example.com"), EntityPeer: EntityPeer("world")}
    assert set(samples) == set(PEER_KINDS)
    renderer = NetworkPolicyRenderer()
    assert set(renderer.peer_kinds) <= set(PEER_KINDS)
    for kind, peer in samples.items():
        model = PolicyModel(("shop",), (WorkloadRules(WorkloadRef("Deployment", "shop", "web"), _sel(app="web"),
                                                      egress=(Rule(peer, PortSpec("TCP", 443)),)),))
        if kind in renderer.peer_kinds:
            assert renderer.render(model)[1]["spec"]["egress"][0]["to"]
        else:
            with pytest.raises(OutputError):
                renderer.render(model)
