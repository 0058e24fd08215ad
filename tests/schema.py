"""Validation against the official Kubernetes OpenAPI schema (kubernetes-validate ships it)."""

from __future__ import annotations

import kubernetes_validate

K8S_VERSION = kubernetes_validate.latest_version()


def assert_valid_networkpolicy(obj: dict) -> None:
    """Raise (failing the test) unless ``obj`` is a valid networking.k8s.io/v1 NetworkPolicy.

    ``strict`` rejects unknown fields, which is where a hand-built dict usually goes wrong.
    """
    assert obj["kind"] == "NetworkPolicy"
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
