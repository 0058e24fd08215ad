"""Hypothesis strategies for small random clusters, policy sets and connections.

The vocabulary is deliberately tiny (few labels, ports, CIDRs) so that random selectors often
match, rules often overlap, and the corner cases (named ports numbered differently per pod,
ipBlock excepts, hostNetwork pods, policyTypes defaulting) come up in every few examples.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from netpolgen.inventory import ContainerPort, Inventory, Namespace, OwnerRef, Pod
from tests.policy.reference import Reference, RefPod

NAMESPACES = ("a", "b", "c")
NODE_IPS = ("192.168.0.1", "192.168.0.2")
EXTERNAL_IPS = ("8.8.8.8", "10.0.0.200", "10.0.0.3", "172.16.5.4", "2001:db8::5", "2001:db9::1") + NODE_IPS
LABEL_VALUES = {"app": ("web", "db", "cache"), "tier": ("front", "back")}
NAMED_PORTS = (("http", "TCP", (8080, 8081)), ("dns", "UDP", (53,)), ("metrics", "TCP", (9090,)))
NUMBERS = (53, 80, 8080, 8081, 9090)
CIDRS = (
    ("10.0.0.0/24", ("10.0.0.0/28",)),
    ("10.0.0.0/8", ()),
    ("8.8.0.0/16", ()),
    ("0.0.0.0/0", ("10.0.0.0/8", "192.168.0.0/16")),
    ("192.168.0.1/32", ()),
    ("2001:db8::/32", ()),
)
PROBE_PORTS = (1, 52, 53, 54, 80, 8079, 8080, 8081, 8082, 9090, 65535)
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass
class World:
    pods: list[RefPod]
    ns_labels: dict[str, dict[str, str]]
    policies: list[dict]

    def inventory(self) -> Inventory:
        pods = [
            Pod(
                namespace=p.namespace, name=p.name, labels=dict(p.labels), ips=(p.ip,), host_ip=p.host_ip,
                host_network=p.host_network,
                ports=tuple(ContainerPort(num, proto, name) for name, proto, num in p.ports),
                # One workload per (namespace, app label), so workloads group several pods.
                owners=(OwnerRef("ReplicaSet", f"{p.labels.get('app', 'none')}-rs", "", True),),
            )
            for p in self.pods
        ]
        namespaces = {n: Namespace(n, dict(labels)) for n, labels in self.ns_labels.items()}
        return Inventory(namespaces=namespaces, pods=pods)

    def reference(self) -> Reference:
        return Reference(self.pods, self.ns_labels, self.policies)

    def endpoints(self) -> list[str]:
        return [p.key for p in self.pods] + list(EXTERNAL_IPS)


labels_st = st.dictionaries(st.sampled_from(sorted(LABEL_VALUES)), st.sampled_from(("web", "db", "cache", "front", "back")), max_size=2)


@st.composite
def pods_st(draw) -> list[RefPod]:
    n = draw(st.integers(2, 8))
    pods = []
    for i in range(n):
        host = draw(st.sampled_from(NODE_IPS))
        host_network = draw(st.booleans()) and draw(st.booleans())  # about one in four
        ports = []
        for name, proto, numbers in NAMED_PORTS:
            if draw(st.booleans()):
                ports.append((name, proto, draw(st.sampled_from(numbers))))
        pods.append(RefPod(
            namespace=draw(st.sampled_from(NAMESPACES)), name=f"p{i}",
            labels={k: v for k, v in draw(labels_st).items()},
            ip=host if host_network else f"10.1.0.{i + 1}", host_ip=host, ports=ports, host_network=host_network,
        ))
    return pods


@st.composite
def selector_st(draw, allow_empty: bool = True, seen: tuple[tuple[str, str], ...] = ()) -> dict:
    """A selector; ``seen`` (labels pods really have) makes matchLabels likely to match."""
    kind = draw(st.sampled_from(("empty", "empty", "labels", "labels", "expr", "both") if allow_empty else ("labels", "expr", "both")))
    sel: dict = {}
    if kind in ("labels", "both"):
        if seen and draw(st.integers(0, 3)):
            key, value = draw(st.sampled_from(seen))
            sel["matchLabels"] = {key: value}
        else:
            key = draw(st.sampled_from(sorted(LABEL_VALUES)))
            sel["matchLabels"] = {key: draw(st.sampled_from(LABEL_VALUES[key]))}
    if kind in ("expr", "both"):
        key = draw(st.sampled_from(sorted(LABEL_VALUES) + ["team"]))
        op = draw(st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")))
        expr = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = draw(st.lists(st.sampled_from(("web", "db", "cache", "front", "back", "x", "y")), min_size=1, max_size=2, unique=True))
        sel["matchExpressions"] = [expr]
    return sel


@st.composite
def peer_st(draw, seen: tuple[tuple[str, str], ...] = ()) -> dict:
    kind = draw(st.sampled_from(("pod", "ns", "both", "ip")))
    if kind == "ip":
        cidr, excepts = draw(st.sampled_from(CIDRS))
        block = {"cidr": cidr}
        if excepts and draw(st.booleans()):
            block["except"] = list(excepts)
        return {"ipBlock": block}
    peer = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = draw(selector_st(seen=seen))
    if kind in ("ns", "both"):
        peer["namespaceSelector"] = draw(selector_st())
    return peer


@st.composite
def port_st(draw) -> dict:
    item: dict = {}
    proto = draw(st.sampled_from((None, "TCP", "UDP", "SCTP")))
    if proto:
        item["protocol"] = proto
    kind = draw(st.sampled_from(("none", "number", "range", "named")))
    if kind == "number":
        item["port"] = draw(st.sampled_from(NUMBERS))
    elif kind == "range":
        start = draw(st.sampled_from(NUMBERS))
        item["port"] = start
        item["endPort"] = start + draw(st.sampled_from((0, 1, 30)))
    elif kind == "named":
        item["port"] = draw(st.sampled_from([n for n, _, _ in NAMED_PORTS]))
    return item


@st.composite
def rule_st(draw, direction: str, seen: tuple[tuple[str, str], ...] = ()) -> dict:
    key = "from" if direction == "ingress" else "to"
    rule: dict = {}
    peers = draw(st.sampled_from(("absent", "empty", "some", "some")))
    if peers == "empty":
        rule[key] = []
    elif peers == "some":
        rule[key] = draw(st.lists(peer_st(seen), min_size=1, max_size=2))
    if draw(st.booleans()):
        rule["ports"] = draw(st.lists(port_st(), min_size=1, max_size=2))
    return rule


@st.composite
def policy_st(draw, index: int, namespaces: tuple[str, ...] = NAMESPACES, seen: tuple[tuple[str, str], ...] = ()) -> dict:
    spec: dict = {"podSelector": draw(selector_st(seen=seen))}
    types = draw(st.sampled_from((None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    for direction in ("ingress", "egress"):
        shape = draw(st.sampled_from(("absent", "empty", "rules")))
        if shape == "empty":
            spec[direction] = []
        elif shape == "rules":
            spec[direction] = draw(st.lists(rule_st(direction, seen), min_size=1, max_size=3))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"np{index}", "namespace": draw(st.sampled_from(namespaces))},
        "spec": spec,
    }


@st.composite
def policies_st(draw, pods: list[RefPod] | None = None, max_size: int = 5) -> list[dict]:
    """Policies mostly in the pods' namespaces, with selectors built from their labels."""
    namespaces = tuple(sorted({p.namespace for p in pods})) if pods else NAMESPACES
    seen = tuple(sorted({kv for p in pods or [] for kv in p.labels.items()}))
    n = draw(st.integers(0, max_size)) if draw(st.integers(0, 5)) == 0 else draw(st.integers(1, max_size))
    return [draw(policy_st(i, namespaces if draw(st.integers(0, 4)) else NAMESPACES, seen)) for i in range(n)]


@st.composite
def world_st(draw) -> World:
    ns_labels = {n: {"kubernetes.io/metadata.name": n, **({"team": draw(st.sampled_from(("x", "y")))} if draw(st.booleans()) else {})}
                 for n in NAMESPACES}
    pods = draw(pods_st())
    return World(pods, ns_labels, draw(policies_st(pods)))


def connections_st(world: World):
    """Mostly pod to pod; addresses (external, nodes) on either end now and then."""
    pods = [p.key for p in world.pods]
    end = st.one_of(st.sampled_from(pods), st.sampled_from(pods), st.sampled_from(pods), st.sampled_from(EXTERNAL_IPS))
    # Half the probes hit a port some pod declares (that is where named ports matter).
    declared = sorted({(num, proto) for p in world.pods for _, proto, num in p.ports})
    any_port = st.tuples(st.sampled_from(PROBE_PORTS), st.sampled_from(PROTOCOLS))
    port = st.one_of(any_port, st.sampled_from(declared)) if declared else any_port
    return st.lists(
        st.builds(lambda s, d, pp: (s, d, pp[0], pp[1]), end, end, port),
        min_size=10, max_size=40,
    )
