"""netpolgen on the three real Hubble clusters, each run on its own with no inventory, as a new
user would: every observed request connection allowed, nothing else opened between the pods of
a namespace that has a policy, the self-check passing with exit 0, and the output equal to the
expected policies in ``tests/golden/hubble/<cluster>`` (reviewed against the flows by reading
them; the README there says what each holds and why).
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netpolgen.identity import IdentityResolver
from netpolgen.inventory import Inventory
from netpolgen.pipeline import generate
from netpolgen.policy import Engine
from netpolgen.synthesize import SynthesisOptions
from tests.conftest import UPDATE_GOLDEN
from tests.realdata.clusters import CLUSTERS, cluster_files, observed_connections
from tests.schema import assert_valid_networkpolicy

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "hubble"
# Every namespace gets policies (kube-system too): the strictest reading of "least privilege".
ALL_NAMESPACES = SynthesisOptions(exclude_namespaces=())


def _run_cli(files: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netpolgen", "generate", *map(str, files), "--output", str(out), *extra],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.yaml"))}


def _readable_diff(want: dict[str, str], got: dict[str, str]) -> str:
    lines: list[str] = []
    for name in sorted(set(want) | set(got)):
        if want.get(name) != got.get(name):
            lines.extend(difflib.unified_diff((want.get(name) or "").splitlines(), (got.get(name) or "").splitlines(),
                                              f"golden/{name}", f"output/{name}", lineterm=""))
    return "\n".join(lines)


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_cli_on_each_cluster_passes_its_self_check_and_writes_the_expected_policies(samples: Path, tmp_path: Path, cluster: str) -> None:
    proc = _run_cli(cluster_files(samples, cluster), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "self-check: passed" in proc.stderr and "DENIED" not in proc.stderr
    got = _tree(tmp_path)
    golden = GOLDEN / cluster
    if UPDATE_GOLDEN:
        for old in golden.rglob("*.yaml"):
            old.unlink()
        for name, text in got.items():
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_text(text)
    want = _tree(golden)
    assert got == want, "output differs from the reviewed golden policies:\n" + _readable_diff(want, got)
    for text in got.values():
        assert_valid_networkpolicy(yaml.safe_load(text))


def _pod_for(inv: Inventory, identity: tuple) -> str:
    """The inventory pod an observed endpoint is: by name, else the one carrying its labels."""
    ns, name, labels = identity
    if name:
        assert inv.pod(f"{ns}/{name}") is not None, f"{ns}/{name} missing from the inventory"
        return f"{ns}/{name}"
    matches = sorted(p.key for p in inv.pods_in(ns) if tuple(sorted(p.labels.items())) == labels)
    assert matches, f"no pod in {ns} carries the identity's labels {labels}"
    return matches[0]


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def strict_run(request, samples: Path):
    """Each cluster generated with every namespace in scope, and its written policies."""
    files = cluster_files(samples, request.param)
    result = generate([str(f) for f in files], [], synthesis_options=ALL_NAMESPACES)
    return request.param, files, result


def test_every_observed_request_connection_is_allowed(strict_run) -> None:
    """The connections an independent reading of the records finds (tests/realdata/clusters.py),
    each evaluated by the engine over the generated policies."""
    cluster, files, result = strict_run
    observed = observed_connections(files)
    assert observed, f"{cluster}: the oracle found no request connection"
    engine = Engine(result.inventory, _policies(result))
    denied = []
    for src, dst, proto, port in sorted(observed):
        s, d = _pod_for(result.inventory, src), _pod_for(result.inventory, dst)
        if s == d:
            continue  # a pod talking to itself never crosses a policy
        if not engine.evaluate(s, d, port, proto).allowed:
            denied.append(f"{s} -> {d} {proto}/{port}")
    assert denied == [], f"{cluster}: observed but denied: {denied}"
    assert result.self_check.checked > 0 and not result.self_check.failed


def _policies(result):
    from netpolgen.policy import parse_policies

    return parse_policies(result.policies)


def test_nothing_else_is_opened_between_pods(strict_run) -> None:
    """For every ordered pair of pods and every protocol/port the cluster used (and two it did
    not), the policies allow the pair exactly when the flows show that connection between the
    two pods' workload classes (a class is what one selector can name: DESIGN.md)."""
    cluster, _, result = strict_run
    inv = result.inventory
    ids = IdentityResolver(inv)
    cls = {p.key: ids.identity(inv.workload_of(p)).class_ref for p in inv.pods if not p.from_template}
    allowed_classes = _class_connections(result)
    ports = sorted({(p, port) for _, _, p, port in allowed_classes} | {("TCP", 1), ("UDP", 9999)})
    engine = Engine(inv, _policies(result))
    wrong = []
    for s in sorted(cls):
        for d in sorted(cls):
            if s == d:
                continue
            for proto, port in ports:
                want = (cls[s], cls[d], proto, port) in allowed_classes
                if engine.evaluate(s, d, port, proto).allowed != want:
                    wrong.append(f"{s} -> {d} {proto}/{port}: {'denied' if want else 'allowed'} by the output")
    assert wrong == [], f"{cluster}: {len(wrong)} pairs wrong, e.g. {wrong[:10]}"


def _class_connections(result) -> set[tuple]:
    """(client class, server class, protocol, port) of every observed pod-to-pod edge, with the
    other protocol of a DNS edge (a client may retry over TCP; synthesis allows both)."""
    ids = IdentityResolver(result.inventory)
    edges = result.edges[result.edges["src_kind"].eq("pod") & result.edges["dst_kind"].eq("pod")]
    out: set[tuple] = set()
    for r in edges.itertuples(index=False):
        s = ids.identity(_ref(r.src_workload)).class_ref
        d = ids.identity(_ref(r.dst_workload)).class_ref
        out.add((s, d, r.proto, int(r.dst_port)))
        if r.is_dns:
            out.add((s, d, "UDP" if r.proto == "TCP" else "TCP", int(r.dst_port)))
    return out


def _ref(text: str):
    from netpolgen.synthesize import _ref as parse_ref

    return parse_ref(text)


def test_an_independent_evaluator_agrees_observed_allowed_and_nothing_else(strict_run, tmp_path: Path) -> None:
    """np-guard's network-config-analyzer (not netpolgen's engine) evaluates the written files
    against the pods the flows imply: every observed request connection between two pods is
    allowed, and every other pod pair and port the cluster used (and two it did not) is
    allowed exactly when the flows show it between the two pods' workload classes."""
    from netpolgen.render import write_policy_files
    from tests.crosscheck.nca_oracle import OraclePod, nca_connectivity

    cluster, files, result = strict_run
    inv = result.inventory
    out = tmp_path / "policies"
    written = write_policy_files(result.policies, str(out))
    pods = [OraclePod(p.namespace, p.name, dict(p.labels), p.ips[0] if p.ips else "")
            for p in inv.pods if not p.from_template]
    conn = nca_connectivity([Path(f) for f in written], pods, tmp_path / "nca")
    denied = []
    for src, dst, proto, port in sorted(observed_connections(files)):
        s, d = _pod_for(inv, src), _pod_for(inv, dst)
        if s != d and not conn.allows(s, d, proto, port):
            denied.append(f"{s} -> {d} {proto}/{port}")
    assert denied == [], f"{cluster}: NCA says the output denies observed connections: {denied}"
    expected = _class_connections(result)
    ids = IdentityResolver(inv)
    cls = {p.key: ids.identity(inv.workload_of(p)).class_ref for p in inv.pods if not p.from_template}
    ports = sorted({(p, port) for _, _, p, port in expected} | {("TCP", 1), ("UDP", 9999)})
    wrong = [f"{s} -> {d} {proto}/{port}"
             for s in sorted(cls) for d in sorted(cls) if s != d for proto, port in ports
             if conn.allows(s, d, proto, port) != ((cls[s], cls[d], proto, port) in expected)]
    assert wrong == [], f"{cluster}: NCA and the flows disagree on {len(wrong)} pairs, e.g. {wrong[:10]}"


def test_the_dask_engine_writes_the_same_policies_for_the_hardest_cluster(samples: Path, tmp_path: Path) -> None:
    """kind-bookinfo (proxied identities, node addresses, DaemonSet pods by name) read and
    resolved file by file on Dask workers gives the same reviewed policies."""
    proc = _run_cli(cluster_files(samples, "kind-bookinfo"), tmp_path, "--engine", "dask")
    assert proc.returncode == 0, proc.stderr
    want = _tree(GOLDEN / "kind-bookinfo")
    got = _tree(tmp_path)
    assert got == want, _readable_diff(want, got)
