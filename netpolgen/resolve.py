"""Resolution: flow-table rows → connections between endpoints the policies can name.

For each row: re-orient it when the client side was not seen (the inventory's container and
Service ports are better evidence than the sources' port rule), then classify both addresses:

- ``pod``: a pod IP → the pod and the workload at the top of its owner chain;
- ``node``: a node address or a hostNetwork pod (policies can only reach these by ipBlock);
- ``external``: outside the cluster's pod and service ranges;
- ``unresolved``: inside those ranges but unknown to the inventory — never becomes a rule.

A destination that is a Service ClusterIP (or a node's NodePort) becomes one row per backend
workload, on the backend's real target port: policies act on pod IPs and container ports.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from netpolgen.flows import PROTOCOLS_WITH_PORTS, VERDICT_DENIED
from netpolgen.inventory import Inventory, Pod
from netpolgen.nat import NatReport, merge_nat_sightings, node_addresses
from netpolgen.sightings import merge_sightings

KIND_POD = "pod"
KIND_NODE = "node"
KIND_EXTERNAL = "external"
KIND_UNRESOLVED = "unresolved"

RESOLVED_COLUMNS = [
    "src_kind", "src_namespace", "src_workload", "src_pod", "src_ip", "src_port",
    "dst_kind", "dst_namespace", "dst_workload", "dst_pod", "dst_ip",
    "dst_port", "proto", "dst_service", "service_port",
    "packets", "bytes", "connections", "first_seen", "last_seen",
    "direction_inferred", "verdict", "source", "dst_names",
]


@dataclass(frozen=True)
class Endpoint:
    """What one address is, as far as policy is concerned."""

    kind: str
    namespace: str = ""
    workload: str = ""  # WorkloadRef text for pods; the IP for node/external/unresolved
    pod: str = ""  # "ns/name" of the pod (a representative one when via a Service)
    reason: str = ""  # for unresolved: why; for node: the hostNetwork pods seen there


@dataclass
class ResolveReport:
    """What resolution could not do cleanly, for the summary."""

    unresolved: dict[str, str] = field(default_factory=dict)  # ip -> reason
    unresolved_connections: int = 0
    inferred_directions: int = 0  # rows whose client side was inferred, not seen
    reoriented_by_inventory: int = 0
    service_connections: int = 0
    denied_connections: int = 0  # rows the source marked denied (reported, never allowed)
    non_port_protocols: dict[str, int] = field(default_factory=dict)  # ICMP etc.: no rules
    host_network_peers: dict[str, set[str]] = field(default_factory=dict)  # node ip -> pods
    ambiguous_ips: dict[str, str] = field(default_factory=dict)  # ip -> why it was not certain
    outside_window: int = 0
    nat: NatReport = field(default_factory=NatReport)
    sightings_merged: int = 0  # rows of several capture points that were one connection
    connections: int = 0  # connections resolved (with TCP/UDP/SCTP ports), before Service expansion

    def merge(self, other: "ResolveReport") -> None:
        """Fold another part's report into this one (the Dask engine resolves file by file)."""
        for name in ("unresolved_connections", "inferred_directions", "reoriented_by_inventory",
                     "service_connections", "denied_connections", "outside_window", "sightings_merged",
                     "connections"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.unresolved.items():
            self.unresolved.setdefault(k, v)
        for k, v in other.ambiguous_ips.items():
            self.ambiguous_ips.setdefault(k, v)
        for k, v in other.non_port_protocols.items():
            self.non_port_protocols[k] = self.non_port_protocols.get(k, 0) + v
        for k, pods in other.host_network_peers.items():
            self.host_network_peers.setdefault(k, set()).update(pods)
        self.nat.dnat_merged += other.nat.dnat_merged
        self.nat.snat_merged += other.nat.snat_merged
        self.nat.masquerade_only = sorted(set(self.nat.masquerade_only) | set(other.nat.masquerade_only))


@dataclass
class ResolveResult:
    flows: pd.DataFrame  # RESOLVED_COLUMNS
    report: ResolveReport


def resolve_flows(
    flows: pd.DataFrame,
    inventory: Inventory,
    since: float | None = None,
    until: float | None = None,
) -> ResolveResult:
    """Resolve a flow table (``netpolgen.flows`` schema) against ``inventory``."""
    report = ResolveReport()
    df = flows
    if since is not None or until is not None:
        keep = np.ones(len(df), dtype=bool)
        if since is not None:
            keep &= ~(df["last_seen"].to_numpy() < since)
        if until is not None:
            keep &= ~(df["first_seen"].to_numpy() > until)
        report.outside_window = int((~keep).sum())
        df = df[keep]
    port_proto = df["proto"].isin(PROTOCOLS_WITH_PORTS)
    if (~port_proto).any():
        counts = df.loc[~port_proto].groupby("proto")["connections"].sum()
        report.non_port_protocols = {str(k): int(v) for k, v in counts.items()}
    df = df[port_proto].reset_index(drop=True)
    df, report.sightings_merged = merge_sightings(df)
    report.connections = int(df["connections"].sum())
    df = _orient(df, inventory, report)
    resolver = _AddressResolver(inventory)
    src = resolver.classify_column(df["src_ip"], df["first_seen"], df["src_pod"], df["src_workload"])
    dst = resolver.classify_column(df["dst_ip"], df["first_seen"], df["dst_pod"], df["dst_workload"])
    out = pd.DataFrame(
        {
            "src_kind": [e.kind for e in src],
            "src_namespace": [e.namespace for e in src],
            "src_workload": [e.workload for e in src],
            "src_pod": [e.pod for e in src],
            "src_ip": df["src_ip"].to_numpy(),
            "src_port": df["src_port"].to_numpy(dtype=np.int64),
            "dst_kind": [e.kind for e in dst],
            "dst_namespace": [e.namespace for e in dst],
            "dst_workload": [e.workload for e in dst],
            "dst_pod": [e.pod for e in dst],
            "dst_ip": df["dst_ip"].to_numpy(),
            "dst_port": df["dst_port"].to_numpy(dtype=np.int64),
            "proto": df["proto"].to_numpy(),
            "dst_service": "",
            "service_port": 0,
            "packets": df["packets"].to_numpy(),
            "bytes": df["bytes"].to_numpy(),
            "connections": df["connections"].to_numpy(),
            "first_seen": df["first_seen"].to_numpy(),
            "last_seen": df["last_seen"].to_numpy(),
            "direction_inferred": ~df["direction_known"].to_numpy(dtype=bool),
            "verdict": df["verdict"].to_numpy(),
            "source": df["source"].to_numpy(),
            "dst_names": df["dst_names"].to_numpy(),
        }
    )
    out = resolver.expand_services(out, report)
    out, report.nat = merge_nat_sightings(out, node_addresses(inventory))
    unresolved = out[(out["src_kind"] == KIND_UNRESOLVED) | (out["dst_kind"] == KIND_UNRESOLVED)]
    report.unresolved_connections = int(unresolved["connections"].sum())
    report.unresolved.update(resolver.unresolved)
    report.ambiguous_ips.update(resolver.ambiguous)
    report.host_network_peers = resolver.host_network_peers
    report.inferred_directions = int(df.loc[~df["direction_known"], "connections"].sum())
    report.denied_connections = int(out.loc[out["verdict"] == VERDICT_DENIED, "connections"].sum())
    return ResolveResult(out[RESOLVED_COLUMNS].reset_index(drop=True), report)


# ----- orientation -----------------------------------------------------------------------------


def _server_endpoints(inventory: Inventory) -> set[tuple[str, int, str]]:
    """(ip, port, proto) where something in the inventory listens: container and Service ports."""
    out: set[tuple[str, int, str]] = set()
    for p in inventory.pods:
        for ip in p.ips:
            for cp in p.ports:
                out.add((ip, cp.port, cp.protocol))
    node_ips = [ip for n in inventory.nodes for ip in n.addresses]
    for s in inventory.services:
        for sp in s.ports:
            for ip in s.cluster_ips + s.external_ips:
                out.add((ip, sp.port, sp.protocol))
            if sp.node_port:
                for ip in node_ips:
                    out.add((ip, sp.node_port, sp.protocol))
    return out


def _orient(df: pd.DataFrame, inventory: Inventory, report: ResolveReport) -> pd.DataFrame:
    """Swap rows whose client side was not seen when the inventory says the source is the server."""
    unknown = ~df["direction_known"].to_numpy(dtype=bool)
    if not unknown.any():
        return df
    servers = _server_endpoints(inventory)
    if not servers:
        return df
    sub = df.loc[unknown, ["src_ip", "src_port", "dst_ip", "dst_port", "proto"]]
    src_is_server = np.fromiter(
        ((s, int(sp), pr) in servers and (d, int(dp), pr) not in servers
         for s, sp, d, dp, pr in sub.itertuples(index=False, name=None)),
        dtype=bool,
        count=len(sub),
    )
    if not src_is_server.any():
        return df
    idx = sub.index[src_is_server]
    df = df.copy()
    for a, b in (("src_ip", "dst_ip"), ("src_port", "dst_port"), ("src_namespace", "dst_namespace"),
                 ("src_pod", "dst_pod"), ("src_labels", "dst_labels"), ("src_workload", "dst_workload")):
        va, vb = df.loc[idx, a].to_numpy(), df.loc[idx, b].to_numpy()
        df.loc[idx, a], df.loc[idx, b] = vb, va
    report.reoriented_by_inventory = int(df.loc[idx, "connections"].sum())
    return df


# ----- addresses -------------------------------------------------------------------------------


class _AddressResolver:
    def __init__(self, inventory: Inventory) -> None:
        self.inv = inventory
        self.cache: dict[str, Endpoint | None] = {}
        self.unresolved: dict[str, str] = {}
        self.ambiguous: dict[str, str] = {}
        self.host_network_peers: dict[str, set[str]] = {}

    def pod_endpoint(self, pod: Pod) -> Endpoint:
        ref = self.inv.workload_of(pod)
        return Endpoint(KIND_POD, pod.namespace, str(ref), pod.key)

    def classify_column(
        self, ips: pd.Series, times: pd.Series, pod_keys: pd.Series, workloads: pd.Series
    ) -> list[Endpoint]:
        out: list[Endpoint] = []
        for ip, t, pod_key, wl in zip(ips.to_numpy(), times.to_numpy(), pod_keys.to_numpy(), workloads.to_numpy()):
            out.append(self.classify(ip, None if t != t else float(t), pod_key, wl))
        return out

    def classify(self, ip: str, at: float | None, pod_key: str = "", workload_hint: str = "") -> Endpoint:
        """Classify one address. ``pod_key`` lets a flow log name an aggregated endpoint with no IP."""
        if workload_hint.startswith("reserved:"):
            return self._reserved(ip, workload_hint)
        if not ip or ip == "-":
            pod = self.inv.pod(pod_key) if pod_key else None
            if pod is not None:
                return self.pod_endpoint(pod)
            self.unresolved.setdefault(pod_key or "-", "no address and not in the inventory")
            return Endpoint(KIND_UNRESOLVED, workload=pod_key or "-", reason="no address")
        cached = self.cache.get(ip, _MISSING)
        if cached is not _MISSING and cached is not None:
            return cached
        if cached is None:  # several pods have held this address: decide by time
            return self._by_time(ip, at)
        ep = self._classify_new(ip)
        self.cache[ip] = ep
        if ep is None:
            return self._by_time(ip, at)
        return ep

    def _reserved(self, ip: str, hint: str) -> Endpoint:
        name = hint.split(":", 1)[1]
        if name in ("host", "remote-node", "kube-apiserver"):
            return Endpoint(KIND_NODE, workload=ip, reason=f"Hubble identity {name}")
        if name.startswith("world"):
            return Endpoint(KIND_EXTERNAL, workload=ip)
        self.unresolved.setdefault(ip or hint, f"Hubble identity {name} cannot be selected")
        return Endpoint(KIND_UNRESOLVED, workload=ip or hint, reason=hint)

    def _classify_new(self, ip: str) -> Endpoint | None:
        pods = self.inv.pods_at(ip)
        if len(pods) == 1:
            return self.pod_endpoint(pods[0])
        if len(pods) > 1:
            live = [p for p in pods if p.phase in ("Running", "Pending", "")]
            if len({str(self.inv.workload_of(p)) for p in pods}) == 1:
                return self.pod_endpoint(sorted(pods, key=lambda p: p.key)[0])
            if len(live) == 1 and all(p.created is None for p in pods):
                return self.pod_endpoint(live[0])
            return None  # decided per row by time
        host_pods = self.inv.host_network_pods_at(ip)
        node = self.inv.node_at(ip)
        if host_pods or node is not None:
            if host_pods:
                self.host_network_peers.setdefault(ip, set()).update(p.key for p in host_pods)
            return Endpoint(KIND_NODE, workload=ip, reason=node.name if node else "")
        if self.inv.service_at(ip) is not None:
            return Endpoint("service", workload=ip)
        if self.inv.in_cluster_range(ip) or _is_link_local(ip):
            self.unresolved.setdefault(ip, "in the cluster's pod/service range but not in the inventory")
            return Endpoint(KIND_UNRESOLVED, workload=ip)
        return Endpoint(KIND_EXTERNAL, workload=ip)

    def _by_time(self, ip: str, at: float | None) -> Endpoint:
        pods = self.inv.pods_at(ip, at)
        if len(pods) == 1:
            return self.pod_endpoint(pods[0])
        why = "several pods held this address and the flow has no time" if at is None else (
            "several pods held this address at the flow's time" if pods else
            "no pod held this address at the flow's time"
        )
        self.ambiguous.setdefault(ip, why)
        self.unresolved.setdefault(ip, why)
        return Endpoint(KIND_UNRESOLVED, workload=ip, reason=why)

    def expand_services(self, df: pd.DataFrame, report: ResolveReport) -> pd.DataFrame:
        """Replace rows to a Service (ClusterIP, or a node's NodePort) by rows to its backends."""
        is_service = df["dst_kind"].to_numpy() == "service"
        is_node = df["dst_kind"].to_numpy() == KIND_NODE
        node_port_rows = np.zeros(len(df), dtype=bool)
        if is_node.any() and any(sp.node_port for s in self.inv.services for sp in s.ports):
            node_port_rows = is_node & np.fromiter(
                (self.inv.service_by_nodeport(int(p), pr) is not None for p, pr in zip(df["dst_port"], df["proto"])),
                dtype=bool, count=len(df),
            )
        via = is_service | node_port_rows
        if not via.any():
            return df
        direct = df[~via]
        expanded: list[dict] = []
        backend_cache: dict[tuple[str, int, str, bool], list[tuple[Endpoint, int, str, int]]] = {}
        for row in df[via].to_dict("records"):
            key = (row["dst_ip"], int(row["dst_port"]), row["proto"], row["dst_kind"] == KIND_NODE)
            if key not in backend_cache:
                backend_cache[key] = self._backends(*key)
            backends = backend_cache[key]
            report.service_connections += int(row["connections"])
            if not backends:
                svc = self.inv.service_at(row["dst_ip"])
                why = (f"Service {svc.key} has no backend for port {row['dst_port']}/{row['proto']}"
                       if svc else "NodePort without backends")
                self.unresolved.setdefault(f"{row['dst_ip']}:{row['dst_port']}/{row['proto']}", why)
                expanded.append({**row, "dst_kind": KIND_UNRESOLVED, "dst_workload": row["dst_ip"]})
                continue
            for ep, target, svc_key, svc_port in backends:
                expanded.append({
                    **row,
                    "dst_kind": ep.kind, "dst_namespace": ep.namespace, "dst_workload": ep.workload,
                    "dst_pod": ep.pod, "dst_port": target, "dst_service": svc_key, "service_port": svc_port,
                })
        return pd.concat([direct, pd.DataFrame(expanded, columns=df.columns)], ignore_index=True)

    def _backends(self, ip: str, port: int, proto: str, node_port: bool) -> list[tuple[Endpoint, int, str, int]]:
        """(backend endpoint, target port, service key, service port), one per backend workload
        and target port (pods of one workload on one port are one policy peer)."""
        if node_port:
            hit = self.inv.service_by_nodeport(port, proto)
            if hit is None:
                return []
            svc, sp = hit
        else:
            svc = self.inv.service_at(ip)
            if svc is None:
                return []
            sp = next((p for p in svc.ports if p.port == port and p.protocol == proto), None)
            if sp is None:
                return []
        seen: dict[tuple[str, int], tuple[Endpoint, int, str, int]] = {}
        for b in self.inv.service_backends(svc, sp):
            if b.pod.host_network:
                ep = Endpoint(KIND_NODE, workload=b.pod.host_ip or ip)
            else:
                ep = self.pod_endpoint(b.pod)
            k = (ep.workload, b.port)
            if k not in seen or ep.pod < seen[k][0].pod:
                seen[k] = (ep, b.port, svc.key, sp.port)
        return [seen[k] for k in sorted(seen)]


_MISSING = object()


def _is_link_local(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_link_local
    except ValueError:
        return False
