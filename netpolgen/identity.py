"""Identity: the label selector that names exactly one workload's pods.

DESIGN.md: the owner's ``spec.selector`` when known, else the pods' labels minus volatile ones;
either way it must select exactly the workload's pods in the inventory. An empty selector (``{}``
means every pod) or one that also catches another workload's pods is never returned: the caller
gets the reason instead and reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from netpolgen.inventory import Inventory, WorkloadRef
from netpolgen.selectors import LabelSelector

#: Labels Kubernetes controllers add per pod or per revision: selecting on them would pin a policy
#: to one rollout or one pod.
DEFAULT_VOLATILE_LABELS: tuple[str, ...] = (
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "job-name",
    "controller-uid",
    "batch.kubernetes.io/*",
)


def is_volatile(key: str, volatile: tuple[str, ...]) -> bool:
    for pattern in volatile:
        if pattern.endswith("*") and key.startswith(pattern[:-1]):
            return True
        if key == pattern:
            return True
    return False


@dataclass(frozen=True)
class Identity:
    """A workload's selector, or why there is none."""

    ref: WorkloadRef
    selector: LabelSelector | None
    problem: str = ""


class IdentityResolver:
    """Computes and caches selectors for the workloads of one inventory."""

    def __init__(self, inventory: Inventory, volatile: tuple[str, ...] = DEFAULT_VOLATILE_LABELS) -> None:
        self.inv = inventory
        self.volatile = volatile
        self._cache: dict[WorkloadRef, Identity] = {}

    def identity(self, ref: WorkloadRef) -> Identity:
        if ref not in self._cache:
            self._cache[ref] = self._compute(ref)
        return self._cache[ref]

    def _compute(self, ref: WorkloadRef) -> Identity:
        own = self.inv.pods_of(ref)
        if not own:
            return Identity(ref, None, f"{ref} has no pods in the inventory")
        candidates: list[LabelSelector] = []
        w = self.inv.workload(ref)
        if w is not None and w.selector is not None and not w.selector.is_empty:
            candidates.append(w.selector)
        common = _common_labels([p.labels for p in own])
        stable = {k: v for k, v in common.items() if not is_volatile(k, self.volatile)}
        if stable:
            candidates.append(LabelSelector.from_labels(stable))
        if not candidates:
            return Identity(ref, None, f"{ref}: its pods have no stable labels to select them by")
        own_keys = {p.key for p in own}
        last_clash: set[str] = set()
        for sel in candidates:
            # matchLabels narrow through the label index; expressions are checked on what is left.
            matched = {p.key for p in self.inv.pods_with_labels(ref.namespace, sel.match_labels) if sel.matches(p.labels)}
            if matched == own_keys:
                return Identity(ref, sel)
            last_clash = matched - own_keys
        others = sorted({str(self.inv.workload_of(p)) for p in self.inv.pods_in(ref.namespace) if p.key in last_clash})
        return Identity(
            ref, None,
            f"labels cannot tell {ref} apart from {', '.join(others) or 'other pods'}",
        )


def _common_labels(label_sets: list[dict[str, str]]) -> dict[str, str]:
    if not label_sets:
        return {}
    common = dict(label_sets[0])
    for labels in label_sets[1:]:
        common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common
