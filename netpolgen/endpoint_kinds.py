"""What an endpoint is once resolved: the ``*_kind`` values of the resolved and edge tables.

Defined below resolution so that aggregation, synthesis and reports read them without
importing the resolver.
"""

from __future__ import annotations

KIND_POD = "pod"  # a pod IP: the pod and the workload at the top of its owner chain
KIND_NODE = "node"  # a node address or a hostNetwork pod (policies reach it by address only)
KIND_EXTERNAL = "external"  # outside the cluster's pod and service ranges
KIND_UNRESOLVED = "unresolved"  # inside those ranges but unknown: never becomes a rule
KIND_SERVICE = "service"  # transient: replaced by the Service's backends before resolution ends
