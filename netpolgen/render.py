"""Rendering: policies → YAML text and files; nothing from the input becomes a path unchecked.

Output is deterministic: keys sorted, rules and peers sorted by synthesis, one document per file.
Files are written to a temporary name in the same directory and renamed into place, so a reader
(or a crash) never sees a half-written policy.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import IO, Iterable

import yaml

from netpolgen.errors import OutputError

class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's C emitter where available; never anchors/aliases (kubectl users read these)."""

    def ignore_aliases(self, data: object) -> bool:
        return True


_DUMPER = _Dumper
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def to_yaml(obj: dict) -> str:
    return yaml.dump(obj, Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True)


def to_yaml_stream(objs: Iterable[dict]) -> str:
    return "".join("---\n" + to_yaml(o) for o in objs)


def policy_path(policy: dict) -> str:
    """``<namespace>/<name>.yaml`` after checking both are valid DNS-1123 names."""
    meta = policy.get("metadata") or {}
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    if not _DNS1123_LABEL.match(ns):
        raise OutputError(None, None, f"namespace {ns!r} is not a valid DNS-1123 label; refusing to use it in a path")
    if not _DNS1123_SUBDOMAIN.match(name):
        raise OutputError(None, None, f"policy name {name!r} in namespace {ns} is not a valid DNS-1123 name")
    return os.path.join(ns, f"{name}.yaml")


def write_policy_files(policies: list[dict], out_dir: str) -> list[str]:
    """Write one file per policy under ``out_dir``; returns the paths written.

    Every path and every document is prepared before the first file is touched, so bad input
    leaves the directory as it was.
    """
    prepared = [(os.path.join(out_dir, policy_path(p)), to_yaml(p)) for p in policies]
    paths = [path for path, _ in prepared]
    if len(set(paths)) != len(paths):
        dup = sorted({p for p in paths if paths.count(p) > 1})[0]
        raise OutputError(dup, None, "two policies would be written to the same file")
    for path, text in prepared:
        _write_atomic(path, text)
    return paths


def _write_atomic(path: str, text: str) -> None:
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
