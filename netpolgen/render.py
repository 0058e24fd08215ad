"""Rendering: policies → YAML text and files; nothing from the input becomes a path unchecked.

Output is deterministic: keys sorted, rules and peers sorted by synthesis, one document per file.
The files of a run are written into a staging directory that replaces the output directory only
when every one of them is written (``outdir``), so a reader, a crash or a full disk never leaves a
half-written policy or a half-replaced output.
"""

from __future__ import annotations

import os
from typing import IO, Iterable

import yaml

from netpolgen.errors import OutputError
from netpolgen.k8snames import is_label_name, is_subdomain
from netpolgen.outdir import staged

_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_RESOLVED: dict[tuple, str] = {}  # (scalar text, implicit) -> the tag it reads back as
_SCALAR_TAGS = {str: "tag:yaml.org,2002:str", int: "tag:yaml.org,2002:int",
                bool: "tag:yaml.org,2002:bool", type(None): "tag:yaml.org,2002:null"}


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's C emitter where available; never anchors/aliases (kubectl users read these).

    Policies are plain dicts, lists, strings, ints and booleans. For those, nodes are built
    here directly, as SafeRepresenter would build them with ``sort_keys`` and block style
    (its generic per-node dispatch is most of the time of a large output); anything else goes
    to SafeRepresenter. The emitter, quoting and resolution are PyYAML's own."""

    def ignore_aliases(self, data: object) -> bool:
        return True

    def resolve(self, kind: type, value: object, implicit: tuple[bool, bool]) -> str:
        # The emitter asks, scalar by scalar, whether plain text would read back as the same
        # type. With no path resolvers (SafeDumper has none) the answer depends on the value
        # alone, and policies repeat the same few hundred strings: remembered across documents.
        if kind is yaml.ScalarNode:
            key = (value, implicit)
            tag = _RESOLVED.get(key)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(_RESOLVED) < 200_000:
                    _RESOLVED[key] = tag
            return tag
        return super().resolve(kind, value, implicit)

    def represent_data(self, data: object) -> yaml.Node:
        kind = type(data)
        if kind is dict:
            items = list(data.items())  # type: ignore[attr-defined]
            try:
                items.sort()
            except TypeError:  # keys that do not compare: left in order, as SafeRepresenter does
                pass
            return yaml.MappingNode(_MAP, [(self.represent_data(k), self.represent_data(v)) for k, v in items],
                                    flow_style=False)
        if kind is list:
            return yaml.SequenceNode(_SEQ, [self.represent_data(x) for x in data], flow_style=False)  # type: ignore[attr-defined]
        tag = _SCALAR_TAGS.get(kind)
        if tag is None:
            return super().represent_data(data)
        if kind is str:
            return yaml.ScalarNode(tag, data)
        if kind is bool:
            return yaml.ScalarNode(tag, "true" if data else "false")
        if kind is int:
            return yaml.ScalarNode(tag, str(data))
        return yaml.ScalarNode(tag, "null")


_DUMPER = _Dumper


def to_yaml(obj: dict) -> str:
    return yaml.dump(obj, Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True)


def to_yaml_stream(objs: Iterable[dict]) -> str:
    return "".join("---\n" + to_yaml(o) for o in objs)


# Files of other kinds than NetworkPolicy: ``<name>.<suffix>.yaml`` beside them, and cluster-scoped
# ones under ``_cluster/`` (no namespace can be called that: ``_`` is not DNS-1123).
KIND_SUFFIX = {"CiliumNetworkPolicy": "cilium", "CiliumClusterwideNetworkPolicy": "cilium-clusterwide",
               "ClusterNetworkPolicy": "clusternetworkpolicy"}
CLUSTER_DIR = "_cluster"


def policy_path(policy: dict) -> str:
    """``<namespace>/<name>.yaml`` after checking both are valid DNS-1123 names."""
    meta = policy.get("metadata") or {}
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    suffix = KIND_SUFFIX.get(str(policy.get("kind", "")))
    if suffix is not None:
        if not is_subdomain(name):
            raise OutputError(None, None, f"policy name {name!r} is not a valid DNS-1123 name")
        if "namespace" not in meta:
            return os.path.join(CLUSTER_DIR, f"{name}.{suffix}.yaml")
        if not is_label_name(ns):
            raise OutputError(None, None, f"namespace {ns!r} is not a valid DNS-1123 label; refusing to use it in a path")
        return os.path.join(ns, f"{name}.{suffix}.yaml")
    if not is_label_name(ns):
        raise OutputError(None, None, f"namespace {ns!r} is not a valid DNS-1123 label; refusing to use it in a path")
    if not is_subdomain(name):
        raise OutputError(None, None, f"policy name {name!r} in namespace {ns} is not a valid DNS-1123 name")
    return os.path.join(ns, f"{name}.yaml")


def write_policy_files(policies: list[dict], out_dir: str) -> list[str]:
    """Write one file per policy under ``out_dir``; returns the paths written.

    Every path and every document is prepared before the first file is touched, so bad input
    leaves the directory as it was; the files are then written into a staging directory that
    replaces ``out_dir`` at the end (``outdir.staged``), so a failure half-way does too.
    """
    prepared = [(policy_path(p), to_yaml(p)) for p in policies]
    rels = [rel for rel, _ in prepared]
    if len(set(rels)) != len(rels):
        dup = sorted({p for p in rels if rels.count(p) > 1})[0]
        raise OutputError(os.path.join(out_dir, dup), None, "two policies would be written to the same file")
    with staged(out_dir) as stage:
        for rel, text in prepared:
            _write_new(os.path.join(stage, rel), os.path.join(out_dir, rel), text)
    return [os.path.join(out_dir, rel) for rel in rels]


def _write_new(path: str, shown: str, text: str) -> None:
    """Write ``path`` in the staging directory (``shown`` is its name in the output, for errors).
    A file carried over from the previous output is a link to it: unlinked first, never written
    into."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        with open(path, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise OutputError(shown, None, e.strerror or str(e)) from e


def write_file_atomic(path: str, text: str) -> None:
    """One file (a report) replaced whole or not at all: written beside it, then renamed."""
    import tempfile

    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".netpolgen-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise OutputError(path, None, e.strerror or str(e)) from e


def write_stream(policies: list[dict], out: IO[str]) -> None:
    for p in policies:
        policy_path(p)  # same validation as for files
    out.write(to_yaml_stream(policies))
