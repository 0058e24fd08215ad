"""The Inventory: every object of a cluster snapshot plus the lookups resolution needs.

"What is at this IP (at this time)", "which workload owns this pod", "which pods back this
Service port, and on which target port". Built once from the loaded objects; read-only after.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import defaultdict
from dataclasses import dataclass, field

from netpolgen.inventory.model import (
    IDENTITY_KIND,
    ContainerPort,
    EndpointSlice,
    Namespace,
    Node,
    OwnerRef,
    Pod,
    Service,
    ServicePort,
    Workload,
    WorkloadRef,
)

# Controllers that are themselves owned by another controller (their pods belong to the owner).
_OWNED_BY = {"ReplicaSet": "Deployment", "Job": "CronJob"}
# Top-level controllers whose pod template stands for the workload when no pods are listed.
_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "ReplicaSet",
                   "ReplicationController")


@dataclass(frozen=True)
class RawPolicy:
    """A NetworkPolicy document found in an inventory file, kept for the policy layer."""

    file: str
    where: str
    obj: dict = field(hash=False, compare=False)


@dataclass(frozen=True)
class Backend:
    """One backend of a Service port: the pod and the port it really listens on."""

    pod: Pod
    port: int
    protocol: str


class Inventory:
    """A cluster snapshot with lookups. Construct through ``load_inventory``."""

    def __init__(
        self,
        namespaces: dict[str, Namespace] | None = None,
        pods: list[Pod] | None = None,
        services: list[Service] | None = None,
        endpoint_slices: list[EndpointSlice] | None = None,
        workloads: list[Workload] | None = None,
        nodes: list[Node] | None = None,
        policies: list[RawPolicy] | None = None,
        ignored_kinds: dict[str, int] | None = None,
        skipped_files: list[str] | None = None,
    ) -> None:
        self.services = list(services or [])
        self.endpoint_slices = list(endpoint_slices or [])
        self.workloads: dict[tuple[str, str, str], Workload] = {}
        for w in workloads or []:
            self.workloads[(w.kind, w.namespace, w.name)] = w
        self.nodes = list(nodes or [])
        self.policies = list(policies or [])
        self.ignored_kinds = dict(ignored_kinds or {})
        self.skipped_files = list(skipped_files or [])
        # workload text -> how its owner was inferred (flow logs without owner data)
        self.inferred_owners: dict[str, str] = {}

        real_pods = list(pods or [])
        self._workload_of: dict[str, WorkloadRef] = {}
        for p in real_pods:
            self._workload_of[p.key] = self._top_owner(p)
        template_pods = self._template_pods()
        self.pods: list[Pod] = real_pods + template_pods

        self.namespaces: dict[str, Namespace] = dict(namespaces or {})
        for ns in {p.namespace for p in self.pods} | {s.namespace for s in self.services} | {
            w.namespace for w in self.workloads.values()
        }:
            if ns not in self.namespaces:
                # Namespace objects are often left out of a snapshot; the API server would have
                # given this label to the namespace, so policies may rely on it.
                self.namespaces[ns] = Namespace(ns, {"kubernetes.io/metadata.name": ns})

        self._pods_by_ip: dict[str, list[Pod]] = defaultdict(list)
        self._host_network_by_ip: dict[str, list[Pod]] = defaultdict(list)
        for p in real_pods:
            for ip in p.ips:
                (self._host_network_by_ip if p.host_network else self._pods_by_ip)[ip].append(p)
        # Template pods answer to their workload's "ns/name" unless a real pod has that name.
        self._pods_by_key = {p.key: p for p in template_pods}
        self._pods_by_key.update({p.key: p for p in real_pods})
        self._services_by_ip: dict[str, Service] = {}
        for s in self.services:
            for ip in s.cluster_ips + s.external_ips:
                self._services_by_ip[ip] = s
        self._node_by_ip: dict[str, Node] = {}
        for n in self.nodes:
            for ip in n.addresses:
                self._node_by_ip[ip] = n
        for p in real_pods:
            if p.host_ip and p.host_ip not in self._node_by_ip:
                self._node_by_ip[p.host_ip] = Node(p.node_name or p.host_ip, (p.host_ip,))
        self._slices_by_service: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        for es in self.endpoint_slices:
            if es.service_name:
                self._slices_by_service[(es.namespace, es.service_name)].append(es)
        self._pods_by_workload: dict[WorkloadRef, list[Pod]] = defaultdict(list)
        for p in self.pods:
            self._pods_by_workload[self.workload_of(p)].append(p)
        self._cluster_networks = self._infer_cluster_networks()
        # Inverted label index per namespace: (key, value) -> pod positions. Selecting by labels
        # is then a set intersection, not a scan of every pod (20,000-pod inventories).
        self._pods_by_ns: dict[str, list[Pod]] = {}
        self._label_index: dict[str, dict[tuple[str, str], set[int]]] = {}  # plain dicts: picklable for Dask
        for p in self.pods:
            ns_pods = self._pods_by_ns.setdefault(p.namespace, [])
            ns_index = self._label_index.setdefault(p.namespace, {})
            for kv in p.labels.items():
                ns_index.setdefault(kv, set()).add(len(ns_pods))
            ns_pods.append(p)

    def pods_in(self, namespace: str) -> list[Pod]:
        return list(self._pods_by_ns.get(namespace, []))

    def pods_with_labels(self, namespace: str, labels: dict[str, str] | tuple[tuple[str, str], ...]) -> list[Pod]:
        """Pods of ``namespace`` carrying every ``labels`` pair (all its pods when empty)."""
        pods = self._pods_by_ns.get(namespace, [])
        items = list(labels.items()) if isinstance(labels, dict) else list(labels)
        if not items:
            return list(pods)
        index = self._label_index.get(namespace, {})
        postings = sorted((index.get(kv, set()) for kv in items), key=len)
        hit = set(postings[0])
        for other in postings[1:]:
            hit &= other
        return [pods[i] for i in sorted(hit)]

    # ----- ownership -------------------------------------------------------------------------

    @staticmethod
    def _template_key(pod: Pod, _w: Workload | None) -> str:
        return f"template:{pod.namespace}/{pod.name}/{pod.owners[0].kind if pod.owners else ''}"

    def workload_of(self, pod: Pod) -> WorkloadRef:
        """The workload a pod belongs to: the controller at the top of its owner chain."""
        if pod.from_template:
            return self._workload_of[self._template_key(pod, None)]
        ref = self._workload_of.get(pod.key)
        return ref if ref is not None else self._top_owner(pod)

    def _template_pods(self) -> list[Pod]:
        """Workloads with no pods in the snapshot stand in by their pod template, so that a
        manifests-only inventory can still be reasoned about (the engine needs pods). Each is
        recorded as its workload's in ``_workload_of``."""
        covered = set(self._workload_of.values())
        template_pods: list[Pod] = []
        for w in self.workloads.values():
            if w.kind not in _TEMPLATE_KINDS or w.owners and any(o.kind in _TEMPLATE_KINDS for o in w.owners):
                continue
            if w.ref in covered:
                continue
            tp = Pod(
                namespace=w.namespace,
                name=w.name,
                labels=dict(w.template_labels),
                ports=w.template_ports,
                host_network=w.template_host_network,
                owners=(OwnerRef(w.kind, w.name, w.uid, True),),
                from_template=True,
            )
            template_pods.append(tp)
            self._workload_of[self._template_key(tp, w)] = w.ref
        return template_pods

    def _top_owner(self, pod: Pod) -> WorkloadRef:
        owner = next((o for o in pod.owners if o.controller), pod.owners[0] if pod.owners else None)
        if owner is not None and owner.kind == IDENTITY_KIND:
            return WorkloadRef(IDENTITY_KIND, pod.namespace, owner.name)
        if owner is None or owner.kind not in ("ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"):
            return WorkloadRef("Pod", pod.namespace, pod.name)
        kind, name = owner.kind, owner.name
        for _ in range(4):  # owner chains are short; the bound guards against cycles
            w = self.workloads.get((kind, pod.namespace, name))
            if w is None:
                return self._guess_parent(kind, pod, name)
            parent = next((o for o in w.owners if o.kind in _TEMPLATE_KINDS), None)
            if parent is None:
                return WorkloadRef(kind, pod.namespace, name)
            kind, name = parent.kind, parent.name
        return WorkloadRef(kind, pod.namespace, name)

    def _guess_parent(self, kind: str, pod: Pod, name: str) -> WorkloadRef:
        """The owner of a controller the snapshot does not hold, from Kubernetes' naming rules."""
        if kind == "ReplicaSet":
            h = pod.labels.get("pod-template-hash")
            if h and name.endswith("-" + h):
                return WorkloadRef("Deployment", pod.namespace, name[: -len(h) - 1])
        if kind == "Job":
            # CronJob jobs are named <cronjob>-<minutes since epoch>.
            base, _, suffix = name.rpartition("-")
            if base and suffix.isdigit() and ("CronJob", pod.namespace, base) in self.workloads:
                return WorkloadRef("CronJob", pod.namespace, base)
        return WorkloadRef(kind, pod.namespace, name)

    def pods_of(self, ref: WorkloadRef) -> list[Pod]:
        return list(self._pods_by_workload.get(ref, []))

    def workload(self, ref: WorkloadRef) -> Workload | None:
        return self.workloads.get((ref.kind, ref.namespace, ref.name))

    def workload_refs(self) -> list[WorkloadRef]:
        return sorted(self._pods_by_workload)

    def pod(self, key: str) -> Pod | None:
        return self._pods_by_key.get(key)

    def namespace_labels(self, name: str) -> dict[str, str]:
        ns = self.namespaces.get(name)
        return dict(ns.labels) if ns else {"kubernetes.io/metadata.name": name}

    # ----- addresses -------------------------------------------------------------------------

    def pods_at(self, ip: str, at: float | None = None) -> list[Pod]:
        """Pods (not hostNetwork) that had ``ip``; narrowed to those alive at ``at`` if given."""
        pods = self._pods_by_ip.get(ip, [])
        if at is None or len(pods) <= 1:
            return list(pods)
        alive = [p for p in pods if (p.created is None or p.created <= at) and (p.deleted is None or at <= p.deleted)]
        if len(alive) > 1:
            # Several pods claim the address at once (a snapshot merged from several times):
            # the most recently created before ``at`` holds it.
            dated = [p for p in alive if p.created is not None]
            if len(dated) == len(alive):
                return [max(dated, key=lambda p: p.created or 0.0)]
        return alive

    def host_network_pods_at(self, ip: str) -> list[Pod]:
        return list(self._host_network_by_ip.get(ip, []))

    def service_at(self, ip: str) -> Service | None:
        return self._services_by_ip.get(ip)

    def node_at(self, ip: str) -> Node | None:
        return self._node_by_ip.get(ip)

    def service_by_nodeport(self, port: int, protocol: str) -> tuple[Service, ServicePort] | None:
        for s in self.services:
            for sp in s.ports:
                if sp.node_port == port and sp.protocol == protocol:
                    return s, sp
        return None

    def in_cluster_range(self, ip: str) -> bool:
        """True when ``ip`` lies in a pod or service range of this cluster."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self._cluster_networks if net.version == addr.version)

    def _infer_cluster_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Pod and service ranges: node podCIDRs, plus the /16 (IPv6: /64) around every known pod
        address outside them and every ClusterIP, the usual allocation granularity. An unknown
        address in these ranges is reported as unresolved, never made an ipBlock; --cluster-cidr
        adds ranges."""
        nets: set = set()
        for n in self.nodes:
            for c in n.pod_cidrs:
                try:
                    nets.add(ipaddress.ip_network(c, strict=False))
                except ValueError:
                    pass
        # podCIDRs cover the pods where the CNI allocates from them; pods outside them (Calico
        # IPAM pools, cloud VPC CNIs) bring their own /16 (IPv6: /64). IPv4 is done on integers:
        # 20,000-pod inventories make ipaddress objects per pod the slow part.
        v4_cidrs = [(int(n.network_address), int(n.netmask)) for n in nets if n.version == 4]
        v6_cidrs = [n for n in nets if n.version == 6]
        v4_prefixes: set[int] = set()
        pod_ips = [ip for p in self.pods if not p.host_network for ip in p.ips]
        service_ips = [ip for s in self.services for ip in s.cluster_ips]
        for ip, is_pod in [(ip, True) for ip in pod_ips] + [(ip, False) for ip in service_ips]:
            value = _ipv4_int(ip)
            if value is not None:
                if not (is_pod and any(value & mask == net for net, mask in v4_cidrs)):
                    v4_prefixes.add(value & 0xFFFF0000)
            elif not (is_pod and any(ipaddress.ip_address(ip) in n for n in v6_cidrs)):
                nets.add(ipaddress.ip_network(f"{ip}/64", strict=False))
        nets.update(ipaddress.ip_network((value, 16)) for value in v4_prefixes)
        return sorted(nets, key=lambda n: (n.version, n))

    def add_cluster_network(self, cidr: str) -> None:
        self._cluster_networks.append(ipaddress.ip_network(cidr, strict=False))

    # ----- services --------------------------------------------------------------------------

    def service_backends(self, service: Service, port: ServicePort) -> list[Backend]:
        """Backend pods of one Service port with the port each really listens on.

        A selector Service's backends are its namespace's pods whose labels match; a named
        targetPort resolves per pod (pods of one Service may number the port differently).
        A Service without a selector takes its EndpointSlices.
        """
        out: list[Backend] = []
        if service.selector:
            for p in self.pods_with_labels(service.namespace, service.selector):
                if not p.from_template:
                    target = self._target_port(p, port)
                    if target is not None:
                        out.append(Backend(p, target, port.protocol))
            if out:
                return out
        for es in self._slices_by_service.get((service.namespace, service.name), []):
            es_port = next((pp for pp in es.ports if pp.name == port.name and pp.protocol == port.protocol), None)
            if es_port is None and len(es.ports) == 1:
                es_port = es.ports[0]
            if es_port is None:
                continue
            for e in es.endpoints:
                pod = self._pods_by_key.get(e.pod) if e.pod else None
                if pod is None:
                    for ip in e.addresses:
                        cands = self.pods_at(ip)
                        if len(cands) == 1:
                            pod = cands[0]
                            break
                if pod is not None:
                    out.append(Backend(pod, es_port.port, es_port.protocol))
        return out

    @staticmethod
    def _target_port(pod: Pod, port: ServicePort) -> int | None:
        tp = port.target_port
        if isinstance(tp, int):
            return tp or port.port
        return pod.named_port(tp, port.protocol)

    def template_ports(self, pod: Pod) -> tuple[ContainerPort, ...]:
        return pod.ports

    def service_ports_at(self, ip: str) -> set[tuple[int, str]]:
        s = self.service_at(ip)
        return {(p.port, p.protocol) for p in s.ports} if s else set()


def _ipv4_int(ip: str) -> int | None:
    """The integer of a dotted-quad IPv4 address, or None (IPv6)."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except OSError:
        return None
