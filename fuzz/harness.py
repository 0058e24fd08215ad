"""What the fuzz tests and the long fuzz run share: a valid seed input per parser, byte-level
mutations of it, and ``run_one``, which feeds bytes to a parser and checks the invariant.

The invariant (issue "hostile input"): a parser given any bytes either returns a clean result
(flow-table chunks of the schema, an Inventory, NetworkPolicy objects) or raises the documented
error, a ``NetpolgenError`` subclass naming the file. Any other exception is a bug.

Seeds are built here, from nothing: the fuzzers need no sample files.
"""

from __future__ import annotations

import io
import json
import os
import struct
from typing import Callable

from netpolgen.errors import NetpolgenError
from netpolgen.flows import FLOW_COLUMNS

# ----- seeds ------------------------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                       bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
    return head + payload


def _tcp(sport: int, dport: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _ether(l3: bytes, etype: int = 0x0800) -> bytes:
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack("!H", etype) + l3


def _frames() -> list[bytes]:
    dns_answer = bytes.fromhex("1234818000010001000000000377777707657861" "6d706c6503636f6d0000010001c00c000100010000003c00045db8d822")
    return [
        _ether(_ipv4("10.0.0.1", "10.0.0.2", 6, _tcp(40000, 80, 0x02))),  # SYN
        _ether(_ipv4("10.0.0.2", "10.0.0.1", 6, _tcp(80, 40000, 0x12))),  # SYN-ACK
        _ether(_ipv4("10.0.0.1", "10.0.0.2", 6, _tcp(40000, 80, 0x10))),  # ACK
        _ether(_ipv4("10.0.0.53", "10.0.0.1", 17, _udp(53, 5353, dns_answer))),
        _ether(_ipv4("10.0.0.1", "10.0.0.3", 17, _udp(5000, 9000, b"hello"))),
    ]


def pcap_seed() -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, f in enumerate(_frames()):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 1000 * i, len(f), len(f)) + f)
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_seed() -> bytes:
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 1) + b"\x06\0\0\0" + struct.pack("<HH", 0, 0))]
    for i, f in enumerate(_frames()):
        ts = (1_700_000_000 + i) * 1_000_000
        out.append(_block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f))
    return b"".join(out)


def hubble_seed() -> bytes:
    def flow(src: str, dst: str, sport: int, dport: int, reply: bool, ns: str = "shop") -> dict:
        return {"flow": {
            "time": "2024-05-01T10:00:00.123456789Z", "verdict": "FORWARDED",
            "IP": {"source": src, "destination": dst, "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": sport, "destination_port": dport, "flags": {"SYN": True}}},
            "source": {"namespace": ns, "pod_name": "frontend-7d4899b484-abcde",
                       "labels": ["k8s:app=frontend", f"k8s:io.kubernetes.pod.namespace={ns}"],
                       "workloads": [{"name": "frontend", "kind": "Deployment"}]},
            "destination": {"namespace": ns, "pod_name": "api-5c9f8d7b6-xyz12", "labels": ["k8s:app=api"]},
            "Type": "L3_L4", "node_name": "node-1", "is_reply": reply, "traffic_direction": "EGRESS",
        }, "node_name": "node-1", "time": "2024-05-01T10:00:00.123456789Z"}
    lines = [flow("10.244.1.10", "10.244.1.20", 40000, 5000, False), flow("10.244.1.20", "10.244.1.10", 5000, 40000, True),
             {"lost_events": {"source": "HUBBLE_RING_BUFFER", "num_events_lost": 3}},
             flow("10.244.1.11", "10.244.1.20", 40001, 5000, False, ns="data")]
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def calico_seed() -> bytes:
    rec = {"start_time": 1699375161, "end_time": 1699375461, "source_ip": "10.48.1.10",
           "source_name": "frontend-755cdc7957-abcde", "source_name_aggr": "frontend-755cdc7957-*",
           "source_namespace": "shop", "source_port": None, "source_type": "wep",
           "source_labels": {"labels": ["app=frontend"]}, "dest_ip": "10.48.2.20",
           "dest_name": "cartservice-7d4899b484-fghjk", "dest_name_aggr": "cartservice-7d4899b484-*",
           "dest_namespace": "shop", "dest_port": 7070, "dest_type": "wep", "dest_labels": {"labels": ["app=cart"]},
           "proto": "tcp", "action": "allow", "reporter": "src", "num_flows": 3,
           "packets_in": 10, "packets_out": 12, "bytes_in": 1000, "bytes_out": 1200, "host": "node-a"}
    dst = {**rec, "reporter": "dst"}
    return (json.dumps(rec) + "\n" + json.dumps(dst) + "\n").encode()


def vpc_seed() -> bytes:
    return (b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n"
            b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n"
            b"2 123456789010 eni-1235b8ca123456789 172.31.16.21 172.31.16.139 22 20641 6 20 4249 1418530010 1418530070 ACCEPT OK\n"
            b"2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA\n")


def csv_seed() -> bytes:
    return (b"src_ip,dst_ip,src_port,dst_port,proto,packets,bytes,src_namespace,src_pod,dst_namespace,dst_pod\n"
            b"10.0.0.1,10.0.0.2,40000,80,TCP,3,300,shop,shop/frontend-1,shop,shop/api-1\n"
            b"10.0.0.1,10.0.0.3,40001,53,UDP,1,80,,,,\n"
            b"fd00::1,fd00::2,,443,tcp,1,1,,,,\n")


def parquet_seed() -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(io.BytesIO(csv_seed()),
                           convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in ("src_port",)}))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _inventory_objects() -> dict:
    pod = lambda name, ip, labels: {  # noqa: E731
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": labels,
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "frontend-7d4899b484", "controller": True}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "172.18.0.2", "phase": "Running"}}
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}},
        pod("frontend-7d4899b484-abcde", "10.244.1.10", {"app": "frontend", "pod-template-hash": "7d4899b484"}),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "frontend", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": "frontend"}},
                  "template": {"metadata": {"labels": {"app": "frontend"}}, "spec": {"containers": [{"name": "c"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "frontend", "namespace": "shop"},
         "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "frontend"},
                  "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
         "spec": {"podCIDR": "10.244.1.0/24"}, "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "shop"}},
    ]}


def inventory_json_seed() -> bytes:
    return json.dumps(_inventory_objects(), indent=1).encode()


def inventory_yaml_seed() -> bytes:
    import yaml

    docs = _inventory_objects()["items"]
    text = "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
    return (text + "---\nkind: List\nitems:\n- kind: Pod\n  metadata: &m {name: p2, namespace: shop, labels: {app: api}}\n"
            "  status: {podIP: 10.244.1.20}\n- kind: ConfigMap\n  metadata: *m\n").encode()


def policy_yaml_seed() -> bytes:
    return b"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-api, namespace: shop}
spec:
  podSelector:
    matchLabels: {app: api}
    matchExpressions: [{key: tier, operator: NotIn, values: [db]}]
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}
      podSelector: {matchLabels: {app: frontend}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{port: http}, {port: 5000, endPort: 5010, protocol: TCP}]
  egress:
  - to: [{podSelector: {}}]
    ports: [{port: 53, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""


SEEDS: dict[str, Callable[[], bytes]] = {
    "pcap": pcap_seed, "pcapng": pcapng_seed, "hubble": hubble_seed, "calico": calico_seed, "vpc": vpc_seed,
    "csv": csv_seed, "parquet": parquet_seed, "inventory-json": inventory_json_seed,
    "inventory-yaml": inventory_yaml_seed, "policy-yaml": policy_yaml_seed,
}
PARSERS = tuple(SEEDS)

# the --format each flow parser is forced to (so that mutated headers still reach the parser)
_FORMAT = {"pcap": "pcap", "pcapng": "pcap", "hubble": "hubble", "calico": "calico", "vpc": "vpc",
           "csv": "csv", "parquet": "parquet"}
_SUFFIX = {"inventory-json": ".json", "inventory-yaml": ".yaml", "policy-yaml": ".yaml", "parquet": ".parquet"}

#: bytes that tend to matter to parsers (delimiters, huge or negative numbers, path tricks)
TOKENS = (b'"', b"{", b"}", b"[", b"]", b",", b":", b"\n", b" ", b"\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80",
          b"-1", b"999999999999999999999", b"1e309", b"NaN", b"null", b"../../etc", b"*a", b"&a ", b"!!python/object ",
          b"\t", b"\r\n", b"::", b"256.1.1.1", b"%", b"\xc3\x28", b"- ", b"? ", b"<<: ", b"0x", b"SYN", b"true")


def mutate(seed: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """Apply ``ops`` (kind, position, argument) to ``seed``: overwrite a byte, insert a token,
    delete a run, duplicate a run, truncate. Positions wrap around the current length."""
    data = bytearray(seed)
    for kind, pos, arg in ops:
        n = len(data)
        p = pos % (n + 1)
        k = kind % 5
        if k == 0 and n:
            data[p % n] = arg & 0xFF
        elif k == 1:
            data[p:p] = TOKENS[arg % len(TOKENS)]
        elif k == 2:
            del data[p:p + 1 + arg % 64]
        elif k == 3 and n:
            run = bytes(data[p:p + 1 + arg % 256])
            data[p:p] = run * (1 + arg % 4)
        elif k == 4:
            del data[p + arg % 8:]
    return bytes(data)


# ----- the invariant ---------------------------------------------------------------------------

def run_one(parser: str, data: bytes, workdir: str, detect: bool = False) -> str:
    """Feed ``data`` to ``parser``: "ok" for a clean result, "error" for the documented error.
    Anything else propagates (the fuzzers report it as a crash)."""
    path = os.path.join(workdir, "input" + _SUFFIX.get(parser, ".dat"))
    with open(path, "wb") as f:
        f.write(data)
    try:
        if parser in _FORMAT:
            _read_flows(path, None if detect else _FORMAT[parser])
        elif parser.startswith("inventory"):
            from netpolgen.inventory import load_inventory

            load_inventory([path])
        else:
            from netpolgen.policy import load_policies

            load_policies([path])
    except NetpolgenError as e:
        if not e.line():
            raise AssertionError(f"an error without a message: {e!r}") from e
        return "error"
    return "ok"


def _read_flows(path: str, fmt: str | None) -> None:
    from netpolgen.k8snames import screen_names
    from netpolgen.sources import open_source
    from netpolgen.sources.base import SourceOptions

    src = open_source(path, fmt, SourceOptions(workers=0, chunk_size=3))
    for chunk in src.chunks():
        if list(chunk.columns) != list(FLOW_COLUMNS):
            raise AssertionError(f"a chunk outside the flow schema: {list(chunk.columns)}")
        screen_names(chunk, src.stats.skipped, path)
