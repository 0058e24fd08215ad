"""Cluster inventory: model, loading, and address/ownership lookups."""

from netpolgen.inventory.index import Backend, Inventory, RawPolicy
from netpolgen.inventory.loader import iter_documents, load_inventory
from netpolgen.inventory.model import (
    ContainerPort,
    Namespace,
    Node,
    OwnerRef,
    Pod,
    Service,
    ServicePort,
    Workload,
    WorkloadRef,
)

__all__ = [
    "Backend", "ContainerPort", "Inventory", "Namespace", "Node", "OwnerRef", "Pod", "RawPolicy",
    "Service", "ServicePort", "Workload", "WorkloadRef", "iter_documents", "load_inventory",
]
