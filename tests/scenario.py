"""One description of cluster traffic, rendered as every input netpolgen reads.

``SCENARIO`` names pods (namespace, workload, IP, labels, listening ports) and the connections
between them and to the outside. The renderers write the same traffic as:

- ``write_hubble``: ``hubble observe -o json`` lines (SYN / SYN-ACK / ACK / FIN packet events for
  TCP, request and reply for UDP, with Hubble's endpoint metadata),
- ``write_vpc``: AWS VPC Flow Log records (a v3 custom format with tcp-flags: one record per
  direction, SYN+FIN from the client and SYN-ACK+FIN from the server),
- ``write_pcap``: a pcap of the packets themselves (scapy),
- ``write_inventory``: the cluster as ``kubectl get -o json`` would list it.

A test that runs the pipeline on each rendering checks that the sources agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tests import kube


@dataclass(frozen=True)
class PodSpec:
    namespace: str
    deployment: str
    suffix: str
    ip: str
    labels: dict[str, str] = field(hash=False)
    ports: tuple[tuple[str, int, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.deployment}-{kube_hash(self.deployment)}-{self.suffix}"


@dataclass(frozen=True)
class Connection:
    client: str  # pod name key "ns/deployment/suffix" or an external IP
    server: str
    port: int
    proto: str = "TCP"
    client_port: int = 40000


def kube_hash(name: str) -> str:
    import hashlib
    return hashlib.sha1(name.encode()).hexdigest()[:10]


PODS = {
    "shop/frontend/a1b2c": PodSpec("shop", "frontend", "a1b2c", "10.244.1.10", {"app": "frontend"}, (("http", 8080, "TCP"),)),
    "shop/frontend/d3f4g": PodSpec("shop", "frontend", "d3f4g", "10.244.2.11", {"app": "frontend"}, (("http", 8080, "TCP"),)),
    "shop/cart/h5j6k": PodSpec("shop", "cart", "h5j6k", "10.244.1.20", {"app": "cart"}, (("grpc", 7070, "TCP"),)),
    "shop/redis/l7m8n": PodSpec("shop", "redis", "l7m8n", "10.244.2.30", {"app": "redis"}, (("redis", 6379, "TCP"),)),
    "kube-system/coredns/p9q2r": PodSpec("kube-system", "coredns", "p9q2r", "10.244.3.2", {"k8s-app": "kube-dns"},
                                         (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"))),
}
EXTERNAL = "203.0.113.50"

CONNECTIONS = [
    Connection("shop/frontend/a1b2c", "shop/cart/h5j6k", 7070, client_port=41001),
    Connection("shop/frontend/a1b2c", "shop/cart/h5j6k", 7070, client_port=41002),
    Connection("shop/frontend/d3f4g", "shop/cart/h5j6k", 7070, client_port=41003),
    Connection("shop/cart/h5j6k", "shop/redis/l7m8n", 6379, client_port=41004),
    Connection("shop/frontend/a1b2c", "kube-system/coredns/p9q2r", 53, proto="UDP", client_port=41005),
    Connection("shop/cart/h5j6k", "kube-system/coredns/p9q2r", 53, proto="UDP", client_port=41006),
    Connection("shop/frontend/d3f4g", EXTERNAL, 443, client_port=41007),
]
START = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def ip_of(ep: str) -> str:
    return PODS[ep].ip if ep in PODS else ep


def packets(c: Connection, i: int) -> list[tuple[float, str, int, str, int, str, int]]:
    """(time, src ip, src port, dst ip, dst port, tcp flags or "", payload bytes) of one connection."""
    t = START + 10 * i
    a, b = ip_of(c.client), ip_of(c.server)
    p, q = c.client_port, c.port
    if c.proto == "UDP":
        return [(t, a, p, b, q, "", 40), (t + 0.01, b, q, a, p, "", 80)]
    return [
        (t, a, p, b, q, "S", 0), (t + 0.001, b, q, a, p, "SA", 0), (t + 0.002, a, p, b, q, "A", 0),
        (t + 0.003, a, p, b, q, "PA", 100), (t + 0.004, b, q, a, p, "PA", 200),
        (t + 0.005, a, p, b, q, "FA", 0), (t + 0.006, b, q, a, p, "FA", 0), (t + 0.007, a, p, b, q, "A", 0),
    ]


# ----- Hubble ---------------------------------------------------------------------------------


def _endpoint(ip: str) -> dict:
    for key, pod in PODS.items():
        if pod.ip == ip:
            return {"identity": 1000 + list(PODS).index(key), "namespace": pod.namespace,
                    "labels": [f"k8s:{k}={v}" for k, v in pod.labels.items()]
                    + [f"k8s:io.kubernetes.pod.namespace={pod.namespace}", "k8s:io.cilium.k8s.policy.cluster=default"],
                    "pod_name": pod.name, "workloads": [{"name": pod.deployment, "kind": "Deployment"}]}
    return {"identity": 2, "labels": ["reserved:world"]}


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_hubble(path: Path) -> Path:
    lines = []
    for i, c in enumerate(CONNECTIONS):
        for t, s, sp, d, dp, flags, _size in packets(c, i):
            reply = s == ip_of(c.server)
            l4 = {"source_port": sp, "destination_port": dp}
            if c.proto == "TCP":
                l4["flags"] = {{"S": "SYN", "A": "ACK", "F": "FIN", "P": "PSH"}[f]: True for f in flags}
            flow = {"time": _rfc3339(t), "verdict": "FORWARDED", "IP": {"source": s, "destination": d, "ipVersion": "IPv4"},
                    "l4": {c.proto: l4}, "source": _endpoint(s), "destination": _endpoint(d), "Type": "L3_L4",
                    "node_name": "node-1", "is_reply": reply, "traffic_direction": "EGRESS",
                    "trace_observation_point": "TO_STACK"}
            lines.append(json.dumps({"flow": flow, "node_name": "node-1", "time": flow["time"]}))
    path.write_text("\n".join(lines) + "\n")
    return path


# ----- VPC ------------------------------------------------------------------------------------

VPC_FIELDS = "version srcaddr dstaddr srcport dstport protocol packets bytes start end action tcp-flags log-status"


def write_vpc(path: Path) -> Path:
    lines = [VPC_FIELDS]
    for i, c in enumerate(CONNECTIONS):
        pk = packets(c, i)
        for forward in (True, False):
            mine = [x for x in pk if (x[1] == ip_of(c.client)) == forward]
            if not mine:
                continue
            flags = 0
            for x in mine:
                flags |= (2 if "S" in x[5] else 0) | (1 if "F" in x[5] else 0) | (16 if x[5] == "SA" else 0)
            t0, t1 = int(mine[0][0]), int(mine[-1][0]) + 1
            s, sp, d, dp = mine[0][1], mine[0][2], mine[0][3], mine[0][4]
            proto = 6 if c.proto == "TCP" else 17
            size = sum(40 + x[6] for x in mine)
            lines.append(f"3 {s} {d} {sp} {dp} {proto} {len(mine)} {size} {t0} {t1} ACCEPT {flags} OK")
    path.write_text("\n".join(lines) + "\n")
    return path


# ----- pcap -----------------------------------------------------------------------------------


def write_pcap(path: Path) -> Path:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    frames = []
    for i, c in enumerate(CONNECTIONS):
        for t, s, sp, d, dp, flags, size in packets(c, i):
            l4 = TCP(sport=sp, dport=dp, flags=flags, seq=1000, ack=2000 if "A" in flags else 0) if c.proto == "TCP" \
                else UDP(sport=sp, dport=dp)
            pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=s, dst=d) / l4
            if size:
                pkt = pkt / Raw(b"\x00" * size)
            pkt.time = t
            frames.append(pkt)
    wrpcap(str(path), frames)
    return path


# ----- inventory ------------------------------------------------------------------------------


def write_inventory(path: Path) -> Path:
    objs: list = [kube.namespace("shop"), kube.namespace("kube-system")]
    seen: set[tuple[str, str]] = set()
    for pod in PODS.values():
        if (pod.namespace, pod.deployment) not in seen:
            seen.add((pod.namespace, pod.deployment))
            objs.extend(kube.deployment(pod.namespace, pod.deployment, pod.labels, list(pod.ports)))
        objs.append(kube.rs_pod(pod.namespace, pod.deployment, pod.suffix, pod.ip, pod.labels, ports=list(pod.ports)))
    path.write_text(json.dumps(kube.as_list(*objs), indent=1))
    return path
