"""Reading the inventory from a live cluster: the real ``kubernetes`` client against a small fake
API server on 127.0.0.1 that pages its lists, forbids one kind and checks the bearer token."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("kubernetes")

from netpolgen.errors import InventoryError  # noqa: E402
from netpolgen.inventory import Inventory, inventory_from_objects  # noqa: E402
from netpolgen.inventory.live import (  # noqa: E402
    RESOURCES,
    ClusterReader,
    fetch_cluster_objects,
    load_live_inventory,
)
from tests import shop  # noqa: E402

TOKEN = "good-token"
PLURALS = {(r.api_version, r.plural): r.kind for r in RESOURCES}


def cluster_objects() -> list[dict]:
    """The shop cluster plus the kinds it lacks: a CronJob with its Job, an EndpointSlice and a
    NetworkPolicy, so every listed kind has something to page through."""
    objs = shop.objects()
    template = {"metadata": {"labels": {"app": "report"}}, "spec": {"containers": [{"name": "c"}]}}
    objs += [
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "shop", "uid": "cj-uid"},
         "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}},
        {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": "report-1", "namespace": "shop", "uid": "job-uid",
                      "ownerReferences": [{"kind": "CronJob", "name": "report", "uid": "cj-uid", "controller": True}]},
         "spec": {"template": template}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "redis-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "redis"}},
         "addressType": "IPv4", "ports": [{"name": "p0", "port": 6379, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.244.1.30"], "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "namespace": "shop", "name": "redis-x"}}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "default-deny", "namespace": "shop"},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
    ]
    return objs


class FakeApiServer:
    """Serves the list (and namespace read) endpoints the client calls, from ``objects``.

    Lists honour ``limit`` with an opaque ``continue`` token bound to the path; ``forbidden``
    plurals answer 403; a wrong bearer token answers 401. Every request is logged."""

    def __init__(self, objects: list[dict], forbidden: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.objects = objects
        self.forbidden = set(forbidden)
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def use_tls(self, cert: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = self.url.replace("http://", "https://")

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query)
        self.requests.append((url.path, query))
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.status(h, 401, "Unauthorized", "Unauthorized")
        parts = url.path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            api_version, rest = "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return self.status(h, 404, "NotFound", "the server could not find the requested resource")
        if api_version == "v1" and len(rest) == 2 and rest[0] == "namespaces":  # GET one namespace
            found = [o for o in self.objects if o["kind"] == "Namespace" and o["metadata"]["name"] == rest[1]]
            if not found:
                return self.status(h, 404, "NotFound", f'namespaces "{rest[1]}" not found')
            return self.send(h, 200, found[0])
        namespace = None
        if len(rest) == 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        kind = PLURALS.get((api_version, rest[0])) if len(rest) == 1 else None
        if kind is None:
            return self.status(h, 404, "NotFound", "the server could not find the requested resource")
        if rest[0] in self.forbidden:
            group = api_version.split("/")[0] if "/" in api_version else ""
            resource = f"{rest[0]}.{group}" if group else rest[0]
            return self.status(h, 403, "Forbidden", f'{resource} is forbidden: User "system:serviceaccount:x:y" '
                               f'cannot list resource "{rest[0]}" in API group "{group}" at the cluster scope')
        items = [o for o in self.objects if o["kind"] == kind
                 and (namespace is None or o["metadata"].get("namespace", "default") == namespace)]
        start = 0
        if query.get("continue"):
            token = json.loads(base64.b64decode(query["continue"][0]))
            if token["path"] != url.path:
                return self.status(h, 400, "BadRequest", "continue token for another list")
            start = token["offset"]
        limit = int(query["limit"][0]) if query.get("limit") else len(items)
        page = items[start:start + limit]
        meta: dict[str, Any] = {"resourceVersion": "42"}
        if start + limit < len(items):
            meta["continue"] = base64.b64encode(json.dumps({"path": url.path, "offset": start + limit}).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        # The API server leaves kind and apiVersion off the items of a typed list.
        stripped = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page]
        self.send(h, 200, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": stripped})

    def list_requests(self, path: str) -> list[dict[str, list[str]]]:
        return [q for p, q in self.requests if p == path]

    @staticmethod
    def send(h: BaseHTTPRequestHandler, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def status(self, h: BaseHTTPRequestHandler, code: int, reason: str, message: str) -> None:
        self.send(h, code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code})


def write_kubeconfig(path: Path, server: str, token: str = TOKEN, contexts: tuple[str, ...] = ("fake",),
                     user: dict | None = None, ca_data: str | None = None) -> str:
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "u", "user": user if user is not None else {"token": token}}],
        "contexts": [{"name": c, "context": {"cluster": "fake", "user": "u"}} for c in contexts],
    }))
    return str(path)


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(cluster_objects(), forbidden={"cronjobs"}) as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> str:
    return write_kubeconfig(tmp_path / "kubeconfig", api.url, contexts=("fake", "prod"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def real_pods(inv: Inventory) -> int:
    """Pods listed by the cluster (not the stand-ins for workloads without pods)."""
    return sum(not p.from_template for p in inv.pods)


def snapshot(inv: Inventory) -> dict[str, Any]:
    """What the rest of the pipeline reads from an inventory, in comparable form."""
    return {
        "namespaces": sorted((n.name, sorted(n.labels.items())) for n in inv.namespaces.values()),
        "pods": sorted(repr(p) for p in inv.pods),
        "services": sorted(repr(s) for s in inv.services),
        "slices": sorted(repr(s) for s in inv.endpoint_slices),
        "workloads": sorted(repr(w) for w in inv.workloads.values()),
        "workload_refs": sorted(map(repr, inv.workload_refs())),
        "nodes": sorted(repr(n) for n in inv.nodes),
        "policies": sorted(json.dumps(p.obj, sort_keys=True) for p in inv.policies),
    }


def test_live_inventory_equals_the_inventory_of_the_same_objects(api: FakeApiServer, kubeconfig: str) -> None:
    live = load_live_inventory(kubeconfig, page_size=2)
    readable = [o for o in api.objects if o["kind"] != "CronJob"]
    expected = inventory_from_objects(copy.deepcopy(readable), origin="files")
    assert snapshot(live) == snapshot(expected)
    assert real_pods(live) == 9 and len(live.services) == 5 and len(live.policies) == 1
    assert [p.file for p in live.policies] == ["cluster current-context"]


def test_every_page_of_every_list_is_followed(api: FakeApiServer, kubeconfig: str) -> None:
    objs = fetch_cluster_objects(kubeconfig)  # default page size: one page each
    assert all(q["limit"] == ["500"] for _, q in api.requests)
    api.requests.clear()
    reader = ClusterReader(kubeconfig, page_size=2)
    paged = list(reader.objects())
    pod_requests = api.list_requests("/api/v1/pods")
    assert len(pod_requests) == 5  # 9 pods, 2 a page
    assert "continue" not in pod_requests[0] and all("continue" in q for q in pod_requests[1:])
    assert all(q["limit"] == ["2"] for q in pod_requests)
    assert sorted(json.dumps(o, sort_keys=True) for o in paged) == sorted(json.dumps(o, sort_keys=True) for o in objs)


def test_items_come_back_in_kubectl_shape_with_kind_apiversion_and_camel_case(kubeconfig: str) -> None:
    objs = fetch_cluster_objects(kubeconfig)
    pods = [o for o in objs if o["kind"] == "Pod"]
    assert pods and all(o["apiVersion"] == "v1" for o in pods)
    assert {"hostIP", "podIP", "podIPs"} <= set(pods[0]["status"])
    slices = [o for o in objs if o["kind"] == "EndpointSlice"]
    assert slices[0]["apiVersion"] == "discovery.k8s.io/v1" and "addressType" in slices[0]
    kinds = {o["kind"] for o in objs}
    assert kinds == {"Namespace", "Node", "Pod", "Service", "EndpointSlice", "ReplicaSet", "Deployment",
                     "StatefulSet", "Job", "NetworkPolicy"}


def test_a_forbidden_optional_kind_is_skipped_and_reported(api: FakeApiServer, kubeconfig: str) -> None:
    reader = ClusterReader(kubeconfig, page_size=2)
    objs = list(reader.objects())
    assert not any(o["kind"] == "CronJob" for o in objs)
    assert [(s.kind, s.request) for s in reader.skipped_kinds] == [("CronJob", "GET /apis/batch/v1/cronjobs")]
    assert reader.skipped_kinds[0].reason.startswith("403 Forbidden: cronjobs.batch is forbidden")
    inv = load_live_inventory(kubeconfig)
    assert inv.skipped_files == [reader.skipped_kinds[0].line()]
    assert inv.skipped_files[0].startswith(f"{kubeconfig}: GET /apis/batch/v1/cronjobs: CronJob skipped: 403 Forbidden")


def test_a_forbidden_required_kind_is_an_error(tmp_path: Path) -> None:
    with FakeApiServer(cluster_objects(), forbidden={"pods"}) as server:
        path = write_kubeconfig(tmp_path / "kc", server.url)
        with pytest.raises(InventoryError) as e:
            load_live_inventory(path)
    assert str(e.value).startswith(f"{path}: GET /api/v1/pods: 403 Forbidden: pods is forbidden")


def test_namespaces_limit_what_is_read(api: FakeApiServer, kubeconfig: str) -> None:
    inv = load_live_inventory(kubeconfig, namespaces=["shop", "data"], page_size=2)
    assert sorted(inv.namespaces) == ["data", "shop"]
    assert {p.namespace for p in inv.pods} == {"shop", "data"}
    assert len(inv.nodes) == 1  # nodes are cluster-scoped: still listed
    assert ("/api/v1/namespaces/shop/pods") in {p for p, _ in api.requests}
    assert "/api/v1/pods" not in {p for p, _ in api.requests}
    # A forbidden kind is asked for once, not once per namespace.
    assert len([p for p, _ in api.requests if p.endswith("/cronjobs")]) == 1


def test_an_unknown_namespace_is_an_error(kubeconfig: str) -> None:
    with pytest.raises(InventoryError) as e:
        load_live_inventory(kubeconfig, namespaces=["nope"])
    assert str(e.value) == f"{kubeconfig}: namespace nope: no such namespace in the cluster"


def test_the_context_is_the_origin_of_the_objects(kubeconfig: str) -> None:
    inv = load_live_inventory(kubeconfig, context="prod")
    assert {p.file for p in inv.policies} == {"cluster prod"}


def one_line(e: pytest.ExceptionInfo[InventoryError]) -> str:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_wrong_token_is_a_one_line_error(api: FakeApiServer, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", api.url, token="wrong")
    with pytest.raises(InventoryError) as e:
        load_live_inventory(path, context="fake")
    assert one_line(e) == (f"{path}: GET /api/v1/namespaces: 401 Unauthorized: the API server rejected the "
                           "credentials of context fake (Unauthorized)")


def test_an_unreachable_server_is_a_one_line_error(tmp_path: Path) -> None:
    port = closed_port()
    path = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")
    with pytest.raises(InventoryError) as e:
        load_live_inventory(path)
    assert one_line(e) == f"{path}: GET /api/v1/namespaces: cannot reach the API server http://127.0.0.1:{port}: Connection refused"


def test_an_unknown_context_is_a_one_line_error(kubeconfig: str) -> None:
    with pytest.raises(InventoryError) as e:
        load_live_inventory(kubeconfig, context="staging")
    assert one_line(e) == f"{kubeconfig}: context staging: no such context in the kubeconfig (it has: fake, prod)"


def test_a_missing_kubeconfig_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as e:
        load_live_inventory(str(tmp_path / "absent"))
    assert one_line(e) == f"{tmp_path / 'absent'}: no such kubeconfig file"


def test_no_kubeconfig_anywhere_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InventoryError) as e:
        load_live_inventory()
    assert one_line(e) == "~/.kube/config: no kubeconfig found (give one, set KUBECONFIG, or run inside a cluster)"


def test_kubeconfig_environment_variable_is_used(api: FakeApiServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_kubeconfig(tmp_path / "kc", api.url)
    monkeypatch.setenv("KUBECONFIG", path)
    assert real_pods(load_live_inventory()) == 9


def test_in_cluster_config_is_the_fallback_without_a_kubeconfig(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(closed_port()))
    # No service-account token is mounted here, so the in-cluster loader says so.
    with pytest.raises(InventoryError) as e:
        load_live_inventory()
    assert one_line(e).startswith("cluster: in-cluster config: ")


def test_an_invalid_kubeconfig_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("clusters: [unclosed\n")
    with pytest.raises(InventoryError) as e:
        load_live_inventory(str(path))
    assert one_line(e).startswith(f"{path}: invalid kubeconfig YAML: ")


def test_without_the_kubernetes_package_the_error_says_how_to_install_it(
        kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(InventoryError) as e:
        load_live_inventory(kubeconfig)
    assert one_line(e) == f"{kubeconfig}: the kubernetes package is not installed: pip install 'netpolgen[cluster]'"


def test_a_failing_credential_plugin_is_a_one_line_error(api: FakeApiServer, tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    plugin = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(tmp_path / "no-plugin")}}
    path = write_kubeconfig(tmp_path / "kc", api.url, user=plugin)
    with pytest.raises(InventoryError) as e:
        load_live_inventory(path)
    assert one_line(e).startswith(f"{path}: current-context: the credential plugin failed: ")
    assert "no-plugin" in str(e.value)
    assert capfd.readouterr().err == ""  # the client's own logging stays quiet


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_the_cluster_ca_works_and_an_unknown_ca_is_a_one_line_error(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = FakeApiServer(cluster_objects())
    server.use_tls(cert, key)
    with server:
        ca = base64.b64encode(cert.read_bytes()).decode()
        trusted = write_kubeconfig(tmp_path / "trusted", server.url, ca_data=ca)
        assert real_pods(load_live_inventory(trusted)) == 9
        untrusted = write_kubeconfig(tmp_path / "untrusted", server.url)
        with pytest.raises(InventoryError) as e:
            load_live_inventory(untrusted)
    assert one_line(e).startswith(f"{untrusted}: GET /api/v1/namespaces: cannot reach the API server {server.url}: ")
    assert "certificate verify failed" in str(e.value)
