"""Cluster inventory: model, loading, and address/ownership lookups."""

from netpolgen.inventory.index import Backend, Inventory, RawPolicy
from netpolgen.inventory.loader import inventory_from_objects, iter_documents, load_inventory
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
    "Service", "ServicePort", "Workload", "WorkloadRef", "inventory_from_objects", "iter_documents",
    "load_inventory",
]
