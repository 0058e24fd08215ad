"""What every renderer names alike: a workload's policy name, its annotations (the workload,
the DNS names of its egress peers, widened CIDRs, the label class it stands for) and the
managed-by label, so that the kinds of one run name the same policy the same way."""

from __future__ import annotations

import os.path
from collections import defaultdict

from netpolgen.inventory.model import WorkloadRef
from netpolgen.model import WorkloadRules

MANAGED_BY = {"app.kubernetes.io/managed-by": "netpolgen"}


def policy_name_and_annotations(w: WorkloadRules) -> tuple[str, dict[str, str]]:
    """(the name after ``allow-``, the annotations) of ``w``'s policy."""
    annotations = {"netpolgen.io/workload": str(w.subject)}
    if w.dns_names:
        annotations["netpolgen.io/egress-dns-names"] = "; ".join(w.dns_names)
    if w.widening:
        annotations["netpolgen.io/cidr-widening"] = "; ".join(w.widening)
    name = w.subject.name
    if w.members:
        annotations["netpolgen.io/label-class"] = ", ".join(str(m) for m in w.members)
        annotations["netpolgen.io/label-class-reason"] = w.merge_reason
        name = class_name(w.members)
    return name, annotations


def class_name(members: tuple[WorkloadRef, ...]) -> str:
    """A label class's policy is named after what its members' names share (the DaemonSet
    ``node-local-dns`` of pods ``node-local-dns-6jnx9``, ``node-local-dns-88zrp``), else after
    its first member."""
    common = os.path.commonprefix([m.name for m in members]).rstrip("-.")
    return common if len(common) >= 3 else members[0].name


def disambiguate_names(policies: list[dict]) -> None:
    """Two workloads of different kinds may share a name (Deployment x, StatefulSet x)."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for p in policies:
        seen[(p["metadata"]["namespace"], p["metadata"]["name"])] += 1
    for p in policies:
        key = (p["metadata"]["namespace"], p["metadata"]["name"])
        wl = p["metadata"].get("annotations", {}).get("netpolgen.io/workload")
        if seen[key] > 1 and wl:
            kind = wl.rpartition("[")[2].rstrip("]").lower()
            p["metadata"]["name"] = f"{p['metadata']['name']}-{kind}"
