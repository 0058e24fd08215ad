"""NetworkPolicy documents → the policy model, with the API server's structural validation.

Every problem is a ``PolicyError(file, "<document N>: spec.ingress[0].ports[1].port", what)``:
the CLI prints it as one line and exits 2. Files, directories (recursive), multi-document YAML,
JSON, ``List``s and whole inventory files are accepted; objects of other kinds are ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from netpolgen.errors import InventoryError, PolicyError
from netpolgen.inventory.loader import iter_documents, kubernetes_files
from netpolgen.policy.conns import PORT_MAX, PORT_MIN, PROTOCOLS
from netpolgen.policy.ipspace import cidr_range, subtract
from netpolgen.policy.model import (
    EGRESS,
    INGRESS,
    IPBlock,
    NetworkPolicy,
    PolicyPeer,
    PolicyRule,
    PortSpec,
)
from netpolgen.selectors import LabelSelector, parse_selector

# IANA service names, as the API validates named ports: at most 15 characters, lower-case
# letters, digits and inner single hyphens, at least one letter.
_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


_ABSENT = object()  # a key missing from a port item, told apart from an explicit null
_T = TypeVar("_T", bound=Hashable)


class _Memo:
    """What one parse call has built already, so that repeated input costs a lookup.

    Generated policy sets repeat the same peers and selectors across thousands of rules (often
    the very same dict objects) and the same few port items. Peer and selector dicts are
    remembered by identity (the dict is kept, so its id cannot be reused while remembered), port
    items by content with the types of their values (``True == 1`` must not hit ``1``), and equal
    results are interned, so the compiler sees each distinct peer, selector and port list as one
    object. Only successes are remembered: invalid input is parsed, and reported, every time.
    """

    def __init__(self) -> None:
        self.peers: dict[int, tuple[Any, PolicyPeer]] = {}
        self.selectors: dict[int, tuple[Any, LabelSelector]] = {}
        self.ports: dict[tuple[Any, ...], PortSpec] = {}
        self._interned: dict[Any, Any] = {}

    def intern(self, value: _T) -> _T:
        return self._interned.setdefault(value, value)


class _Invalid(Exception):
    """A validation failure at ``path`` inside one document (turned into PolicyError)."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(what)
        self.path = path
        self.what = what


# ----- public API ------------------------------------------------------------------------------


def load_policies(paths: Iterable[str]) -> list[NetworkPolicy]:
    """Every NetworkPolicy in ``paths`` (files, or directories searched recursively).

    A file named on purpose must be Kubernetes JSON/YAML; files found inside a directory that are
    not (expected outputs, notes) are skipped. Two documents defining the same namespace/name
    differently are an error; exact repeats are kept once.
    """
    out: list[NetworkPolicy] = []
    seen: dict[str, NetworkPolicy] = {}
    memo = _Memo()
    for path, docs in policy_documents(paths):
        for where, obj in docs:
            if obj.get("kind") != "NetworkPolicy":
                continue
            _add_unique(out, seen, _parse_one(obj, path, where, memo))
    return out


def parse_policies(objs: Iterable[Mapping[str, Any]], file: str | None = None) -> list[NetworkPolicy]:
    """Parse in-memory NetworkPolicy dicts (as YAML would load them). Other kinds are ignored;
    an object without ``kind`` is an error, since it cannot be told apart from a typo."""
    out: list[NetworkPolicy] = []
    seen: dict[str, NetworkPolicy] = {}
    memo = _Memo()
    for i, obj in enumerate(objs, start=1):
        where = f"object {i}"
        if not isinstance(obj, Mapping) or "kind" not in obj:
            raise PolicyError(file, where, "not a Kubernetes object (no 'kind')")
        if obj.get("kind") != "NetworkPolicy":
            continue
        _add_unique(out, seen, _parse_one(obj, file, where, memo))
    return out


def policies_from_inventory(inventory: Any) -> list[NetworkPolicy]:
    """The NetworkPolicies an inventory file held (``Inventory.policies``), parsed."""
    out: list[NetworkPolicy] = []
    seen: dict[str, NetworkPolicy] = {}
    memo = _Memo()
    for raw in getattr(inventory, "policies", []):
        _add_unique(out, seen, _parse_one(raw.obj, raw.file, raw.where, memo))
    return out


def parse_policy(obj: Mapping[str, Any], file: str | None = None, where: str | None = None) -> NetworkPolicy:
    """One NetworkPolicy object. Raises PolicyError naming ``file`` and the path in the object."""
    return _parse_one(obj, file, where, _Memo())


def _parse_one(obj: Mapping[str, Any], file: str | None, where: str | None, memo: _Memo) -> NetworkPolicy:
    try:
        return _parse(obj, file or "", where or "", memo)
    except _Invalid as e:
        place = f"{where}: {e.path}" if where else e.path
        raise PolicyError(file, place, e.what) from None


# ----- helpers ---------------------------------------------------------------------------------


def policy_documents(paths: Iterable[str]) -> Iterator[tuple[str, list[tuple[str, dict]]]]:
    """(file, its (place, document) pairs) for every Kubernetes file of ``paths``: a file named
    on purpose must be Kubernetes JSON/YAML, one found inside a directory that is not is skipped."""
    for path, from_directory in _expand(paths):
        try:
            docs = list(iter_documents(path))
        except InventoryError as e:
            if from_directory:
                continue
            raise PolicyError(e.file, e.where, e.what) from e
        yield path, docs


def _expand(paths: Iterable[str]) -> list[tuple[str, bool]]:
    """(file, came-from-a-directory), as the inventory loader finds them; a path that does not
    exist is an error here rather than an unreadable file later."""
    paths = list(paths)
    for p in paths:
        if not os.path.exists(p):
            raise PolicyError(p, None, "no such file or directory")
    return kubernetes_files(paths)


def _add_unique(out: list[NetworkPolicy], seen: dict[str, NetworkPolicy], policy: NetworkPolicy) -> None:
    first = seen.get(policy.key)
    if first is None:
        seen[policy.key] = policy
        out.append(policy)
        return
    if first != policy:
        place = f"{first.file}: {first.where}" if first.file else first.where
        raise PolicyError(policy.file or None, policy.where or None,
                          f"NetworkPolicy {policy.key} is defined twice, differently (first at {place})")


def _mapping(value: Any, path: str, required: bool = False) -> Mapping[str, Any]:
    if type(value) is dict:  # what YAML and JSON give: skip the generic checks
        return value
    if value is None:
        if required:
            raise _Invalid(path, "required")
        return {}
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"expected a mapping, got {_type(value)}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if type(value) is list:
        return value
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(path, f"expected a list, got {_type(value)}")
    return value


def _type(value: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _selector(value: Any, path: str, memo: _Memo) -> LabelSelector:
    hit = memo.selectors.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    _mapping(value, path)
    try:
        selector = memo.intern(parse_selector(value, path))
    except ValueError as e:
        # parse_selector's message starts with the path it was given; keep the rest.
        msg = str(e)
        sub, _, what = msg.partition(": ")
        raise _Invalid(sub if sub.startswith(path) else path, what or msg) from None
    memo.selectors[id(value)] = (value, selector)
    return selector


def _parse(obj: Mapping[str, Any], file: str, where: str, memo: _Memo) -> NetworkPolicy:
    meta = _mapping(obj.get("metadata"), "metadata", required=True)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise _Invalid("metadata.name", "required")
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise _Invalid("metadata.name", f"{name!r} is not a valid name (DNS-1123 subdomain)")
    namespace = meta.get("namespace") or "default"
    if not isinstance(namespace, str) or not _DNS1123_SUBDOMAIN.match(namespace):
        raise _Invalid("metadata.namespace", f"{namespace!r} is not a valid namespace name")
    spec = _mapping(obj.get("spec"), "spec", required=True)
    if "podSelector" not in spec:
        raise _Invalid("spec.podSelector", "required (use {} to select every pod in the namespace)")
    pod_selector = _selector(spec.get("podSelector") or {}, "spec.podSelector", memo)

    ingress = tuple(_rule(r, INGRESS, i, memo) for i, r in enumerate(_list(spec.get("ingress"), "spec.ingress")))
    egress = tuple(_rule(r, EGRESS, i, memo) for i, r in enumerate(_list(spec.get("egress"), "spec.egress")))

    raw_types = spec.get("policyTypes")
    if raw_types is None or raw_types == []:
        # The API server's defaulting: Ingress always, Egress when egress rules are present.
        types: tuple[str, ...] = ("Ingress", "Egress") if egress else ("Ingress",)
    else:
        seen: list[str] = []
        for i, t in enumerate(_list(raw_types, "spec.policyTypes")):
            if t not in ("Ingress", "Egress"):
                raise _Invalid(f"spec.policyTypes[{i}]", f"{t!r} is not Ingress or Egress")
            if t in seen:
                raise _Invalid(f"spec.policyTypes[{i}]", f"{t} is listed twice")
            seen.append(t)
        types = tuple(t for t in ("Ingress", "Egress") if t in seen)
    return NetworkPolicy(namespace, name, pod_selector, ingress, egress, types, file, where)


def _rule(raw: Any, direction: str, index: int, memo: _Memo) -> PolicyRule:
    path = f"spec.{direction}[{index}]"
    rule = _mapping(raw, path)
    peer_key = "from" if direction == INGRESS else "to"
    for key in rule:
        if key not in (peer_key, "ports"):
            raise _Invalid(f"{path}.{key}", f"unknown field (an {direction} rule has {peer_key!r} and 'ports')")
    peers = _peers(_list(rule.get(peer_key), f"{path}.{peer_key}"), f"{path}.{peer_key}", memo)
    ports = _ports(_list(rule.get("ports"), f"{path}.ports"), f"{path}.ports", memo)
    return PolicyRule(direction, index, peers, ports)


def _peers(raw: list[Any], path: str, memo: _Memo) -> tuple[PolicyPeer, ...]:
    out = []
    for j, item in enumerate(raw):
        hit = memo.peers.get(id(item))
        if hit is not None and hit[0] is item:
            out.append(hit[1])
            continue
        peer = memo.intern(_peer(item, f"{path}[{j}]", memo))
        memo.peers[id(item)] = (item, peer)
        out.append(peer)
    return tuple(out)


def _ports(raw: list[Any], path: str, memo: _Memo) -> tuple[PortSpec, ...]:
    out = []
    for j, item in enumerate(raw):
        key: tuple[Any, ...] | None = None
        if type(item) is dict:
            # Which known keys are present (len: and no others, once one such item was valid),
            # their values and the values' exact types.
            proto, port, end = item.get("protocol", _ABSENT), item.get("port", _ABSENT), item.get("endPort", _ABSENT)
            key = (len(item), proto, type(proto), port, type(port), end, type(end))
            try:
                hit = memo.ports.get(key)
            except TypeError:  # an unhashable value: the full check reports it
                key = hit = None
            if hit is not None:
                out.append(hit)
                continue
        spec = _port(item, f"{path}[{j}]")
        if key is not None:
            memo.ports[key] = spec
        out.append(spec)
    return memo.intern(tuple(out))


def _peer(raw: Any, path: str, memo: _Memo) -> PolicyPeer:
    peer = _mapping(raw, path)
    for key in peer:
        if key not in ("podSelector", "namespaceSelector", "ipBlock"):
            raise _Invalid(f"{path}.{key}", "unknown field (a peer has podSelector, namespaceSelector or ipBlock)")
    has_selectors = peer.get("podSelector") is not None or peer.get("namespaceSelector") is not None
    if peer.get("ipBlock") is not None:
        if has_selectors:
            raise _Invalid(path, "ipBlock cannot be combined with podSelector or namespaceSelector")
        return PolicyPeer(ip_block=_ip_block(peer["ipBlock"], f"{path}.ipBlock"))
    if not has_selectors:
        raise _Invalid(path, "must specify podSelector, namespaceSelector or ipBlock")
    pod = _selector(peer["podSelector"], f"{path}.podSelector", memo) if peer.get("podSelector") is not None else None
    ns = (_selector(peer["namespaceSelector"], f"{path}.namespaceSelector", memo)
          if peer.get("namespaceSelector") is not None else None)
    return PolicyPeer(pod_selector=pod, namespace_selector=ns)


def _ip_block(raw: Any, path: str) -> IPBlock:
    block = _mapping(raw, path)
    cidr = block.get("cidr")
    if not isinstance(cidr, str) or not cidr:
        raise _Invalid(f"{path}.cidr", "required")
    try:
        whole = cidr_range(cidr)
    except ValueError as e:
        raise _Invalid(f"{path}.cidr", f"{cidr!r} is not a valid CIDR ({e})") from None
    holes = []
    excepts = _list(block.get("except"), f"{path}.except")
    for k, ex in enumerate(excepts):
        p = f"{path}.except[{k}]"
        if not isinstance(ex, str):
            raise _Invalid(p, f"expected a CIDR string, got {_type(ex)}")
        try:
            hole = cidr_range(ex)
        except ValueError as e:
            raise _Invalid(p, f"{ex!r} is not a valid CIDR ({e})") from None
        if hole.family != whole.family or not (whole.start <= hole.start and hole.end <= whole.end) or hole == whole:
            raise _Invalid(p, f"{ex} must be a strict subset of cidr {cidr}")
        holes.append(hole)
    return IPBlock(cidr, tuple(excepts), subtract([whole], holes))


def _port(raw: Any, path: str) -> PortSpec:
    item = _mapping(raw, path)
    for key in item:
        if key not in ("protocol", "port", "endPort"):
            raise _Invalid(f"{path}.{key}", "unknown field (a port has protocol, port and endPort)")
    protocol = item.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        raise _Invalid(f"{path}.protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}")
    port = item.get("port")
    end = item.get("endPort")
    if isinstance(port, bool) or isinstance(end, bool):
        raise _Invalid(f"{path}.port", "expected a number or a name")
    if port is None:
        if end is not None:
            raise _Invalid(f"{path}.endPort", "needs a numeric port")
        return PortSpec(protocol)
    if isinstance(port, str):
        if not _IANA_SVC_NAME.match(port) or len(port) > 15:
            raise _Invalid(f"{path}.port", f"{port!r} is neither a port number nor a valid port name")
        if end is not None:
            raise _Invalid(f"{path}.endPort", "cannot be used with a named port")
        return PortSpec(protocol, port)
    if not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        raise _Invalid(f"{path}.port", f"{port!r} is not a port number (1-65535)")
    if end is not None:
        if not isinstance(end, int) or not PORT_MIN <= end <= PORT_MAX:
            raise _Invalid(f"{path}.endPort", f"{end!r} is not a port number (1-65535)")
        if end < port:
            raise _Invalid(f"{path}.endPort", f"{end} is below port {port}")
    return PortSpec(protocol, port, end)
