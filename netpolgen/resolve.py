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

from netpolgen.endpoint_kinds import KIND_EXTERNAL, KIND_NODE, KIND_POD, KIND_SERVICE, KIND_UNRESOLVED
from netpolgen.flows import PROTOCOLS_WITH_PORTS, VERDICT_DENIED, object_frame, text_to_labels
from netpolgen.inventory import Inventory, Pod, Service, ServicePort
from netpolgen.labels import DEFAULT_VOLATILE_LABELS, is_volatile
from netpolgen.nat import NatReport, merge_nat_sightings, node_addresses
from netpolgen.sightings import merge_sightings
from netpolgen.window import TimeWindow

__all__ = ["KIND_EXTERNAL", "KIND_NODE", "KIND_POD", "KIND_SERVICE", "KIND_UNRESOLVED", "RESOLVED_COLUMNS",
           "RESOLVED_SCHEMA", "Endpoint", "ResolveReport", "ResolveResult", "describe_address", "resolve_flows"]

# The resolved table, one row per connection between endpoints a policy can name: name ->
# (dtype, what it holds at this stage). Declared once; tests check every stage boundary.
RESOLVED_SCHEMA: dict[str, tuple[str, str]] = {
    "src_kind": ("str", "pod / node / external / unresolved"),
    "src_namespace": ("str", "the client pod's namespace; '' for other kinds"),
    "src_workload": ("str", "the client's workload text ns/name[Kind], or its address for other kinds"),
    "src_pod": ("str", "ns/name of the client pod (one of them, for a workload)"),
    "src_ip": ("str", "the client address as observed"),
    "src_port": ("int64", "client port; -1 when the source does not say"),
    "dst_kind": ("str", "as src_kind, for the server (a Service address is replaced by its backends)"),
    "dst_namespace": ("str", "the server pod's namespace"),
    "dst_workload": ("str", "the server's workload text, or its address"),
    "dst_pod": ("str", "ns/name of the server pod"),
    "dst_ip": ("str", "the server address as observed (a Service VIP stays here)"),
    "dst_port": ("int64", "the server's real (target) port"),
    "proto": ("str", "TCP / UDP / SCTP"),
    "dst_service": ("str", "ns/name of the Service the connection went through, or ''"),
    "service_port": ("int64", "the Service port asked for, 0 when none"),
    "packets": ("int64", "packets over the connection"),
    "bytes": ("int64", "bytes over the connection"),
    "connections": ("int64", "connections the row stands for"),
    "first_seen": ("float64", "unix seconds; NaN when unknown"),
    "last_seen": ("float64", "unix seconds; NaN when unknown"),
    "direction_inferred": ("bool", "the client side was inferred, not seen"),
    "verdict": ("str", "allowed / denied / unknown, as the source said"),
    "source": ("str", "the input file"),
    "dst_names": ("str", "DNS names seen resolving to dst_ip, comma-joined"),
}
RESOLVED_COLUMNS = list(RESOLVED_SCHEMA)


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
    loopback_connections: int = 0  # 127.0.0.0/8 and ::1: inside one pod or node, never policy
    # rows of a connection whose end a record gave as the node (a reply through Cilium's proxy)
    # while another record of the same connection names the pod: credited to the pod
    credited_to_identity: int = 0
    # node address -> the Hubble identities it was seen with (host, remote-node, kube-apiserver)
    entities: dict[str, set[str]] = field(default_factory=dict)

    def merge(self, other: "ResolveReport") -> None:
        """Fold another part's report into this one (the Dask engine resolves file by file)."""
        for name in ("unresolved_connections", "inferred_directions", "reoriented_by_inventory",
                     "service_connections", "denied_connections", "outside_window", "sightings_merged",
                     "connections", "loopback_connections", "credited_to_identity"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.unresolved.items():
            self.unresolved.setdefault(k, v)
        for k, v in other.ambiguous_ips.items():
            self.ambiguous_ips.setdefault(k, v)
        for proto, count in other.non_port_protocols.items():
            self.non_port_protocols[proto] = self.non_port_protocols.get(proto, 0) + count
        for k, pods in other.host_network_peers.items():
            self.host_network_peers.setdefault(k, set()).update(pods)
        for k, names in other.entities.items():
            self.entities.setdefault(k, set()).update(names)
        self.nat.dnat_merged += other.nat.dnat_merged
        self.nat.snat_merged += other.nat.snat_merged
        self.nat.masquerade_only = sorted(set(self.nat.masquerade_only) | set(other.nat.masquerade_only))


@dataclass
class ResolveResult:
    flows: pd.DataFrame  # RESOLVED_COLUMNS
    report: ResolveReport


_ENTITY_HINTS = ("reserved:host", "reserved:remote-node", "reserved:kube-apiserver")


def _entities(flows: pd.DataFrame, seen: dict[str, set[str]]) -> dict[str, set[str]]:
    """Address -> the Hubble node identities records gave it (``reserved:host`` ...), whether or
    not the inventory also knows the address as a node: Cilium policy names nodes by them."""
    out = {k: set(v) for k, v in seen.items()}
    for ip_col, wl_col in (("src_ip", "src_owner"), ("dst_ip", "dst_owner")):
        if ip_col not in flows or wl_col not in flows:
            continue
        hints = flows[wl_col].astype(str)
        mask = hints.isin(_ENTITY_HINTS)
        if mask.any():
            for ip, hint in flows.loc[mask, [ip_col, wl_col]].drop_duplicates().itertuples(index=False, name=None):
                if ip and ip != "-":
                    out.setdefault(str(ip), set()).add(str(hint).split(":", 1)[1])
    return out


def resolve_flows(
    flows: pd.DataFrame,
    inventory: Inventory,
    since: float | None = None,
    until: float | None = None,
) -> ResolveResult:
    """Resolve a flow table (``netpolgen.flows`` schema) against ``inventory``."""
    report = ResolveReport()
    df = flows
    window = TimeWindow(since, until)
    if not window.unbounded:
        keep = window.keep(df["first_seen"].to_numpy(), df["last_seen"].to_numpy())
        report.outside_window = int((~keep).sum())
        df = df[keep]
    port_proto = df["proto"].isin(PROTOCOLS_WITH_PORTS)
    if (~port_proto).any():
        counts = df.loc[~port_proto].groupby("proto")["connections"].sum()
        report.non_port_protocols = {str(k): int(v) for k, v in counts.items()}
    df = df[port_proto]
    # Loopback never leaves the pod (or node): no NetworkPolicy applies to it.
    ends = pd.concat([df["src_ip"], df["dst_ip"]]).unique()
    loop = {ip for ip in ends if _is_loopback(ip)}
    if loop:
        is_loop = df["src_ip"].isin(loop) | df["dst_ip"].isin(loop)
        report.loopback_connections = int(df.loc[is_loop, "connections"].sum())
        df = df[~is_loop]
    df = df.reset_index(drop=True)
    df, report.sightings_merged = merge_sightings(df)
    report.connections = int(df["connections"].sum())
    df = _orient(df, inventory, report)
    df = _credit_identities(df, inventory)
    resolver = _AddressResolver(inventory)
    src = resolver.classify_column(df["src_ip"], df["first_seen"], df["src_pod"], df["src_owner"])
    dst = resolver.classify_column(df["dst_ip"], df["first_seen"], df["dst_pod"], df["dst_owner"])
    n = len(df)
    # Built as object columns directly: pandas 3 would otherwise infer its Arrow string dtype
    # for every text column, and taking rows of those (the later stages filter) is slow.
    out = object_frame(
        {
            "src_kind": src[0],
            "src_namespace": src[1],
            "src_workload": src[2],
            "src_pod": src[3],
            "src_ip": df["src_ip"].to_numpy(),
            "src_port": df["src_port"].to_numpy(dtype=np.int64),
            "dst_kind": dst[0],
            "dst_namespace": dst[1],
            "dst_workload": dst[2],
            "dst_pod": dst[3],
            "dst_ip": df["dst_ip"].to_numpy(),
            "dst_port": df["dst_port"].to_numpy(dtype=np.int64),
            "proto": df["proto"].to_numpy(),
            "dst_service": np.full(n, "", dtype=object),
            "service_port": np.zeros(n, dtype=np.int64),
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
    out, report.credited_to_identity = _one_identity_per_connection(out)
    # A Service address can only be a destination; as a client it is a reply seen without its
    # request, or a capture artefact: never a peer of a rule.
    svc_src = out["src_kind"].to_numpy() == KIND_SERVICE
    if svc_src.any():
        for ip in out.loc[svc_src, "src_ip"].unique():
            resolver.unresolved.setdefault(ip, "a Service address as the client side (a reply seen without its request?)")
        out.loc[svc_src, "src_kind"] = KIND_UNRESOLVED
    out = resolver.expand_services(out, report)
    out, report.nat = merge_nat_sightings(out, node_addresses(inventory))
    unresolved = out[(out["src_kind"] == KIND_UNRESOLVED) | (out["dst_kind"] == KIND_UNRESOLVED)]
    report.unresolved_connections = int(unresolved["connections"].sum())
    report.unresolved.update(resolver.unresolved)
    report.ambiguous_ips.update(resolver.ambiguous)
    report.host_network_peers = resolver.host_network_peers
    report.entities = _entities(flows, resolver.entities)
    report.inferred_directions = int(df.loc[~df["direction_known"], "connections"].sum())
    report.denied_connections = int(out.loc[out["verdict"] == VERDICT_DENIED, "connections"].sum())
    return ResolveResult(out[RESOLVED_COLUMNS].reset_index(drop=True), report)


def _one_identity_per_connection(out: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One connection (the same addresses, ports and protocol) is one story: when one of its
    records names a pod at an end and another gives the node there (Cilium reports the reply
    of a proxied connection towards ``reserved:host``), the end is the pod."""
    key = ["src_ip", "src_port", "dst_ip", "dst_port", "proto"]
    fields = ("kind", "namespace", "workload", "pod")
    credited = 0
    has_ports = (out["src_port"].to_numpy() > 0) & (out["dst_port"].to_numpy() > 0)
    for side in ("src", "dst"):
        kind = out[f"{side}_kind"].to_numpy()
        pods = has_ports & (kind == KIND_POD)
        nodes = has_ports & (kind == KIND_NODE)
        if not (pods.any() and nodes.any()):
            continue
        cols = [f"{side}_{f}" for f in fields]
        named = out.loc[pods, key + cols].sort_values(cols).drop_duplicates(subset=key)
        hit = out.loc[nodes, key].reset_index().merge(named, on=key, how="inner")
        if hit.empty:
            continue
        if credited == 0:
            out = out.copy()
        for c in cols:
            out.loc[hit["index"].to_numpy(), c] = hit[c].to_numpy()
        credited += int(out.loc[hit["index"].to_numpy(), "connections"].sum())
    return out, credited


def describe_address(inventory: Inventory, endpoint: str) -> str:
    """What ``endpoint`` (a pod key or an address) is, in the words the summary uses: the one
    classification ``explain`` prints, made by the same resolver as ``generate``'s."""
    resolver = _AddressResolver(inventory)
    named = resolver._named_pod(endpoint)
    if named is not None:
        return f"pod {named.pod} of {named.workload}"
    if not endpoint or endpoint == "-":
        return "unresolved: no address"
    if not resolver._time_free(endpoint):
        holders = ", ".join(sorted(p.key for p in inventory.pods_at(endpoint)))
        return f"an address several pods held ({holders}): decided per flow by its time"
    ep = resolver.cache[endpoint]
    assert ep is not None
    if ep.kind == KIND_POD:
        return f"pod {ep.pod} of {ep.workload}"
    if ep.kind == KIND_NODE:
        return "node" + (f" ({ep.reason})" if ep.reason and ep.reason != endpoint else "")
    if ep.kind == KIND_SERVICE:
        svc = inventory.service_at(endpoint)
        return f"Service address of {svc.key}" if svc is not None else "Service address"
    if ep.kind == KIND_UNRESOLVED:
        return f"unresolved: {resolver.unresolved.get(endpoint, 'unknown to the inventory')}"
    return "external"


# ----- identities ------------------------------------------------------------------------------


def _credit_identities(df: pd.DataFrame, inventory: Inventory) -> pd.DataFrame:
    """Rows whose endpoint the source names by namespace and labels but no pod (Cilium's L7
    proxy speaking for a pod from the node's address, host-networked or terminating pods) get
    the key of a pod with exactly those labels, so that they resolve to its workload class and
    not to the address they came from."""
    out = df
    for side in ("src", "dst"):
        pod, ns, labels, wl = (df[f"{side}_{c}"] for c in ("pod", "namespace", "labels", "owner"))
        mask = ((pod == "") & (ns != "") & (labels != "") & ~wl.str.startswith("reserved:")).to_numpy()
        if not mask.any():
            continue
        keys = {pair: _pod_with_labels(inventory, *pair) for pair in set(zip(ns[mask], labels[mask], strict=True))}
        filled = np.array([keys[pair] for pair in zip(ns[mask], labels[mask], strict=True)], dtype=object)
        if out is df:
            out = df.copy()
        col = out[f"{side}_pod"].to_numpy(dtype=object).copy()
        col[mask] = filled
        out[f"{side}_pod"] = col
    return out


def _pod_with_labels(inventory: Inventory, namespace: str, labels_text: str) -> str:
    """The first (by key) pod of ``namespace`` whose stable labels are exactly these, or ""."""
    stable = _stable(text_to_labels(labels_text))
    if not stable:
        return ""
    exact = [p.key for p in inventory.pods_with_labels(namespace, stable)
             if not p.from_template and not p.host_network and _stable(p.labels) == stable]
    return min(exact) if exact else ""


def _stable(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not is_volatile(k, DEFAULT_VOLATILE_LABELS)}


# ----- orientation -----------------------------------------------------------------------------


def _server_endpoints(inventory: Inventory, ips: set[str]) -> set[tuple[str, int, str]]:
    """(ip, port, proto) where something in the inventory listens — container ports, Service
    ports and NodePorts — for the addresses in ``ips`` (those of rows without a seen client)."""
    out: set[tuple[str, int, str]] = set()
    for ip in ips:
        for p in inventory.pods_at(ip) + inventory.host_network_pods_at(ip):
            out.update((ip, cp.port, cp.protocol) for cp in p.ports)
        svc = inventory.service_at(ip)
        if svc is not None:
            out.update((ip, sp.port, sp.protocol) for sp in svc.ports)
    node_ips = [ip for ip in ips if inventory.node_at(ip) is not None]
    if node_ips:
        for s in inventory.services:
            for sp in s.ports:
                if sp.node_port:
                    out.update((ip, sp.node_port, sp.protocol) for ip in node_ips)
    return out


def _orient(df: pd.DataFrame, inventory: Inventory, report: ResolveReport) -> pd.DataFrame:
    """Swap rows whose client side was not seen when the inventory says the source is the server."""
    unknown = ~df["direction_known"].to_numpy(dtype=bool)
    if not unknown.any():
        return df
    sub = df.loc[unknown, ["src_ip", "src_port", "dst_ip", "dst_port", "proto"]]
    servers = _server_endpoints(inventory, set(sub["src_ip"].unique()) | set(sub["dst_ip"].unique()))
    if not servers:
        return df
    table = pd.DataFrame(sorted(servers), columns=["ip", "port", "proto"]).assign(_srv=True)
    table["port"] = table["port"].astype(sub["src_port"].dtype)

    def listens(ip_col: str, port_col: str) -> np.ndarray:
        hit = sub[[ip_col, port_col, "proto"]].merge(
            table, left_on=[ip_col, port_col, "proto"], right_on=["ip", "port", "proto"], how="left")
        return hit["_srv"].notna().to_numpy()

    src_is_server = listens("src_ip", "src_port") & ~listens("dst_ip", "dst_port")
    if not src_is_server.any():
        return df
    idx = sub.index[src_is_server]
    df = df.copy()
    for a, b in (("src_ip", "dst_ip"), ("src_port", "dst_port"), ("src_namespace", "dst_namespace"),
                 ("src_pod", "dst_pod"), ("src_labels", "dst_labels"), ("src_owner", "dst_owner")):
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
        self.entities: dict[str, set[str]] = {}

    def pod_endpoint(self, pod: Pod) -> Endpoint:
        ref = self.inv.workload_of(pod)
        return Endpoint(KIND_POD, pod.namespace, str(ref), pod.key)

    def classify_column(
        self, ips: pd.Series, times: pd.Series, pod_keys: pd.Series, workloads: pd.Series
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(kind, namespace, workload, pod) arrays for a column of addresses.

        In this order, each decided once per distinct value:
        1. a record that names a pod the inventory knows is that pod, whatever its address:
           a flow log's identity is per record, and addresses are reused over a window;
        2. a record with a ``reserved:`` identity and an address the inventory does not know
           is what the identity says (node, external; others unresolved); the answer is
           remembered for the address, so that records without the identity agree with it;
        3. everything else by address: pod, node (or hostNetwork pod), Service, external,
           unresolved; an address several pods held over time is decided row by row by time,
           and a pod that started after (or was deleted before) the record is not credited.
        """
        ip_arr = ips.to_numpy().astype(object)
        n = len(ip_arr)
        cols = [np.full(n, "", dtype=object) for _ in range(4)]
        pk_arr = pod_keys.to_numpy().astype(object)
        hints = workloads.to_numpy().astype(object)
        t_arr = times.to_numpy(dtype="float64")

        pk_codes, pk_uniques = pd.factorize(pk_arr)
        by_key = [self._named_pod(k) for k in pk_uniques]
        named = np.array([e is not None for e in by_key] + [False], dtype=bool)[pk_codes]
        if named.any():
            _fill(cols, np.flatnonzero(named), pk_codes[named], by_key)

        hint_codes, hint_uniques = pd.factorize(hints)
        is_reserved = np.array([str(h).startswith("reserved:") for h in hint_uniques] + [False], dtype=bool)[hint_codes]
        reserved_rows = is_reserved & ~named
        if reserved_rows.any():
            pairs = pd.DataFrame({"ip": ip_arr[reserved_rows], "hint": hints[reserved_rows]})
            pair_codes, pair_uniques = pd.factorize(pd.MultiIndex.from_frame(pairs))
            eps = [self._reserved_or_address(ip, hint) for ip, hint in pair_uniques]
            by_address = np.array([e is None for e in eps] + [False], dtype=bool)[pair_codes]
            idx = np.flatnonzero(reserved_rows)
            _fill(cols, idx[~by_address], pair_codes[~by_address], eps)
            reserved_rows = np.zeros(n, dtype=bool)
            reserved_rows[idx[by_address]] = True  # their address is known: decided below
        rest = ~named & (~is_reserved | reserved_rows)
        if not rest.any():
            return cols[0], cols[1], cols[2], cols[3]
        idx = np.flatnonzero(rest)
        codes, uniques = pd.factorize(ip_arr[idx])
        no_address = np.array([not ip or ip == "-" for ip in uniques] + [False], dtype=bool)[codes]
        per_ip = [None if (not ip or ip == "-") else (self.cache[ip] if self._time_free(ip) else None) for ip in uniques]
        fine = np.array([e is not None for e in per_ip] + [False], dtype=bool)[codes]
        _fill(cols, idx[fine], codes[fine], per_ip)
        self._check_lifetimes(cols, idx[fine], codes[fine], uniques, t_arr)
        for pos in np.flatnonzero(~fine):
            i = idx[pos]
            t = t_arr[i]
            at = None if t != t else float(t)
            if no_address[pos]:
                self.unresolved.setdefault(pk_arr[i] or "-", "no address and not in the inventory")
                e = Endpoint(KIND_UNRESOLVED, workload=pk_arr[i] or "-", reason="no address")
            else:
                e = self._by_time(ip_arr[i], at)
            cols[0][i], cols[1][i], cols[2][i], cols[3][i] = e.kind, e.namespace, e.workload, e.pod
        return cols[0], cols[1], cols[2], cols[3]

    def _named_pod(self, key: object) -> Endpoint | None:
        if not key:
            return None
        pod = self.inv.pod(str(key))
        return None if pod is None or pod.host_network else self.pod_endpoint(pod)

    def _reserved_or_address(self, ip: str, hint: str) -> Endpoint | None:
        """The endpoint a reserved identity gives ``ip``, or None when the inventory knows the
        address (a pod, node, hostNetwork pod or Service answers for it instead)."""
        if ip and ip != "-" and (self.inv.pods_at(ip) or self.inv.host_network_pods_at(ip)
                                 or self.inv.node_at(ip) is not None or self.inv.service_at(ip) is not None):
            return None
        ep = self._reserved(ip, hint)
        if ip and ip != "-" and ep.kind in (KIND_NODE, KIND_EXTERNAL):
            self.cache.setdefault(ip, ep)
        return ep

    def _check_lifetimes(self, cols: list[np.ndarray], rows: np.ndarray, codes: np.ndarray,
                         uniques: np.ndarray, times: np.ndarray) -> None:
        """Rows credited to the one pod at their address, from an inventory that dates the pod:
        a row from before the pod started (or after it was deleted) was some other holder of
        the address, which the snapshot cannot name: ambiguous, not credited."""
        dated: dict[int, tuple[float, float]] = {}
        for code, ip in enumerate(uniques):
            pods = self.inv.pods_at(ip) if ip else []
            if len(pods) == 1 and (pods[0].created is not None or pods[0].deleted is not None):
                p = pods[0]
                dated[code] = (p.created if p.created is not None else -np.inf,
                               p.deleted if p.deleted is not None else np.inf)
        if not dated:
            return
        lo = np.full(len(uniques) + 1, -np.inf)
        hi = np.full(len(uniques) + 1, np.inf)
        for code, (a, b) in dated.items():
            lo[code], hi[code] = a, b
        t = times[rows]
        outside = (t < lo[codes]) | (t > hi[codes])  # NaN times compare False: kept
        for i, code in zip(rows[outside], codes[outside], strict=True):
            ip = uniques[code]
            pod = self.inv.pods_at(ip)[0]
            why = (f"the inventory's pod {pod.key} at this address started after the flow"
                   if times[i] < lo[code] else f"the inventory's pod {pod.key} at this address was deleted before the flow")
            self.ambiguous.setdefault(ip, why)
            self.unresolved.setdefault(ip, why)
            cols[0][i], cols[1][i], cols[2][i], cols[3][i] = KIND_UNRESOLVED, "", ip, ""

    def _time_free(self, ip: str) -> bool:
        """True when ``ip`` resolves the same whatever the time (not an address pods shared)."""
        if not ip or ip == "-":
            return False
        if ip not in self.cache:
            self.cache[ip] = self._classify_new(ip)
        return self.cache[ip] is not None

    def _reserved(self, ip: str, hint: str) -> Endpoint:
        name = hint.split(":", 1)[1]
        if name in ("host", "remote-node", "kube-apiserver"):
            if ip and ip != "-":
                self.entities.setdefault(ip, set()).add(name)
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
            return Endpoint(KIND_SERVICE, workload=ip)
        if self.inv.in_cluster_range(ip):
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
        is_service = df["dst_kind"].to_numpy() == KIND_SERVICE
        is_node = df["dst_kind"].to_numpy() == KIND_NODE
        node_port_rows = np.zeros(len(df), dtype=bool)
        if is_node.any() and any(sp.node_port for s in self.inv.services for sp in s.ports):
            node_ports = {f"{sp.node_port}/{sp.protocol}" for s in self.inv.services for sp in s.ports if sp.node_port}
            port_proto = df["dst_port"].astype(str) + "/" + df["proto"].astype(str)
            node_port_rows = is_node & port_proto.isin(node_ports).to_numpy()
        via = is_service | node_port_rows
        if not via.any():
            return df
        direct = df[~via]
        targets = df.loc[via, ["dst_ip", "dst_port", "proto", "dst_kind"]].drop_duplicates()
        table: list[dict] = []
        for ip, port, proto, kind in targets.itertuples(index=False, name=None):
            backends = self._backends(ip, int(port), proto, kind == KIND_NODE)
            if not backends:
                svc = self.inv.service_at(ip)
                why = (f"Service {svc.key} has no backend for port {port}/{proto}" if svc else "NodePort without backends")
                self.unresolved.setdefault(f"{ip}:{port}/{proto}", why)
                backends = [(Endpoint(KIND_UNRESOLVED, workload=ip), int(port), "", 0)]
            for ep, target, svc_key, svc_port in backends:
                table.append({"dst_ip": ip, "dst_port": port, "proto": proto, "dst_kind": kind,
                              "_kind": ep.kind, "_ns": ep.namespace, "_wl": ep.workload, "_pod": ep.pod,
                              "_target": target, "_svc": svc_key, "_svc_port": svc_port})
        via_rows = df[via]
        report.service_connections += int(via_rows["connections"].sum())
        joined = via_rows.merge(pd.DataFrame(table), on=["dst_ip", "dst_port", "proto", "dst_kind"], how="inner")
        joined["dst_kind"], joined["dst_namespace"], joined["dst_workload"] = joined["_kind"], joined["_ns"], joined["_wl"]
        joined["dst_pod"], joined["dst_port"] = joined["_pod"], joined["_target"].astype("int64")
        joined["dst_service"], joined["service_port"] = joined["_svc"], joined["_svc_port"].astype("int64")
        return pd.concat([direct, joined[df.columns]], ignore_index=True)

    def _backends(self, ip: str, port: int, proto: str, node_port: bool) -> list[tuple[Endpoint, int, str, int]]:
        """(backend endpoint, target port, service key, service port), one per backend workload
        and target port (pods of one workload on one port are one policy peer)."""
        svc: Service | None
        sp: ServicePort | None
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


def _fill(cols: list[np.ndarray], rows: np.ndarray, codes: np.ndarray, endpoints: list) -> None:
    """Write the endpoints (one per distinct value, by code) into the rows of ``cols``."""
    if len(rows) == 0:
        return
    for col, name in zip(cols, ("kind", "namespace", "workload", "pod"), strict=True):
        values = np.array([("" if e is None else getattr(e, name)) for e in endpoints] + [""], dtype=object)
        col[rows] = values[codes]


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False
