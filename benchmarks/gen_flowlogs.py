"""Generate large, deterministic flow-log files for benchmarks/bench_flowlogs.py.

Writes into benchmarks/data/ (git-ignored):

- ``hubble-200k.json``: 200,000 ``hubble observe -o json`` lines shaped like the real samples
  (endpoint labels, workloads, flags, observation points; ~1.2 KB each): TCP connections seen at
  the client's egress and the server's ingress with their replies, DNS over UDP with L7 records;
- ``vpc-1m.log``: 1,000,000 default-format (v2) VPC Flow Log records without header: each
  connection's two directions, on the client's interface and, inside the VPC, the server's;
- ``calico-300k.log``: 300,000 Calico flow-log JSON records, reported by both ends, some
  aggregated (``name_aggr`` with ``*``, no IP).

The same seed gives byte-identical files. Usage: ``python benchmarks/gen_flowlogs.py [--small]``
(``--small`` writes a tenth of each, for a quick run; ``--million`` adds 1,000,000-record Hubble and
Calico files, ``hubble-1m.json`` and ``calico-1m.log``).
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timezone
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
START = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def _suffix(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


# Ports the generated servers listen on (some are in the ephemeral range, like gRPC's 50051).
SERVER_PORTS = (80, 443, 8080, 9080, 5432, 6379, 7070, 3550, 50051, 53)


class Cluster:
    """Namespaces, deployments and pods with IPs, labels and ports (deterministic)."""

    def __init__(self, seed: int = 6) -> None:
        rng = random.Random(seed)
        self.pods: list[dict] = []
        ports = list(SERVER_PORTS[:-1])
        n = 0
        for ns in ("shop", "payments", "search", "monitoring", "auth"):
            for d in range(6):
                name = f"{ns[:4]}-svc{d}"
                h = _suffix(rng, 10)
                port = ports[(d + len(ns)) % len(ports)]
                for _ in range(10):
                    n += 1
                    self.pods.append({
                        "namespace": ns, "deployment": name, "name": f"{name}-{h}-{_suffix(rng, 5)}",
                        "ip": f"10.244.{n // 250}.{n % 250 + 2}", "port": port, "node": f"node-{n % 8}",
                        "labels": {"app": name, "version": "v1", "tier": "backend" if d % 2 else "frontend"},
                        "identity": 10000 + d + 10 * len(ns),
                    })
        self.dns = {"namespace": "kube-system", "deployment": "coredns", "name": "coredns-558bd4d5db-w2m67",
                    "ip": "10.244.99.2", "port": 53, "node": "node-0", "labels": {"k8s-app": "kube-dns"},
                    "identity": 48342}
        self.external = [f"203.0.113.{i}" for i in range(1, 60)]


# ----- Hubble -------------------------------------------------------------------------------------


def _hubble_endpoint(p: dict | None, ip: str) -> dict:
    if p is None:
        return {"identity": 2, "labels": ["reserved:world"]}
    labels = [f"k8s:{k}={v}" for k, v in sorted(p["labels"].items())] + [
        f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={p['namespace']}",
        "k8s:io.cilium.k8s.policy.cluster=kind-kind",
        f"k8s:io.cilium.k8s.policy.serviceaccount={p['deployment']}",
        f"k8s:io.kubernetes.pod.namespace={p['namespace']}",
    ]
    return {"ID": p["identity"] % 4000, "identity": p["identity"], "namespace": p["namespace"], "labels": labels,
            "pod_name": p["name"], "workloads": [{"name": p["deployment"], "kind": "Deployment"}]}


def _time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def _hubble_record(t, src, sp, dst, dp, proto, flags, reply, direction, point, node, src_pod, dst_pod, l7=None):
    l4 = {"source_port": sp, "destination_port": dp}
    if flags:
        l4["flags"] = {f: True for f in flags}
    flow = {
        "time": _time(t), "verdict": "FORWARDED",
        "ethernet": {"source": "d2:d9:76:de:f4:90", "destination": "6e:3c:ce:d3:9e:a6"},
        "IP": {"source": src, "destination": dst, "ipVersion": "IPv4"},
        "l4": {proto: l4},
        "source": _hubble_endpoint(src_pod, src), "destination": _hubble_endpoint(dst_pod, dst),
        "Type": "L7" if l7 else "L3_L4", "node_name": node,
        "event_type": {"type": 129} if l7 else {"type": 4, "sub_type": 3},
        "traffic_direction": direction, "trace_observation_point": point, "is_reply": reply,
        "Summary": "TCP Flags: " + ", ".join(flags) if flags else proto,
    }
    if l7:
        flow["l7"] = l7
    return json.dumps({"flow": flow, "node_name": node, "time": flow["time"]}, separators=(",", ":"))


def write_hubble(path: Path, n_records: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    c = Cluster()
    t = START
    written = 0
    with path.open("w") as f:
        while written < n_records:
            client = rng.choice(c.pods)
            cport = rng.randrange(32768, 61000)
            t += 0.0007
            if rng.random() < 0.15:  # a DNS lookup: query, answer, and the L7 records
                s = c.dns
                q = f"{rng.choice(c.pods)['deployment']}.{client['namespace']}.svc.cluster.local."
                recs = [
                    _hubble_record(t, client["ip"], cport, s["ip"], 53, "UDP", None, False, "EGRESS", "TO_PROXY", client["node"], client, s),
                    _hubble_record(t + 0.0001, client["ip"], cport, s["ip"], 53, "UDP", None, False, "EGRESS", "", client["node"], client, s,
                                   {"type": "REQUEST", "dns": {"query": q, "qtypes": ["A"]}}),
                    _hubble_record(t + 0.0002, s["ip"], 53, client["ip"], cport, "UDP", None, True, "EGRESS", "", client["node"], s, client,
                                   {"type": "RESPONSE", "dns": {"query": q, "ips": [rng.choice(c.pods)["ip"]], "rcode": 0}}),
                    _hubble_record(t + 0.0003, s["ip"], 53, client["ip"], cport, "UDP", None, True, "INGRESS", "TO_ENDPOINT", client["node"], s,
                                   client),
                ]
            else:
                if rng.random() < 0.05:
                    server, sip, sport = None, rng.choice(c.external), 443
                else:
                    server = rng.choice(c.pods)
                    sip, sport = server["ip"], server["port"]
                snode = server["node"] if server else client["node"]
                recs = [
                    _hubble_record(t, client["ip"], cport, sip, sport, "TCP", ["SYN"], False, "EGRESS", "TO_STACK", client["node"], client, server),
                    _hubble_record(t + 0.0001, client["ip"], cport, sip, sport, "TCP", ["SYN"], False, "INGRESS", "TO_ENDPOINT", snode, client,
                                   server),
                    _hubble_record(t + 0.0002, sip, sport, client["ip"], cport, "TCP", ["SYN", "ACK"], True, "INGRESS", "TO_STACK", snode,
                                   server, client),
                    _hubble_record(t + 0.0003, client["ip"], cport, sip, sport, "TCP", ["ACK"], False, "EGRESS", "TO_STACK", client["node"],
                                   client, server),
                    _hubble_record(t + 0.0004, client["ip"], cport, sip, sport, "TCP", ["PSH", "ACK"], False, "EGRESS", "TO_STACK",
                                   client["node"], client, server),
                    _hubble_record(t + 0.0005, sip, sport, client["ip"], cport, "TCP", ["PSH", "ACK"], True, "INGRESS", "TO_STACK", snode,
                                   server, client),
                ]
            for r in recs[: n_records - written]:
                f.write(r + "\n")
            written += min(len(recs), n_records - written)
    return written


# ----- VPC ----------------------------------------------------------------------------------------


def write_vpc(path: Path, n_records: int, seed: int = 2) -> int:
    """Default format v2, no header (as AWS writes to S3)."""
    rng = random.Random(seed)
    internal = [f"10.0.{i // 200}.{i % 200 + 10}" for i in range(2000)]
    enis = {ip: f"eni-{i:017x}" for i, ip in enumerate(internal)}
    external = [f"198.51.100.{i}" for i in range(1, 200)]
    ports = [22, 80, 443, 3306, 5432, 6379, 8080, 9200]
    t = 1_714_557_600
    written = 0
    with path.open("w") as f:
        while written < n_records:
            client = rng.choice(internal)
            outside = rng.random() < 0.2
            server = rng.choice(external) if outside else rng.choice(internal)
            sport, dport = rng.randrange(32768, 61000), rng.choice(ports)
            pk_out, pk_in = rng.randrange(1, 60), rng.randrange(1, 80)
            by_out, by_in = pk_out * rng.randrange(60, 1400), pk_in * rng.randrange(60, 1400)
            action = "REJECT" if rng.random() < 0.02 else "ACCEPT"
            t += rng.randrange(0, 2)
            start, end = t, t + rng.randrange(1, 60)
            lines = [
                f"2 123456789010 {enis[client]} {client} {server} {sport} {dport} 6 {pk_out} {by_out} {start} {end} {action} OK",
                f"2 123456789010 {enis[client]} {server} {client} {dport} {sport} 6 {pk_in} {by_in} {start} {end} {action} OK",
            ]
            if not outside:
                lines += [
                    f"2 123456789010 {enis[server]} {client} {server} {sport} {dport} 6 {pk_out} {by_out} {start} {end} {action} OK",
                    f"2 123456789010 {enis[server]} {server} {client} {dport} {sport} 6 {pk_in} {by_in} {start} {end} {action} OK",
                ]
            if rng.random() < 0.01:
                lines.append(f"2 123456789010 {enis[client]} - - - - - - - {start} {end} - NODATA")
            for line in lines[: n_records - written]:
                f.write(line + "\n")
            written += min(len(lines), n_records - written)
    return written


# ----- Calico -------------------------------------------------------------------------------------


def _calico_side(p: dict, prefix: str, aggregated: bool) -> dict:
    """One end of a Calico record: pod ``p``, or its aggregate name when ``aggregated``."""
    agg_name = p["name"].rsplit("-", 1)[0] + "-*"
    return {
        f"{prefix}_ip": None if aggregated else p["ip"],
        f"{prefix}_name": "-" if aggregated else p["name"],
        f"{prefix}_name_aggr": agg_name,
        f"{prefix}_namespace": p["namespace"],
        f"{prefix}_type": "wep",
        f"{prefix}_labels": {"labels": [f"{k}={v}" for k, v in sorted(p["labels"].items())]
                             + [f"pod-template-hash={p['name'].rsplit('-', 2)[1]}"]},
    }


def write_calico(path: Path, n_records: int, seed: int = 3) -> int:
    rng = random.Random(seed)
    c = Cluster()
    t = 1_714_557_600
    written = 0
    with path.open("w") as f:
        while written < n_records:
            a, b = rng.choice(c.pods), rng.choice(c.pods)
            aggregated = rng.random() < 0.3
            t += rng.randrange(0, 2)
            base = {"start_time": t, "end_time": t + 300, **_calico_side(a, "source", aggregated), "source_port": None,
                    **_calico_side(b, "dest", aggregated), "dest_port": b["port"], "dest_service_namespace": "-",
                    "dest_service_name": "-", "dest_service_port": "-", "proto": "tcp",
                    "action": "deny" if rng.random() < 0.03 else "allow",
                    "policies": {"all_policies": ["0|__PROFILE__|__PROFILE__.kns.default|allow|0"]},
                    "num_flows": rng.randrange(1, 20), "num_flows_started": 1, "num_flows_completed": 1,
                    "packets_in": rng.randrange(1, 500), "packets_out": rng.randrange(1, 500),
                    "bytes_in": rng.randrange(100, 90000), "bytes_out": rng.randrange(100, 90000)}
            recs = [{**base, "reporter": "src", "host": a["node"]}, {**base, "reporter": "dst", "host": b["node"]}]
            for r in recs[: n_records - written]:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
            written += min(len(recs), n_records - written)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a tenth of each file")
    ap.add_argument("--million", action="store_true",
                    help="also write hubble-1m.json and calico-1m.log (1,000,000 records each, ~1.4 GB and ~0.7 GB)")
    args = ap.parse_args()
    scale = 10 if args.small else 1
    DATA.mkdir(parents=True, exist_ok=True)
    files = [("hubble-200k.json", write_hubble, 200_000), ("vpc-1m.log", write_vpc, 1_000_000),
             ("calico-300k.log", write_calico, 300_000)]
    if args.million:
        files += [("hubble-1m.json", write_hubble, 1_000_000), ("calico-1m.log", write_calico, 1_000_000)]
    for name, fn, n in files:
        path = DATA / name
        count = fn(path, n // scale)
        print(f"{path}: {count} records, {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
