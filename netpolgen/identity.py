"""Identity: the label selector that names exactly one workload's pods.

DESIGN.md: the owner's ``spec.selector`` when known, else the pods' labels minus volatile ones;
either way it must select exactly the workload's pods in the inventory. An empty selector (``{}``
means every pod) or one that also catches another workload's pods is never returned: the caller
gets the reason instead and reports it.

Workloads whose stable labels are equal are one *label class* (DESIGN.md): no selector can tell
them apart, so the class gets one selector that selects all of them, and the caller writes one
policy for it with the union of its members' traffic. Another workload that carries the class's
labels plus more is kept out with ``DoesNotExist`` on one of its extra keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from netpolgen.inventory import Inventory, WorkloadRef
from netpolgen.labels import DEFAULT_VOLATILE_LABELS, is_volatile
from netpolgen.selectors import LabelSelector, Requirement

__all__ = ["DEFAULT_VOLATILE_LABELS", "Identity", "IdentityResolver", "is_volatile"]

@dataclass(frozen=True)
class Identity:
    """A workload's selector, or why there is none."""

    ref: WorkloadRef
    selector: LabelSelector | None
    problem: str = ""
    # The label class ``ref`` belongs to: its members (``(ref,)`` when the selector is exact for
    # ``ref`` alone) and the one that names the class (the first member).
    members: tuple[WorkloadRef, ...] = ()
    reason: str = ""  # why the members could not be told apart

    @property
    def class_ref(self) -> WorkloadRef:
        return self.members[0] if self.members else self.ref

    @property
    def merged(self) -> bool:
        return len(self.members) > 1


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
            if self._selects(ref.namespace, sel) == own_keys:
                return Identity(ref, sel, members=(ref,))
            last_clash = self._selects(ref.namespace, sel) - own_keys
        if stable:
            found = self._label_class(ref, stable)
            if found is not None:
                return found
        others = sorted({str(self.inv.workload_of(p)) for p in self.inv.pods_in(ref.namespace) if p.key in last_clash})
        return Identity(
            ref, None,
            f"labels cannot tell {ref} apart from {', '.join(others) or 'other pods'}",
        )

    def _selects(self, namespace: str, sel: LabelSelector) -> set[str]:
        # matchLabels narrow through the label index; expressions are checked on what is left.
        return {p.key for p in self.inv.pods_with_labels(namespace, sel.match_labels) if sel.matches(p.labels)}

    def _stable_labels(self, ref: WorkloadRef) -> dict[str, str]:
        common = _common_labels([p.labels for p in self.inv.pods_of(ref)])
        return {k: v for k, v in common.items() if not is_volatile(k, self.volatile)}

    def _label_class(self, ref: WorkloadRef, stable: dict[str, str]) -> Identity | None:
        """``ref``'s label class: the workloads of its namespace whose stable labels equal its
        own, selected together, with pods that carry those labels plus more kept out by
        ``DoesNotExist`` on one of their extra keys. None when no selector does it."""
        ns = ref.namespace
        carriers = self.inv.pods_with_labels(ns, stable)
        members = sorted({w for w in (self.inv.workload_of(p) for p in carriers) if self._stable_labels(w) == stable})
        if ref not in members:
            return None
        class_pods = {p.key for w in members for p in self.inv.pods_of(w)}
        class_keys = {k for p in carriers if p.key in class_pods for k in p.labels}
        excluded: set[str] = set()
        for p in carriers:
            if p.key in class_pods or any(k in p.labels for k in excluded):
                continue
            extra = sorted(k for k in p.labels if k not in class_keys and not is_volatile(k, self.volatile))
            if not extra:
                return None  # the same keys, other values only where the class varies: no selector
            excluded.add(extra[0])
        sel = LabelSelector(
            match_labels=tuple(sorted(stable.items())),
            match_expressions=tuple(Requirement(k, "DoesNotExist") for k in sorted(excluded)),
        )
        if self._selects(ns, sel) != class_pods:
            return None
        if len(members) == 1:
            return Identity(ref, sel, members=(ref,))
        shown = ", ".join(f"{k}={v}" for k, v in sorted(stable.items()))
        reason = (f"identical labels ({shown}) and no owner tells them apart: "
                  f"one selector selects all {len(members)}")
        return Identity(ref, sel, members=tuple(members), reason=reason)


def _common_labels(label_sets: list[dict[str, str]]) -> dict[str, str]:
    if not label_sets:
        return {}
    common = dict(label_sets[0])
    for labels in label_sets[1:]:
        common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common
