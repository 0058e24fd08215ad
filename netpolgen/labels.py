"""Which pod labels a selector may use: the volatile ones Kubernetes controllers add per pod or
per revision are never selected on (DESIGN.md, "Identity"). Shared by the flow-log inventory,
resolution and identity, below all of them in the pipeline.
"""

from __future__ import annotations

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
