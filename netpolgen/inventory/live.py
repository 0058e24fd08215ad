"""Read the cluster inventory from a live cluster through a kubeconfig (or in-cluster config).

The objects are fetched with the official ``kubernetes`` client (the optional extra
``netpolgen[cluster]``) but never turned into its model classes: every list is requested with
``_preload_content=False`` and decoded as JSON, so the objects keep the camelCase keys the API
server sends, exactly as ``kubectl get -o json`` writes them, and go through the same loader as
inventory files. Lists are paged (``limit``/``continue``) and handed on page by page, so a huge
cluster never arrives as one giant response.

Pods and Services are required: without them there is nothing to resolve addresses to. Every
other kind is optional: when the API server forbids listing it (RBAC), or does not serve it, the
kind is skipped and recorded as a ``SkippedKind`` rather than failing the whole read. Any other
failure (no kubeconfig, unknown context, unreachable server, rejected credentials) is an
``InventoryError`` with one line naming the kubeconfig and the request.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generator, Iterator

from netpolgen.errors import InventoryError
from netpolgen.inventory.index import Inventory
from netpolgen.inventory.loader import inventory_from_objects

if TYPE_CHECKING:  # the package is optional; it is imported only when a cluster is read
    from kubernetes.client import ApiClient, Configuration

DEFAULT_PAGE_SIZE = 500  # kubectl's default --chunk-size
# (connect, read) seconds: an unreachable server fails in seconds, a slow big page still arrives.
DEFAULT_TIMEOUT = (10.0, 120.0)
INSTALL_HINT = "the kubernetes package is not installed: pip install 'netpolgen[cluster]'"


@dataclass(frozen=True)
class Resource:
    """One kind the inventory reads: where it lives in the API and which client calls list it."""

    kind: str
    api_version: str
    plural: str
    api: str  # the client's API class
    list_all: str  # method listing every namespace (or the cluster-scoped list)
    list_namespaced: str | None  # method listing one namespace; None for cluster-scoped kinds
    required: bool = False

    def path(self, namespace: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}" if namespace else f"{prefix}/{self.plural}"


RESOURCES: tuple[Resource, ...] = (
    Resource("Namespace", "v1", "namespaces", "CoreV1Api", "list_namespace", None),
    Resource("Node", "v1", "nodes", "CoreV1Api", "list_node", None),
    Resource("Pod", "v1", "pods", "CoreV1Api", "list_pod_for_all_namespaces", "list_namespaced_pod", required=True),
    Resource("Service", "v1", "services", "CoreV1Api", "list_service_for_all_namespaces", "list_namespaced_service",
             required=True),
    Resource("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", "DiscoveryV1Api",
             "list_endpoint_slice_for_all_namespaces", "list_namespaced_endpoint_slice"),
    Resource("ReplicaSet", "apps/v1", "replicasets", "AppsV1Api", "list_replica_set_for_all_namespaces",
             "list_namespaced_replica_set"),
    Resource("Deployment", "apps/v1", "deployments", "AppsV1Api", "list_deployment_for_all_namespaces",
             "list_namespaced_deployment"),
    Resource("StatefulSet", "apps/v1", "statefulsets", "AppsV1Api", "list_stateful_set_for_all_namespaces",
             "list_namespaced_stateful_set"),
    Resource("DaemonSet", "apps/v1", "daemonsets", "AppsV1Api", "list_daemon_set_for_all_namespaces",
             "list_namespaced_daemon_set"),
    Resource("Job", "batch/v1", "jobs", "BatchV1Api", "list_job_for_all_namespaces", "list_namespaced_job"),
    Resource("CronJob", "batch/v1", "cronjobs", "BatchV1Api", "list_cron_job_for_all_namespaces",
             "list_namespaced_cron_job"),
    Resource("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", "NetworkingV1Api",
             "list_network_policy_for_all_namespaces", "list_namespaced_network_policy"),
)


@dataclass(frozen=True)
class SkippedKind:
    """An optional kind the cluster would not list: a partial read, reported, not fatal."""

    source: str  # the kubeconfig path, or "cluster" for in-cluster config
    kind: str
    request: str  # e.g. "GET /apis/batch/v1/cronjobs"
    reason: str  # e.g. "403 Forbidden: cronjobs.batch is forbidden: ..."

    def line(self) -> str:
        return f"{self.source}: {self.request}: {self.kind} skipped: {self.reason}"


class ClusterReader:
    """Reads the inventory kinds from one cluster; ``skipped_kinds`` fills in as it reads.

    The kubeconfig is resolved and loaded when the reader is made, so configuration mistakes
    surface before any request. ``kubeconfig`` None means ``$KUBECONFIG``, else
    ``~/.kube/config``, else in-cluster config when ``KUBERNETES_SERVICE_HOST`` is set.
    """

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespaces: list[str] | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.context = context
        self.namespaces = list(dict.fromkeys(namespaces)) if namespaces else None
        self.page_size = page_size
        self.timeout = timeout
        self.skipped_kinds: list[SkippedKind] = []
        self.source, self.configuration = _load_configuration(kubeconfig, context)

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    def objects(self) -> Iterator[dict]:
        """Every object of every kind, as ``kubectl get -o json`` would write it (with kind and
        apiVersion on each item), page by page."""
        from kubernetes import client

        with client.ApiClient(self.configuration) as api_client:
            for res in RESOURCES:
                yield from self._objects_of(api_client, res)

    def _objects_of(self, api_client: ApiClient, res: Resource) -> Iterator[dict]:
        from kubernetes import client

        api = getattr(client, res.api)(api_client)
        if self.namespaces is None:
            yield from self._pages(res, res.path(), getattr(api, res.list_all), {})
        elif res.kind == "Namespace":
            for name in self.namespaces:
                obj = self._get_namespace(api, res, name)
                if obj is None:
                    return
                yield obj
        elif res.list_namespaced is None:
            yield from self._pages(res, res.path(), getattr(api, res.list_all), {})
        else:
            for ns in self.namespaces:
                if not (yield from self._pages(res, res.path(ns), getattr(api, res.list_namespaced), {"namespace": ns})):
                    return

    def _pages(self, res: Resource, path: str, call: Any, args: dict) -> Generator[dict, None, bool]:
        """Yield the items of one list, following ``continue``; return False when the kind was
        skipped (so the caller stops asking for it in other namespaces)."""
        token: str | None = None
        while True:
            body = self._call(res, f"GET {path}", call, **args, limit=self.page_size, _continue=token)
            if body is None:
                return False
            items = body.get("items")
            if not isinstance(items, list):
                raise InventoryError(self.source, f"GET {path}", f"not a {res.kind}List (no items)")
            for item in items:
                if isinstance(item, dict):
                    # List responses leave kind/apiVersion off their items; kubectl puts them back.
                    yield {"kind": res.kind, "apiVersion": res.api_version, **item}
            token = (body.get("metadata") or {}).get("continue") or None
            if token is None:
                return True

    def _get_namespace(self, api: Any, res: Resource, name: str) -> dict | None:
        try:
            obj = self._call(res, f"GET {res.path()}/{name}", api.read_namespace, name=name, missing_ok=False)
        except _NotFound:
            raise InventoryError(self.source, f"namespace {name}", "no such namespace in the cluster") from None
        if obj is not None:
            obj.setdefault("kind", res.kind)
            obj.setdefault("apiVersion", res.api_version)
        return obj

    def _call(self, res: Resource, where: str, call: Any, missing_ok: bool = True, **kwargs: Any) -> dict | None:
        """One request, decoded; None when an optional kind is forbidden or not served."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            response = call(**kwargs, _preload_content=False, _request_timeout=self.timeout)
            try:
                data = response.data
            finally:
                response.release_conn()
        except ApiException as e:
            status = int(e.status or 0)
            if status == 0:  # the client reports some TLS failures this way: "SSLError\n<detail>"
                detail = [line for line in str(e.reason).splitlines() if line.strip()] or ["TLS failure"]
                raise InventoryError(self.source, where, f"cannot reach the API server {self.server}: "
                                     f"{detail[-1].strip()}") from e
            reason = f"{status} {e.reason or ''}".strip()
            message = _status_message(e.body)
            if status == 401:
                raise InventoryError(self.source, where, f"{reason}: the API server rejected the credentials of "
                                     + (f"context {self.context}" if self.context else "the current context")
                                     + (f" ({message})" if message else "")) from e
            if status == 404 and not missing_ok:
                raise _NotFound() from e
            if status == 410:
                raise InventoryError(self.source, where, f"{reason}: the list expired while being paged; "
                                     "retry, or read with a larger page size") from e
            if status in (403, 404) and not res.required:
                why = message or ("not served by this API server" if status == 404 else "forbidden")
                self.skipped_kinds.append(SkippedKind(self.source, res.kind, where, f"{reason}: {why}"))
                return None
            raise InventoryError(self.source, where, f"{reason}" + (f": {message}" if message else "")) from e
        except urllib3.exceptions.HTTPError as e:
            raise InventoryError(self.source, where,
                                 f"cannot reach the API server {self.server}: {_network_reason(e)}") from e
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InventoryError(self.source, where, f"the API server did not answer JSON: {e}") from e
        if not isinstance(body, dict):
            raise InventoryError(self.source, where, "the API server did not answer a JSON object")
        return body


class _NotFound(Exception):
    pass


def fetch_cluster_objects(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespaces: list[str] | None = None,
) -> list[dict]:
    """Every inventory object of a live cluster (all namespaces, or only ``namespaces``), in the
    ``kubectl get -o json`` shape. Optional kinds the cluster refuses are left out silently here;
    use ``ClusterReader`` (or ``load_live_inventory``) to learn which."""
    return list(ClusterReader(kubeconfig, context, namespaces).objects())


def load_live_inventory(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespaces: list[str] | None = None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Inventory:
    """The Inventory of a live cluster. Optional kinds that were skipped (forbidden, not served)
    are listed, one line each, in ``inventory.skipped_files`` — the inventory's record of
    sources it could not read — so the summary reports them with skipped files."""
    reader = ClusterReader(kubeconfig, context, namespaces, page_size=page_size)
    inventory = inventory_from_objects(reader.objects(), origin=f"cluster {context or 'current-context'}")
    inventory.skipped_files.extend(s.line() for s in reader.skipped_kinds)
    return inventory


def _load_configuration(kubeconfig: str | None, context: str | None) -> tuple[str, Configuration]:
    """(the name errors use for this cluster, a client Configuration for it)."""
    try:
        import yaml
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError as e:
        if (e.name or "kubernetes").split(".")[0] == "kubernetes":
            raise InventoryError(kubeconfig or "cluster", None, INSTALL_HINT) from e
        # Installed but broken (one of its own dependencies is missing): say which.
        raise InventoryError(kubeconfig or "cluster", None, f"the kubernetes package cannot be imported: {e}") from e

    configuration = client.Configuration()
    if kubeconfig is None:
        default = os.environ.get("KUBECONFIG") or "~/.kube/config"
        paths = [os.path.expanduser(p) for p in default.split(os.pathsep) if p]
        if not any(os.path.exists(p) for p in paths):
            if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
                try:
                    config.load_incluster_config(client_configuration=configuration)
                except ConfigException as e:
                    raise InventoryError("cluster", "in-cluster config", _first_line(str(e))) from e
                return "cluster", configuration
            raise InventoryError(default, None, "no kubeconfig found (give one, set KUBECONFIG, or run inside a cluster)")
        source = default
    else:
        source = kubeconfig
        if not os.path.exists(os.path.expanduser(kubeconfig)):
            raise InventoryError(kubeconfig, None, "no such kubeconfig file")
        if os.path.isdir(os.path.expanduser(kubeconfig)):
            raise InventoryError(kubeconfig, None, "is a directory, not a kubeconfig file")
        kubeconfig = os.path.expanduser(kubeconfig)

    where = f"context {context}" if context else "current-context"
    try:
        if context is not None:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig or source)
            names = [str(c.get("name")) for c in contexts or [] if isinstance(c, dict)]
            if context not in names:
                known = ", ".join(sorted(names)) or "none"
                raise InventoryError(source, where, f"no such context in the kubeconfig (it has: {known})")
        with _logged_errors() as errors:
            config.load_kube_config(config_file=kubeconfig or source, context=context,
                                    client_configuration=configuration, persist_config=False)
        if errors:
            # The client only logs a failed exec credential plugin (aws, gke-gcloud-auth-plugin)
            # and goes on without credentials; say so now rather than as a puzzling 401 later.
            raise InventoryError(source, where, f"the credential plugin failed: {_first_line(errors[0])}")
    except InventoryError:
        raise
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or _first_line(str(e))
        raise InventoryError(source, None, f"invalid kubeconfig YAML: {problem}") from e
    except (ConfigException, KeyError, TypeError, AttributeError, ValueError) as e:
        raise InventoryError(source, where, f"cannot use the kubeconfig: {_first_line(str(e))}") from e
    except OSError as e:
        raise InventoryError(source, where, e.strerror or _first_line(str(e))) from e
    return source, configuration


@contextmanager
def _logged_errors() -> Iterator[list[str]]:
    """Collect what is logged at ERROR on the root logger meanwhile, and keep it off stderr
    (a root handler also stops ``logging.error`` from installing its default one)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)


def _status_message(body: Any) -> str:
    """The ``message`` of a Kubernetes Status answer, or the start of whatever came back."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        status = json.loads(text)
    except ValueError:
        return _first_line(text)[:200]
    if isinstance(status, dict) and status.get("message"):
        return _first_line(str(status["message"]))
    return ""


def _network_reason(e: BaseException) -> str:
    """'Connection refused' rather than urllib3's pool and retry wrapping."""
    reason: BaseException = getattr(e, "reason", None) or e
    cause: BaseException | None = reason
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    text = _first_line(str(reason))
    return text.rsplit(": ", 1)[-1] if ": " in text else text


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()
