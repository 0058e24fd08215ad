"""Validation of every kind netpolgen writes: NetworkPolicy against the Kubernetes OpenAPI
schema, the others against the JSON schemas in ``../shared/schemas`` (Cilium's CRDs and the
network-policy-api ClusterNetworkPolicy CRD; their sources are in SOURCE.txt there)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema

from tests.conftest import REPO
from tests.schema import assert_valid_networkpolicy

SCHEMAS = REPO.parent / "shared" / "schemas"
SCHEMA_FILES = {
    "CiliumNetworkPolicy": "ciliumnetworkpolicy_v2.json",
    "CiliumClusterwideNetworkPolicy": "ciliumclusterwidenetworkpolicy_v2.json",
    "ClusterNetworkPolicy": "clusternetworkpolicy_v1alpha2.json",
}
API_VERSIONS = {
    "CiliumNetworkPolicy": "cilium.io/v2",
    "CiliumClusterwideNetworkPolicy": "cilium.io/v2",
    "ClusterNetworkPolicy": "policy.networking.k8s.io/v1alpha2",
}


@lru_cache(maxsize=None)
def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / SCHEMA_FILES[kind]).read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def assert_valid_document(doc: dict) -> None:
    """Fail unless ``doc`` is a valid document of its kind (NetworkPolicy included)."""
    kind = doc.get("kind")
    if kind == "NetworkPolicy":
        assert_valid_networkpolicy(doc)
        return
    assert kind in SCHEMA_FILES, f"netpolgen wrote an unexpected kind {kind!r}"
    assert doc["apiVersion"] == API_VERSIONS[kind]
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, f"{kind} {doc['metadata'].get('name')}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
    if kind == "CiliumNetworkPolicy":
        assert doc["metadata"].get("namespace"), "a CiliumNetworkPolicy is namespaced"
    else:
        assert "namespace" not in doc["metadata"], f"a {kind} is cluster-scoped"


def schemas_present() -> bool:
    return all((SCHEMAS / f).is_file() for f in SCHEMA_FILES.values())


def load_tree(root: Path) -> list[dict]:
    import yaml

    return [yaml.safe_load(p.read_text()) for p in sorted(root.rglob("*.yaml"))]
