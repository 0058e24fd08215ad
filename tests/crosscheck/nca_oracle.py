"""An independent oracle for tests: which pod-to-pod connections NetworkPolicies allow, by NCA.

NCA is IBM np-guard's network-config-analyzer (PyPI ``network-config-analyzer``, module
``nca``; the ``crosscheck`` extra names it). Nothing here uses netpolgen's policy engine: the
answer is NCA's own connectivity map, read back from its text output.

How NCA is driven (one subprocess per call, ``python -m nca``; which Python: ``nca_python``,
normally the separate virtualenv ``.venv/nca`` that the README's test command makes, because
NCA's exact dependency pins would otherwise downgrade the test venv's kubernetes client):

    nca --connectivity <workdir>/policies --pod_list <workdir>/pods.yaml
        --ns_list <workdir>/namespaces.yaml --output_format txt_no_fw_rules
        --output_endpoints pods --file_out <workdir>/connectivity.txt

- ``policies/`` holds a copy of every given policy file (NCA takes one path per query);
- ``pods.yaml`` is a kubectl ``PodList``: each pod with its namespace, labels, ``status.podIP``
  and **no ownerReferences**. NCA groups pods by owner (``ns/name[Deployment]``) and keeps at
  most two pods of one owner with the same labels; an owner-less pod is its own workload
  (``ns/name(Pod)``), so every OraclePod stays a separate endpoint. ``--output_endpoints pods``
  then prints each endpoint as ``ns/name``, which is the pod key used here;
- ``namespaces.yaml`` is a ``NamespaceList`` of every namespace of a pod or a policy, each
  labelled ``kubernetes.io/metadata.name: <ns>`` only.

``txt_no_fw_rules`` prints one line per allowed (src, dst, connection-set) without the
firewall-rule minimisation of the other formats (those print label selectors such as
``app in (a,b)``, not pods); a pair may get several lines (one per protocol, say), which are
unioned here. Peers that are not given pods (IP ranges, the ``kube-system/kube-dns-livesim``
pod NCA adds when policies point at kube-dns) are kept apart in ``Connectivity.other_lines``.

NCA never reports a pod's connections to itself (its connectivity map leaves self-loops out),
so ``allows(a, a)`` raises instead of guessing. NCA does not match pod IPs against ipBlocks
(``status.podIP`` is written for completeness only), and named ports cannot resolve because
OraclePods have no containers.

Cost: one call on 20 pods and 10 policies takes 0.5 s unloaded (1.2 s with the 2 cores shared),
nearly all of it interpreter start and importing nca; NCA's own analysis reports 0.1 s.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

__all__ = [
    "Connectivity",
    "NcaError",
    "OraclePod",
    "nca_available",
    "nca_connectivity",
    "nca_python",
    "parse_conn",
    "parse_connectivity",
]

NCA_TIMEOUT_S = 300

# What NCA prints on stderr that does not change the answer: Info lines, and its NetworkPolicy
# lint warnings (K8sPolicyYamlParser: a selector that selects all or no pods, policyTypes left
# out). They are kept in Connectivity.warnings. Anything else on stderr (e.g. "Namespace zz is
# missing from the network configuration", "over-approximation analysis: ... is not yet
# supported", an Error) raises NcaError: an oracle that silently drops a rule is worse than none.
_BENIGN_STDERR = (
    re.compile(r"^Info: "),
    re.compile(
        r"^(?:\S+:\d+:\d+: )?Warning: (?:"
        r"A (?:non-empty )?(?:namespaceSelector|podSelector) selects (?:no|all) pods"
        r"|Rule selects no pods"
        r"|policyTypes is missing/empty in the spec of "
        r")"
    ),
)


class NcaError(RuntimeError):
    """NCA failed, complained, or printed something this module cannot read."""


@dataclass(frozen=True)
class OraclePod:
    namespace: str
    name: str
    labels: dict[str, str]
    ip: str

    def __post_init__(self) -> None:
        if not self.namespace or not self.name:
            raise ValueError(f"an OraclePod needs a namespace and a name: {self!r}")
        object.__setattr__(self, "labels", {str(k): str(v) for k, v in self.labels.items()})

    def __hash__(self) -> int:
        return hash((self.namespace, self.name, tuple(sorted(self.labels.items())), self.ip))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# --------------------------------------------------------------------------- connection sets

_PORT_MIN, _PORT_MAX = 1, 65535
_PORT_PROTOCOLS = ("SCTP", "TCP", "UDP")


@dataclass(frozen=True)
class _Cube:
    """One ``{protocols:...,dst_ports:...}`` block: protocols x destination ports."""

    protocols: frozenset[str] | None  # None: every protocol
    protocols_negated: bool  # protocols is "all but <these>"
    ports: tuple[tuple[int, int], ...] | None  # None: every port

    def allows(self, proto: str, port: int) -> bool:
        if self.protocols is not None and ((proto in self.protocols) == self.protocols_negated):
            return False
        return self.ports is None or any(lo <= port <= hi for lo, hi in self.ports)


@dataclass(frozen=True)
class _Conn:
    """One NCA connection text: All connections, or (All but) a union of cubes."""

    everything: bool
    negated: bool
    cubes: tuple[_Cube, ...]

    def allows(self, proto: str, port: int) -> bool:
        if self.everything:
            return True
        return any(c.allows(proto, port) for c in self.cubes) != self.negated


_CUBE_KEY = re.compile(r",(?=[a-z_]+:)")


def _parse_ports(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", part)
        if not m:
            raise NcaError(f"unreadable port set {text!r}")
        lo = int(m.group(1))
        ranges.append((lo, int(m.group(2)) if m.group(2) else lo))
    return tuple(ranges)


def _parse_cube(body: str) -> _Cube:
    protocols: frozenset[str] | None = None
    negated = False
    ports = None
    for item in _CUBE_KEY.split(body):
        key, sep, value = item.partition(":")
        if not sep:
            raise NcaError(f"unreadable connection cube {{{body}}}")
        if key == "protocols":
            value = value.strip()
            if value.startswith("all but "):
                negated, value = True, value[len("all but "):]
            if value != "*":
                protocols = frozenset(p.strip().upper() for p in value.split(","))
        elif key == "dst_ports":
            ports = _parse_ports(value)
        else:
            # src_ports, icmp_type/code, methods, paths, hosts: not from NetworkPolicy v1.
            raise NcaError(f"connection dimension {key!r} is not understood (in {{{body}}})")
    return _Cube(protocols, negated, ports)


def parse_conn(text: str) -> _Conn:
    """Read one NCA connection text (``All connections``, ``{protocols:TCP,dst_ports:80}``,
    ``{protocols:TCP, UDP,dst_ports:53},{protocols:SCTP}``, ``All but {...}``)."""
    text = text.strip()
    if text == "All connections":
        return _Conn(True, False, ())
    if text == "No connections":
        return _Conn(False, False, ())
    negated = text.startswith("All but ")
    if negated:
        text = text[len("All but "):].strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise NcaError(f"unreadable connection text {text!r}")
    cubes = tuple(_parse_cube(b) for b in text[1:-1].split("},{"))
    return _Conn(False, negated, cubes)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _conn_text(conns: list[_Conn], raw: list[str]) -> str:
    """The union of one pair's connections in np-guard's connlist syntax
    (``All Connections``, ``TCP 8080,9090,UDP 53``, ``TCP 10053-10054``): protocols in name
    order, each with its merged destination ports (``1-65535`` when unrestricted). Sets this
    syntax cannot say ("all but", "every protocol on port 80") keep NCA's own text, '; '-joined.
    """
    if any(c.everything for c in conns):
        return "All Connections"
    per_proto: dict[str, list[tuple[int, int]]] = {}
    for conn in conns:
        if conn.negated:
            return "; ".join(raw)
        for cube in conn.cubes:
            if cube.protocols is None or cube.protocols_negated:
                return "; ".join(raw)
            for proto in cube.protocols:
                if proto in _PORT_PROTOCOLS:
                    per_proto.setdefault(proto, []).extend(cube.ports or [(_PORT_MIN, _PORT_MAX)])
                elif cube.ports is None:
                    per_proto.setdefault(proto, [])
                else:
                    return "; ".join(raw)
    parts = []
    for proto in sorted(per_proto):
        ports = ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in _merge(per_proto[proto]))
        parts.append(f"{proto} {ports}" if ports else proto)
    return ",".join(parts) if parts else "No Connections"


# --------------------------------------------------------------------------- the answer


@dataclass
class Connectivity:
    """NCA's connectivity map over the given pods (ordered pairs of ``"ns/name"`` keys)."""

    pod_keys: frozenset[str]
    _conns: dict[tuple[str, str], list[_Conn]] = field(default_factory=dict)
    _raw: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # NCA lines with a peer that is not a given pod (IP ranges, LiveSim pods), verbatim.
    other_lines: list[str] = field(default_factory=list)
    # NCA's lint warnings about the policies (see _BENIGN_STDERR), verbatim.
    warnings: list[str] = field(default_factory=list)
    # NCA's complete text output and how long the run took.
    nca_output: str = ""
    seconds: float = 0.0

    def _check(self, src: str, dst: str) -> None:
        for key in (src, dst):
            if key not in self.pod_keys:
                raise KeyError(f"{key!r} is not one of the pods given to NCA")
        if src == dst:
            raise ValueError(f"NCA does not report a pod's connections to itself ({src})")

    def allows(self, src_pod_key: str, dst_pod_key: str, proto: str, port: int) -> bool:
        """Does NCA allow ``src`` to open ``proto``/``port`` to ``dst``?"""
        self._check(src_pod_key, dst_pod_key)
        proto = proto.upper()
        return any(c.allows(proto, port) for c in self._conns.get((src_pod_key, dst_pod_key), ()))

    def pairs(self) -> dict[tuple[str, str], str]:
        """Every ordered pod pair with some allowed connection (self-pairs never), with its
        connection text in np-guard's connlist syntax (see ``_conn_text``)."""
        return {pair: _conn_text(conns, self._raw[pair]) for pair, conns in sorted(self._conns.items())}

    def raw_pairs(self) -> dict[tuple[str, str], list[str]]:
        """NCA's own connection texts per pair, one per output line (e.g.
        ``{protocols:TCP,dst_ports:53,80}``)."""
        return {pair: list(texts) for pair, texts in sorted(self._raw.items())}


_LINE = re.compile(r"^(\S+) => (\S+) : (.+)$")
_ENDPOINTS = re.compile(r"cluster has (\d+) unique endpoints")


def _peer_key(name: str) -> str:
    # --output_endpoints pods prints ns/name; an owner-less pod in workload mode is ns/name[Pod].
    return name[: -len("[Pod]")] if name.endswith("[Pod]") else name


def parse_connectivity(text: str, pod_keys: Iterable[str]) -> Connectivity:
    """Read ``--output_format txt_no_fw_rules --output_endpoints pods`` output."""
    result = Connectivity(pod_keys=frozenset(pod_keys), nca_output=text)
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise NcaError(f"unreadable NCA output line {line!r}")
        src, dst, conn_text = _peer_key(m.group(1)), _peer_key(m.group(2)), m.group(3).strip()
        conn = parse_conn(conn_text)  # read every line, also those about other peers
        if src in result.pod_keys and dst in result.pod_keys:
            if src == dst:
                raise NcaError(f"NCA reported a self-loop, which it should not: {line!r}")
            result._conns.setdefault((src, dst), []).append(conn)
            result._raw.setdefault((src, dst), []).append(conn_text)
        else:
            result.other_lines.append(line)
    return result


# --------------------------------------------------------------------------- running NCA


NCA_PYTHON_ENV = "NETPOLGEN_NCA_PYTHON"


def _imports_nca(python: Path) -> bool:
    if not python.is_file():
        return False
    probe = subprocess.run([str(python), "-c", "import nca.nca_cli"], capture_output=True, timeout=120)
    return probe.returncode == 0


@functools.lru_cache(maxsize=1)
def nca_python() -> str | None:
    """The interpreter that runs NCA, or None when there is none:
    1. ``$NETPOLGEN_NCA_PYTHON`` when set (NcaError if it cannot import nca);
    2. the virtualenv ``nca`` inside the running one (``.venv/nca``, as the README and CI make
       it): NCA pins PyYAML==6.0.2, which in the test venv itself would pull the kubernetes
       client down to 36, under which tests/inventory/test_live*.py fail;
    3. the running interpreter, when nca is importable here (``pip install -e '.[crosscheck]'``).
    """
    explicit = os.environ.get(NCA_PYTHON_ENV)
    if explicit:
        if not _imports_nca(Path(explicit)):
            raise NcaError(f"${NCA_PYTHON_ENV}={explicit} cannot import nca (network-config-analyzer)")
        return explicit
    for bindir in ("bin", "Scripts"):
        for exe in ("python", "python.exe"):
            candidate = Path(sys.prefix) / "nca" / bindir / exe
            if candidate.is_file() and _imports_nca(candidate):
                return str(candidate)
    if importlib.util.find_spec("nca") is not None and importlib.util.find_spec("nca.nca_cli") is not None:
        return sys.executable
    return None


def nca_available() -> bool:
    return nca_python() is not None


def _require_nca() -> str:
    python = nca_python()
    if python is None:
        import pytest

        pytest.skip(
            "network-config-analyzer (module nca) is not installed: python3 -m venv .venv/nca && "
            ".venv/nca/bin/pip install 'network-config-analyzer==2.1.0' (or set $NETPOLGEN_NCA_PYTHON)"
        )
    return python


def _policy_namespaces(path: Path) -> set[str]:
    namespaces: set[str] = set()

    def visit(obj: object) -> None:
        if isinstance(obj, list):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            if isinstance(obj.get("items"), list):
                visit(obj["items"])
            elif obj.get("kind"):
                namespaces.add((obj.get("metadata") or {}).get("namespace") or "default")

    with path.open(encoding="utf-8") as fh:
        for doc in yaml.safe_load_all(fh):
            visit(doc)
    return namespaces


def _pod_object(pod: OraclePod) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels)},
        "spec": {"containers": [{"name": "main", "image": "oracle"}]},
        "status": {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}] if pod.ip else []},
    }


def _namespace_object(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
    }


def nca_connectivity(policy_files: list[Path], pods: list[OraclePod], workdir: Path) -> Connectivity:
    """Run NCA's connectivity query for ``policy_files`` over ``pods`` (inputs and output are
    written into ``workdir``) and return its answer. Skips the calling test when NCA is not
    installed; raises NcaError when NCA fails or complains on stderr."""
    python = _require_nca()
    keys = [p.key for p in pods]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate pod keys: {sorted(k for k in set(keys) if keys.count(k) > 1)}")

    workdir = Path(workdir)
    policy_dir = workdir / "policies"
    if policy_dir.exists():
        shutil.rmtree(policy_dir)
    policy_dir.mkdir(parents=True)
    namespaces = {p.namespace for p in pods}
    for i, src in enumerate(policy_files):
        src = Path(src)
        suffix = src.suffix.lower() if src.suffix.lower() in (".yaml", ".yml", ".json") else ".yaml"
        shutil.copyfile(src, policy_dir / f"{i:04d}-{src.stem}{suffix}")
        namespaces |= _policy_namespaces(src)

    pods_file = workdir / "pods.yaml"
    ns_file = workdir / "namespaces.yaml"
    out_file = workdir / "connectivity.txt"
    out_file.unlink(missing_ok=True)
    pods_file.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "PodList", "items": [_pod_object(p) for p in pods]}),
        encoding="utf-8",
    )
    ns_file.write_text(
        yaml.safe_dump(
            {"apiVersion": "v1", "kind": "NamespaceList", "items": [_namespace_object(n) for n in sorted(namespaces)]}
        ),
        encoding="utf-8",
    )

    cmd = [
        python, "-m", "nca",
        "--connectivity", str(policy_dir),
        "--pod_list", str(pods_file),
        "--ns_list", str(ns_file),
        "--output_format", "txt_no_fw_rules",
        "--output_endpoints", "pods",
        "--file_out", str(out_file),
    ]  # fmt: skip
    start = time.perf_counter()
    # cwd=workdir: NCA puts '.' first on PATH (to find kubectl/calicoctl); it needs neither here.
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=NCA_TIMEOUT_S)
    seconds = time.perf_counter() - start
    stderr_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    complaints = [line for line in stderr_lines if not any(p.match(line) for p in _BENIGN_STDERR)]
    if proc.returncode != 0 or complaints or not out_file.exists():
        raise NcaError(
            f"NCA exited {proc.returncode}: {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    m = _ENDPOINTS.search(proc.stdout)
    if not m or int(m.group(1)) < len(pods):
        raise NcaError(f"NCA did not keep every pod as an endpoint ({len(pods)} given):\n{proc.stdout}")

    result = parse_connectivity(out_file.read_text(encoding="utf-8"), keys)
    result.seconds = seconds
    result.warnings = [line for line in stderr_lines if "Warning: " in line]
    return result
