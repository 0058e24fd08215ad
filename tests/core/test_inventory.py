"""Inventory loading: kubectl JSON and YAML manifests in, clear errors for anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from netpolgen.errors import InventoryError
from netpolgen.inventory import WorkloadRef, load_inventory
from tests import kube, shop


def test_kubectl_list_json_and_multi_document_yaml_give_the_same_inventory(tmp_path: Path) -> None:
    objs = shop.objects()
    (tmp_path / "inv.json").write_text(json.dumps(kube.as_list(objs)))
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump_all(objs))
    a, b = load_inventory([str(tmp_path / "inv.json")]), load_inventory([str(tmp_path / "inv.yaml")])
    assert sorted(p.key for p in a.pods) == sorted(p.key for p in b.pods)
    assert a.workload_refs() == b.workload_refs()
    assert WorkloadRef("StatefulSet", "data", "postgres") in a.workload_refs()


def test_typed_lists_without_item_kinds_are_understood(tmp_path: Path) -> None:
    pods = [o for o in shop.objects() if o["kind"] == "Pod"]
    for p in pods:
        del p["kind"]
    (tmp_path / "pods.json").write_text(json.dumps({"apiVersion": "v1", "kind": "PodList", "items": pods}))
    assert len(load_inventory([str(tmp_path / "pods.json")]).pods) == len(pods)


def test_deployment_owner_is_found_from_pod_template_hash_without_the_replicaset(tmp_path: Path) -> None:
    pod = kube.rs_pod("ns", "web", "x", "10.0.0.1", {"app": "web"})
    (tmp_path / "p.json").write_text(json.dumps(pod))
    inv = load_inventory([str(tmp_path / "p.json")])
    assert inv.workload_of(inv.pods[0]) == WorkloadRef("Deployment", "ns", "web")


def test_manifests_without_pods_stand_in_by_their_pod_template(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(yaml.safe_dump_all(kube.deployment("ns", "web", {"app": "web"})[:1]))
    inv = load_inventory([str(tmp_path / "d.yaml")])
    assert [(p.key, p.from_template, p.labels) for p in inv.pods] == [("ns/web", True, {"app": "web"})]
    assert inv.workload_refs() == [WorkloadRef("Deployment", "ns", "web")]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty file"),
        (b"\x00\x01\x02\xff\xfe", "not UTF-8 text"),
        (b'{"kind": "Pod", "metadata": ', "invalid JSON"),
        (b"key: [unclosed\n", "invalid YAML"),
        (b"just: a mapping\n", "not a Kubernetes object (no 'kind')"),
    ],
)
def test_bad_inventory_files_raise_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "inv"
    f.write_bytes(content)
    with pytest.raises(InventoryError) as exc:
        load_inventory([str(f)])
    assert message in exc.value.line()
    assert exc.value.file == str(f)


def test_a_missing_inventory_file_is_an_error() -> None:
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(["/nonexistent/inventory.json"])


def test_samples_from_np_guard_load(samples: Path) -> None:
    inv = load_inventory([str(samples / "netpol-analyzer/tests/onlineboutique")])
    assert len(inv.pods) == 12 and len(inv.policies) == 11
    assert inv.skipped_files  # the expected-output JSON in that folder is skipped, and said
