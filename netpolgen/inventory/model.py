"""The inventory model: plain frozen records for the Kubernetes objects netpolgen needs.

Only what resolution, synthesis and the policy engine use is kept. Parsing lives in
``loader.py``; queries ("what is at this IP, at this time") live in ``index.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netpolgen.selectors import LabelSelector

# Controllers whose pods netpolgen groups into one workload, and what each may be owned by.
WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
                  "ReplicationController")


# The owner kind of an identity-only endpoint: a namespace and labels a flow log named without a
# pod (netpolgen.inventory.from_flows). It is selected by its labels like any workload.
IDENTITY_KIND = "Identity"


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str = ""


@dataclass(frozen=True)
class OwnerRef:
    kind: str
    name: str
    uid: str = ""
    controller: bool = False


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    ips: tuple[str, ...] = ()
    host_ip: str = ""
    host_network: bool = False
    node_name: str = ""
    ports: tuple[ContainerPort, ...] = ()
    owners: tuple[OwnerRef, ...] = ()
    uid: str = ""
    created: float | None = None  # unix seconds
    deleted: float | None = None  # deletionTimestamp, when the snapshot caught it terminating
    phase: str = ""
    # True for a pod made up from a workload's pod template, when the inventory holds the
    # controller but none of its pods (manifests rather than a live snapshot).
    from_template: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        """The container port called ``name`` for ``protocol``, or None."""
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


@dataclass(frozen=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str = 0  # a number, or the name of a container port on the backends
    node_port: int = 0


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...] = ()
    selector: dict[str, str] | None = field(default=None, hash=False, compare=False)
    ports: tuple[ServicePort, ...] = ()
    type: str = "ClusterIP"
    external_ips: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    pod: str = ""  # "namespace/name" of the targetRef when it is a Pod
    ready: bool = True


@dataclass(frozen=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str
    ports: tuple[ContainerPort, ...] = ()  # name, port (the target port), protocol
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class Workload:
    """A pod controller (Deployment, StatefulSet, ...) from the inventory."""

    kind: str
    namespace: str
    name: str
    selector: LabelSelector | None = None
    template_labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    template_ports: tuple[ContainerPort, ...] = ()
    template_host_network: bool = False
    owners: tuple[OwnerRef, ...] = ()
    uid: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def ref(self) -> "WorkloadRef":
        return WorkloadRef(self.kind, self.namespace, self.name)


@dataclass(frozen=True, order=True)
class WorkloadRef:
    """What a policy is about: the controller at the top of a pod's owner chain, or the pod."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}[{self.kind}]"


@dataclass(frozen=True)
class Node:
    name: str
    addresses: tuple[str, ...] = ()
    pod_cidrs: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
