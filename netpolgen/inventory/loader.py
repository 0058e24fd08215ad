"""Load a cluster inventory from ``kubectl get ... -o json`` output and YAML manifests.

Accepted documents: a ``List`` (or ``PodList``, ``ServiceList``, ...) with ``items``, single
objects, and multi-document YAML streams. Unknown kinds are counted and ignored; NetworkPolicies
are kept raw for the policy layer. Anything that is not Kubernetes JSON/YAML is an
``InventoryError`` naming the file and the document.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable, Iterator

import msgspec

from netpolgen import safeyaml
from netpolgen.errors import InventoryError, open_for_reading
from netpolgen.inventory.index import Inventory, RawPolicy
from netpolgen.inventory.model import (
    WORKLOAD_KINDS,
    ContainerPort,
    Endpoint,
    EndpointSlice,
    Namespace,
    Node,
    OwnerRef,
    Pod,
    Service,
    ServicePort,
    Workload,
)
from netpolgen.k8snames import is_label_name, is_subdomain
from netpolgen.selectors import parse_selector

#: an inventory file is read whole (``kubectl get -A -o json`` of a large cluster is ~1 GB)
MAX_INVENTORY_BYTES = 4 << 30


def load_inventory(paths: Iterable[str], extra_objects: Iterable[dict] = (), extra_origin: str = "<objects>") -> Inventory:
    """Read every file (or directory of files) in ``paths`` into one Inventory, together with
    ``extra_objects`` already in memory (a live cluster's objects)."""
    builder = _Builder()
    for i, obj in enumerate(extra_objects):
        builder.add(extra_origin, f"object {i + 1}", obj)
    for path, from_directory in kubernetes_files(paths):
        try:
            docs = list(iter_documents(path))
        except InventoryError as e:
            if not from_directory:
                raise
            # A directory of manifests often holds other files (expected outputs, configs):
            # skip them, but say so in the summary.
            builder.skipped_files.append(e.line())
            continue
        for where, obj in docs:
            builder.add(path, where, obj)
    if not builder.recognised and not builder.policies:
        names = ", ".join(p for p, _ in kubernetes_files(paths)) or "inventory"
        raise InventoryError(names, None, "no Kubernetes objects found")
    return builder.build()


def inventory_from_objects(objs: Iterable[dict], origin: str = "<objects>") -> Inventory:
    """An Inventory from Kubernetes objects already in memory (a live cluster's API answers,
    or tests). Lists are flattened as in files."""
    builder = _Builder()
    for i, obj in enumerate(objs):
        items = obj.get("items") if isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List") else None
        for j, item in enumerate(items if items is not None else [obj]):
            builder.add(origin, f"object {i + 1}" + (f": items[{j}]" if items is not None else ""), item)
    return builder.build()


def kubernetes_files(paths: Iterable[str]) -> list[tuple[str, bool]]:
    """(file, came-from-a-directory) for every file named or found below a named directory."""
    out: dict[str, bool] = {}
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if f.endswith((".json", ".yaml", ".yml")):
                        out.setdefault(os.path.join(root, f), True)
        else:
            out[p] = False
    return list(out.items())


def iter_documents(path: str) -> Iterator[tuple[str, dict]]:
    """Yield (place, object) for every Kubernetes object in a JSON or YAML file.

    Lists are flattened; the place is ``document N`` (1-based) and ``items[i]`` inside a list.
    """
    docs = _documents(path, _read_bounded(path))
    found = False
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = f"document {i}"
        if isinstance(doc, list):
            items = doc
            prefix = where + ": "
        elif isinstance(doc, dict) and isinstance(doc.get("items"), list) and (
            "kind" not in doc or str(doc.get("kind", "")).endswith("List")
        ):
            items = doc["items"]
            prefix = where + ": "
        else:
            items = None
            prefix = ""
        if items is None:
            if not isinstance(doc, dict) or "kind" not in doc:
                raise InventoryError(path, where, "not a Kubernetes object (no 'kind')")
            found = True
            yield where, doc
            continue
        for j, item in enumerate(items):
            if not isinstance(item, dict) or "kind" not in item:
                # kubectl omits kind on items of typed lists (PodList): infer it from the list.
                list_kind = str(doc.get("kind", "")) if isinstance(doc, dict) else ""
                if isinstance(item, dict) and list_kind.endswith("List") and list_kind != "List":
                    item = {**item, "kind": list_kind[: -len("List")]}
                else:
                    raise InventoryError(path, f"{prefix}items[{j}]", "not a Kubernetes object (no 'kind')")
            found = True
            yield f"{prefix}items[{j}]", item
    if not found:
        raise InventoryError(path, None, "no Kubernetes objects found")


def _read_bounded(path: str) -> bytes:
    """A file's bytes, refused past MAX_INVENTORY_BYTES (also a pipe or a file that grows)."""
    with open_for_reading(path, InventoryError) as f:
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError:
            size = 0
        if size > MAX_INVENTORY_BYTES:
            raise InventoryError(path, None, f"larger than {MAX_INVENTORY_BYTES} bytes; refusing to read it whole")
        data = f.read(MAX_INVENTORY_BYTES + 1)
        if len(data) > MAX_INVENTORY_BYTES:  # a pipe or a file that grew
            raise InventoryError(path, None, f"larger than {MAX_INVENTORY_BYTES} bytes; refusing to read it whole")
    return data


def _documents(path: str, data: bytes) -> list[Any]:
    """The JSON document or YAML documents in a file's bytes. Raises InventoryError."""
    if not data.strip():
        raise InventoryError(path, None, "empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InventoryError(path, f"byte {e.start}", "not UTF-8 text (not Kubernetes JSON or YAML)") from e
    docs: list[Any]
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            docs = [msgspec.json.decode(data)]
        except RecursionError as e:  # msgspec stops at the interpreter's recursion limit
            raise InventoryError(path, None, f"JSON nested deeper than {sys.getrecursionlimit()} levels") from e
        except msgspec.DecodeError:
            try:  # msgspec is fast; json says where the error is
                docs = [json.loads(text)]
            except json.JSONDecodeError as e:
                raise InventoryError(path, f"line {e.lineno}", f"invalid JSON: {e.msg}") from e
            except RecursionError as e:
                raise InventoryError(path, None, f"JSON nested deeper than {sys.getrecursionlimit()} levels") from e
    else:
        # the safe loader, with bounds on aliases, depth and size (billion laughs)
        docs = list(safeyaml.load_all(text, path, InventoryError))
    return docs


def parse_time(value: Any) -> float | None:
    """RFC 3339 timestamp (as Kubernetes writes them) to unix seconds."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _labels(meta: dict) -> dict[str, str]:
    raw = meta.get("labels") or {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def _owners(meta: dict) -> tuple[OwnerRef, ...]:
    refs = meta.get("ownerReferences") or []
    out = []
    for r in refs if isinstance(refs, list) else []:
        if isinstance(r, dict) and r.get("kind") and r.get("name"):
            out.append(OwnerRef(str(r["kind"]), str(r["name"]), str(r.get("uid", "")), bool(r.get("controller", False))))
    return tuple(out)


def _container_ports(spec: dict) -> tuple[ContainerPort, ...]:
    raw: list[tuple[int, str, str]] = []
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    for c in containers:
        if not isinstance(c, dict):
            continue
        for p in c.get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("containerPort"), int):
                raw.append((int(p["containerPort"]), str(p.get("protocol") or "TCP"), str(p.get("name") or "")))
    return _port_tuple(tuple(raw))


@lru_cache(maxsize=4096)
def _port_tuple(raw: tuple[tuple[int, str, str], ...]) -> tuple[ContainerPort, ...]:
    """Pods of one workload declare the same ports: build (and keep) one tuple for them all."""
    return tuple(ContainerPort(port, proto, name) for port, proto, name in raw)


class _Builder:
    """Accumulates parsed objects; checks the shape of the fields it reads."""

    def __init__(self) -> None:
        self.namespaces: dict[str, Namespace] = {}
        self.pods: list[Pod] = []
        self.services: list[Service] = []
        self.slices: list[EndpointSlice] = []
        self.workloads: list[Workload] = []
        self.nodes: list[Node] = []
        self.policies: list[RawPolicy] = []
        self.ignored: dict[str, int] = {}
        self.skipped_files: list[str] = []
        self.recognised = 0

    def add(self, path: str, where: str, obj: dict) -> None:
        kind = str(obj.get("kind"))
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InventoryError(path, f"{where}: metadata", "expected a mapping")
        spec = obj.get("spec") or {}
        if not isinstance(spec, dict):
            raise InventoryError(path, f"{where}: spec", "expected a mapping")
        name = str(meta.get("name") or "")
        ns = str(meta.get("namespace") or "default")
        if kind == "NetworkPolicy":
            self.policies.append(RawPolicy(path, where, obj))
            return
        handler = getattr(self, "_add_" + kind, None)
        if handler is None and kind in WORKLOAD_KINDS:
            handler = self._add_workload
        if handler is None:
            self.ignored[kind] = self.ignored.get(kind, 0) + 1
            return
        if not name:
            raise InventoryError(path, f"{where}: metadata.name", f"{kind} has no name")
        # Names become policy names, selectors and file names: a kubectl dump never holds an
        # invalid one, so a file that does is broken (or hostile) and said so here, with its place.
        if not is_subdomain(name):
            raise InventoryError(path, f"{where}: metadata.name", f"{name[:80]!r} is not a valid {kind} name (DNS-1123 subdomain)")
        if kind != "Namespace" and not is_label_name(ns):
            raise InventoryError(path, f"{where}: metadata.namespace", f"{ns[:80]!r} is not a valid namespace name (DNS-1123 label)")
        if kind == "Namespace" and not is_label_name(name):
            raise InventoryError(path, f"{where}: metadata.name", f"{name[:80]!r} is not a valid namespace name (DNS-1123 label)")
        try:
            handler(obj, meta, spec, name, ns)
        except KeyError as e:  # a required field left out (found by fuzzing: a Service port without "port")
            raise InventoryError(path, where, f"malformed {kind} {ns}/{name}: missing field {e}") from e
        except (TypeError, ValueError, AttributeError, IndexError) as e:
            raise InventoryError(path, where, f"malformed {kind} {ns}/{name}: {e}") from e
        self.recognised += 1

    def _add_Namespace(self, obj: dict, meta: dict, spec: dict, name: str, ns: str) -> None:
        labels = _labels(meta)
        # The API server sets this label on every namespace; manifests often leave it out.
        labels.setdefault("kubernetes.io/metadata.name", name)
        self.namespaces[name] = Namespace(name, labels)

    def _add_Pod(self, obj: dict, meta: dict, spec: dict, name: str, ns: str) -> None:
        status = obj.get("status") or {}
        ips = [str(p["ip"]) for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
        if not ips and status.get("podIP"):
            ips = [str(status["podIP"])]
        self.pods.append(
            Pod(
                namespace=ns,
                name=name,
                labels=_labels(meta),
                ips=tuple(_canonical_ips(ips)),
                host_ip=str(status.get("hostIP") or ""),
                host_network=bool(spec.get("hostNetwork", False)),
                node_name=str(spec.get("nodeName") or ""),
                ports=_container_ports(spec),
                owners=_owners(meta),
                uid=str(meta.get("uid") or ""),
                created=parse_time(meta.get("creationTimestamp")),
                deleted=parse_time(meta.get("deletionTimestamp")),
                phase=str(status.get("phase") or ""),
            )
        )

    def _add_Service(self, obj: dict, meta: dict, spec: dict, name: str, ns: str) -> None:
        ips = list(spec.get("clusterIPs") or [])
        if not ips and spec.get("clusterIP"):
            ips = [spec["clusterIP"]]
        ips = [str(ip) for ip in ips if ip and str(ip) != "None"]
        ports = []
        for p in spec.get("ports") or []:
            port = int(p["port"])
            target = p.get("targetPort", port)
            if isinstance(target, str) and target.isdigit():
                target = int(target)
            ports.append(ServicePort(port, str(p.get("protocol") or "TCP"), str(p.get("name") or ""), target, int(p.get("nodePort") or 0)))
        selector = spec.get("selector")
        self.services.append(
            Service(
                namespace=ns,
                name=name,
                cluster_ips=tuple(_canonical_ips(ips)),
                selector={str(k): str(v) for k, v in selector.items()} if isinstance(selector, dict) and selector else None,
                ports=tuple(ports),
                type=str(spec.get("type") or "ClusterIP"),
                external_ips=tuple(_canonical_ips(spec.get("externalIPs") or [])),
                labels=_labels(meta),
            )
        )

    def _add_EndpointSlice(self, obj: dict, meta: dict, spec: dict, name: str, ns: str) -> None:
        labels = _labels(meta)
        ports = tuple(
            ContainerPort(int(p["port"]), str(p.get("protocol") or "TCP"), str(p.get("name") or ""))
            for p in obj.get("ports") or []
            if isinstance(p, dict) and p.get("port") is not None
        )
        endpoints = []
        for e in obj.get("endpoints") or []:
            ref = e.get("targetRef") or {}
            pod = f"{ref.get('namespace') or ns}/{ref['name']}" if ref.get("kind") == "Pod" and ref.get("name") else ""
            ready = (e.get("conditions") or {}).get("ready")
            endpoints.append(Endpoint(tuple(_canonical_ips(e.get("addresses") or [])), pod, ready is not False))
        self.slices.append(EndpointSlice(ns, name, labels.get("kubernetes.io/service-name", ""), ports, tuple(endpoints)))

    def _add_Node(self, obj: dict, meta: dict, spec: dict, name: str, ns: str) -> None:
        status = obj.get("status") or {}
        addrs = [
            str(a["address"])
            for a in status.get("addresses") or []
            if isinstance(a, dict) and a.get("type") in ("InternalIP", "ExternalIP") and a.get("address")
        ]
        cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
        self.nodes.append(Node(name, tuple(_canonical_ips(addrs)), tuple(str(c) for c in cidrs), _labels(meta)))

    def _add_workload(self, obj: dict, meta: dict, spec: dict, name: str, ns: str) -> None:
        kind = str(obj["kind"])
        template = spec.get("template") or {}
        if kind == "CronJob":
            template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        tspec = template.get("spec") or {}
        raw_sel = spec.get("selector")
        if kind == "ReplicationController" and isinstance(raw_sel, dict) and raw_sel and "matchLabels" not in raw_sel:
            raw_sel = {"matchLabels": raw_sel}  # RC selectors are a bare map
        selector = parse_selector(raw_sel, "spec.selector") if isinstance(raw_sel, dict) else None
        self.workloads.append(
            Workload(
                kind=kind,
                namespace=ns,
                name=name,
                selector=selector,
                template_labels=_labels(tmeta),
                template_ports=_container_ports(tspec),
                template_host_network=bool(tspec.get("hostNetwork", False)),
                owners=_owners(meta),
                uid=str(meta.get("uid") or ""),
                labels=_labels(meta),
            )
        )

    def build(self) -> Inventory:
        return Inventory(
            namespaces=self.namespaces,
            pods=self.pods,
            services=self.services,
            endpoint_slices=self.slices,
            workloads=self.workloads,
            nodes=self.nodes,
            policies=self.policies,
            ignored_kinds=self.ignored,
            skipped_files=self.skipped_files,
        )


def _canonical_ips(values: Iterable[Any]) -> list[str]:
    """Addresses in ``ipaddress``'s text form, so that equal addresses compare equal as text
    across sources; invalid ones are dropped."""
    out = []
    for v in values:
        text = str(v)
        try:
            # The C round trip is exact for IPv4 (and rejects what ipaddress rejects, bar
            # leading zeros, which ipaddress refuses too); IPv6 text forms differ, so it goes
            # through ipaddress.
            out.append(socket.inet_ntoa(socket.inet_pton(socket.AF_INET, text)))
            continue
        except OSError:
            pass
        try:
            out.append(str(ipaddress.ip_address(text)))
        except ValueError:
            continue
    return out
