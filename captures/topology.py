"""The demo cluster, as data: one node, its pods, Services, DNS, and the peers outside it.

``record_demo.py`` builds network namespaces from this description, runs real processes in
them, records the traffic, and writes ``demo-inventory.json`` and ``expected-edges.tsv`` from
the same objects, so the capture, the inventory and the ground truth cannot drift apart.

Everything here is pure data plus small pure functions (names, hashes, edges); no I/O. All
addresses are private (RFC 1918), link-local or documentation ranges (RFC 5737), and they only
ever exist inside namespaces the recorder creates.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

CLUSTER_DOMAIN = "cluster.local"
CLUSTER_POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
# Calico's scheme: every pod routes to a link-local gateway that the node answers by proxy ARP.
POD_GATEWAY = "169.254.1.1"
CALI_MAC = "ee:ee:ee:ee:ee:ee"
KUBERNETES_VERSION = "v1.30.4"

# Kubernetes' rand.SafeEncodeString alphabet: what pod-template-hash and name suffixes use.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Port:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Call:
    """One outbound request a program makes for every request it handles (or, for the
    outside client, once per iteration). ``host`` is a DNS name, looked up through the pod's
    real resolver (``/etc/resolv.conf`` → kube-dns), or a literal IP."""

    protocol: str  # http | redis | postgres | tls
    host: str
    port: int

    def arg(self) -> str:
        return f"{self.protocol}:{self.host}:{self.port}"


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    kind: str  # Deployment | StatefulSet
    pod_ips: tuple[str, ...]
    selector: dict[str, str]
    labels: dict[str, str]  # pod template labels; include the selector
    container: str
    image: str
    ports: tuple[Port, ...]
    program: str  # app | redis | postgres | dnsmasq
    calls: tuple[Call, ...] = ()
    # glibc resolver options written into the pod's resolv.conf (pod spec dnsConfig.options).
    dns_options: tuple[str, ...] = ()
    command: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ref(self) -> str:
        """The workload as netpolgen names it: ``namespace/name[Kind]``."""
        return f"{self.namespace}/{self.name}[{self.kind}]"

    @property
    def pod_template_hash(self) -> str:
        return safe_hash(f"template/{self.key}", 10)

    def pod_names(self) -> tuple[str, ...]:
        if self.kind == "StatefulSet":
            return tuple(f"{self.name}-{i}" for i in range(len(self.pod_ips)))
        return tuple(
            f"{self.name}-{self.pod_template_hash}-{safe_hash(f'pod/{self.key}/{i}', 5)}"
            for i in range(len(self.pod_ips))
        )


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str = "TCP"
    node_port: int = 0


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    selector: dict[str, str] | None
    type: str = "ClusterIP"
    external_traffic_policy: str = ""  # only for NodePort/LoadBalancer
    labels: dict[str, str] = field(default_factory=dict)
    # For a Service without a selector: the endpoints the cluster keeps for it by hand.
    manual_endpoints: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def dns_name(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"


@dataclass(frozen=True)
class Node:
    name: str
    netns: str
    ip: str
    prefix: int
    gateway: str  # the router's address on the node's uplink (inside npg-wan)
    pod_cidr: str
    uplink: str = "eth0"


@dataclass(frozen=True)
class External:
    """A host outside the cluster: a netns behind the router, never a real address."""

    name: str
    netns: str
    ip: str
    prefix: int
    gateway: str
    program: str  # client | tls-server
    calls: tuple[Call, ...] = ()
    listen_port: int = 0
    tls_name: str = ""


NODE = Node(
    name="worker-1",
    netns="npg-node",
    ip="172.31.0.10",
    prefix=24,
    gateway="172.31.0.1",
    pod_cidr="10.244.1.0/24",
)

# The router joining the node's uplink to the outside hosts. It has no default route: the
# whole topology is an island, nothing can leave it.
ROUTER_NETNS = "npg-wan"

NAMESPACES: dict[str, dict[str, str]] = {
    "data": {"team": "data"},
    "default": {},
    "kube-node-lease": {},
    "kube-public": {},
    "kube-system": {},
    "shop": {"team": "shop"},
}

KUBE_DNS_IP = "10.96.0.10"
NODE_PORT_FRONTEND = 30080
EXTERNAL_PAYMENTS_IP = "203.0.113.7"
EXTERNAL_PAYMENTS_NAME = "payments.example"  # looked up through kube-dns, like any outside API
OUTSIDE_CLIENT_IP = "198.51.100.20"

# Labels shared by every shop workload: a selector built from them would select all of them.
_SHOP = {"app.kubernetes.io/part-of": "shop"}

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        namespace="kube-system",
        name="coredns",
        kind="Deployment",
        pod_ips=("10.244.1.5",),
        selector={"k8s-app": "kube-dns"},
        labels={"k8s-app": "kube-dns"},
        container="coredns",
        # dnsmasq answers in place of CoreDNS; the image names what a real cluster would run.
        image="registry.k8s.io/coredns/coredns:v1.11.1",
        ports=(Port("dns", 53, "UDP"), Port("dns-tcp", 53, "TCP")),
        program="dnsmasq",
    ),
    Workload(
        namespace="shop",
        name="frontend",
        kind="Deployment",
        pod_ips=("10.244.1.11", "10.244.1.12"),
        selector={"app": "frontend"},
        labels={"app": "frontend", "tier": "web", **_SHOP},
        container="frontend",
        image="registry.example/shop/frontend:1.4.2",
        ports=(Port("http", 8080),),
        program="app",
        # "api" is a short name: the search list makes it api.shop.svc.cluster.local.
        calls=(Call("http", "api", 80),),
        # The usual workaround for the conntrack race on parallel A/AAAA lookups over UDP:
        # glibc then asks kube-dns over TCP.
        dns_options=("use-vc",),
    ),
    Workload(
        namespace="shop",
        name="api",
        kind="Deployment",
        pod_ips=("10.244.1.21",),
        selector={"app": "api"},
        labels={"app": "api", "tier": "backend", **_SHOP},
        container="api",
        image="registry.example/shop/api:2.0.1",
        ports=(Port("http", 5000),),
        program="app",
        calls=(
            Call("redis", f"redis.shop.svc.{CLUSTER_DOMAIN}", 6379),
            Call("postgres", f"postgres.data.svc.{CLUSTER_DOMAIN}", 5432),
            Call("tls", EXTERNAL_PAYMENTS_NAME, 443),
        ),
    ),
    Workload(
        namespace="shop",
        name="redis",
        kind="Deployment",
        pod_ips=("10.244.1.31",),
        selector={"app": "redis"},
        labels={"app": "redis", "tier": "cache", **_SHOP},
        container="redis",
        image="docker.io/library/redis:7.0.15",
        ports=(Port("redis", 6379),),
        program="redis",
    ),
    Workload(
        namespace="data",
        name="postgres",
        kind="StatefulSet",
        pod_ips=("10.244.1.41",),
        selector={"app": "postgres"},
        labels={"app": "postgres"},
        container="postgres",
        image="docker.io/library/postgres:15.18",
        ports=(Port("postgresql", 5432),),
        program="postgres",
    ),
)

SERVICES: tuple[Service, ...] = (
    Service(
        namespace="default",
        name="kubernetes",
        cluster_ip="10.96.0.1",
        ports=(ServicePort("https", 443, 6443),),
        selector=None,
        labels={"component": "apiserver", "provider": "kubernetes"},
        manual_endpoints=((NODE.ip, 6443),),
    ),
    Service(
        namespace="kube-system",
        name="kube-dns",
        cluster_ip=KUBE_DNS_IP,
        ports=(ServicePort("dns", 53, 53, "UDP"), ServicePort("dns-tcp", 53, 53, "TCP")),
        selector={"k8s-app": "kube-dns"},
        labels={"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS"},
    ),
    Service(
        namespace="shop",
        name="frontend",
        cluster_ip="10.96.120.15",
        ports=(ServicePort("http", 80, 8080, node_port=NODE_PORT_FRONTEND),),
        selector={"app": "frontend"},
        type="NodePort",
        # Local keeps the client's source address (no SNAT to the node), as the policy needs.
        external_traffic_policy="Local",
        labels={"app": "frontend"},
    ),
    Service(
        namespace="shop",
        name="api",
        cluster_ip="10.96.45.200",
        ports=(ServicePort("http", 80, "http"),),
        selector={"app": "api"},
        labels={"app": "api"},
    ),
    Service(
        namespace="shop",
        name="redis",
        cluster_ip="10.96.200.7",
        ports=(ServicePort("redis", 6379, 6379),),
        selector={"app": "redis"},
        labels={"app": "redis"},
    ),
    Service(
        namespace="data",
        name="postgres",
        cluster_ip="10.96.33.5",
        ports=(ServicePort("postgresql", 5432, "postgresql"),),
        selector={"app": "postgres"},
        labels={"app": "postgres"},
    ),
)

REQUESTS = 20  # how many requests the outside client sends

EXTERNALS: tuple[External, ...] = (
    External(
        name="outside-client",
        netns="npg-outside",
        ip=OUTSIDE_CLIENT_IP,
        prefix=24,
        gateway="198.51.100.1",
        program="client",
        calls=(Call("http", NODE.ip, NODE_PORT_FRONTEND),),
    ),
    External(
        name="payments",
        netns="npg-ext",
        ip=EXTERNAL_PAYMENTS_IP,
        prefix=24,
        gateway="203.0.113.1",
        program="tls-server",
        listen_port=443,
        tls_name=EXTERNAL_PAYMENTS_NAME,
    ),
)


# --- derived names -------------------------------------------------------------------------

def safe_hash(text: str, length: int) -> str:
    """A deterministic string in Kubernetes' name-suffix alphabet."""
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    out = []
    for _ in range(length):
        digest, i = divmod(digest, len(_SAFE_ALPHABET))
        out.append(_SAFE_ALPHABET[i])
    return "".join(out)


@dataclass(frozen=True)
class PodInstance:
    workload: Workload
    index: int
    name: str
    ip: str

    @property
    def namespace(self) -> str:
        return self.workload.namespace

    @property
    def netns(self) -> str:
        return f"npg-{self.namespace}-{self.name}"

    @property
    def host_veth(self) -> str:
        """Calico's interface name: ``cali`` plus 11 hex digits of a hash of the endpoint."""
        return "cali" + hashlib.sha1(f"{self.namespace}.{self.name}".encode()).hexdigest()[:11]


def pods() -> tuple[PodInstance, ...]:
    out = []
    for w in WORKLOADS:
        for i, (name, ip) in enumerate(zip(w.pod_names(), w.pod_ips)):
            out.append(PodInstance(w, i, name, ip))
    return tuple(out)


def workload_for_selector(namespace: str, selector: dict[str, str]) -> Workload:
    matches = [w for w in WORKLOADS if w.namespace == namespace
               and all(w.labels.get(k) == v for k, v in selector.items())]
    if len(matches) != 1:
        raise ValueError(f"selector {selector} in {namespace} matches {len(matches)} workloads")
    return matches[0]


def dns_records() -> dict[str, str]:
    """Name → address as kube-dns answers: every Service's name (its ClusterIP), and the names
    of the outside hosts (a real CoreDNS forwards those upstream; dnsmasq answers them itself)."""
    records = {s.dns_name: s.cluster_ip for s in SERVICES}
    records.update({e.tls_name: e.ip for e in EXTERNALS if e.tls_name})
    return records


def search_list(namespace: str) -> tuple[str, ...]:
    return (f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN)


def resolv_conf(w: Workload) -> str:
    """The resolv.conf kubelet writes for dnsPolicy: ClusterFirst, plus dnsConfig options."""
    options = " ".join(("ndots:5",) + w.dns_options)
    return (f"search {' '.join(search_list(w.namespace))}\n"
            f"nameserver {KUBE_DNS_IP}\n"
            f"options {options}\n")


# --- the ground truth ------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Edge:
    """One client → server connection the scenario makes, at workload level, on the port the
    server really listens on (after Service DNAT)."""

    client: str
    server: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Target:
    """Where a call lands: the address the client dials, and what is behind it."""

    dial_ip: str
    dial_port: int
    server: str  # workload ref, or an external IP
    server_ips: tuple[str, ...]
    port: int  # the port the server listens on
    protocol: str


def _service_backend(svc: Service, sp: ServicePort) -> tuple[Workload, int]:
    if svc.selector is None:
        raise ValueError(f"{svc.key} has no selector")
    w = workload_for_selector(svc.namespace, svc.selector)
    if isinstance(sp.target_port, int):
        return w, sp.target_port
    for p in w.ports:
        if p.name == sp.target_port and p.protocol == sp.protocol:
            return w, p.port
    raise ValueError(f"{svc.key}: no container port named {sp.target_port!r} on {w.key}")


def resolve_call(namespace: str, call: Call) -> Target:
    """Follow a call through DNS, ClusterIP or NodePort to the server behind it."""
    ip = call.host
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        names = [call.host] if call.host.count(".") >= 5 else [
            f"{call.host}.{d}" for d in search_list(namespace)] + [call.host]
        records = dns_records()
        found = [records[n] for n in names if n in records]
        if not found:
            raise ValueError(f"{call.host} does not resolve from {namespace}")
        ip = found[0]
    for svc in SERVICES:
        for sp in svc.ports:
            if sp.protocol != "TCP":
                continue
            if (ip == svc.cluster_ip and call.port == sp.port) or (
                    ip == NODE.ip and sp.node_port and call.port == sp.node_port):
                w, port = _service_backend(svc, sp)
                return Target(ip, call.port, w.ref, w.pod_ips, port, "TCP")
    for e in EXTERNALS:
        if e.ip == ip and e.listen_port == call.port:
            return Target(ip, call.port, e.ip, (e.ip,), e.listen_port, "TCP")
    raise ValueError(f"nothing listens at {ip}:{call.port}")


def uses_dns(calls: tuple[Call, ...]) -> bool:
    for c in calls:
        try:
            ipaddress.ip_address(c.host)
        except ValueError:
            return True
    return False


def kube_dns() -> tuple[Service, Workload]:
    svc = next(s for s in SERVICES if s.cluster_ip == KUBE_DNS_IP)
    return svc, workload_for_selector(svc.namespace, svc.selector or {})


def expected_edges() -> tuple[Edge, ...]:
    edges: set[Edge] = set()
    _, dns = kube_dns()
    for w in WORKLOADS:
        for c in w.calls:
            t = resolve_call(w.namespace, c)
            edges.add(Edge(w.ref, t.server, t.protocol, t.port))
        if uses_dns(w.calls):
            proto = "TCP" if "use-vc" in w.dns_options else "UDP"
            edges.add(Edge(w.ref, dns.ref, proto, 53))
    for e in EXTERNALS:
        for c in e.calls:
            t = resolve_call("default", c)
            edges.add(Edge(e.ip, t.server, t.protocol, t.port))
    return tuple(sorted(edges))


def expected_edges_tsv() -> str:
    lines = ["client\tserver\tprotocol\tport"]
    lines += [f"{e.client}\t{e.server}\t{e.protocol}\t{e.port}" for e in expected_edges()]
    return "\n".join(lines) + "\n"
