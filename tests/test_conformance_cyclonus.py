"""Conformance with cyclonus' worked example (../shared/samples/cyclonus).

- The probe: ``examples/probe.json`` (namespaces x, y, z; pods a, b, c; TCP 80, 81, 82) under
  the policies of ``networkpolicies/simple-example`` must give cyclonus' Ingress, Egress and
  Combined truth tables in ``examples/cyclonus-output/analyze-probe.txt``, cell by cell
  (``.`` allowed, ``X`` blocked; ``N`` — no container serves the port — is checked against the
  pod's ports; ``?`` cells are cyclonus not knowing, and are not compared).
- The traffic queries: each connection of ``examples/traffic.json`` (described by labels rather
  than by pod name) must get cyclonus' answer in ``analyze-query-traffic.txt``, per direction:
  whether any policy targets it, and whether it is allowed.

Nothing of the example is skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from netpolgen.inventory import ContainerPort, Inventory, Namespace, Pod
from netpolgen.policy import Engine, load_policies

CELL = {".": True, "X": False}


@pytest.fixture(scope="module")
def cyclonus(samples: Path) -> Path:
    return samples / "cyclonus"


@pytest.fixture(scope="module")
def probe(cyclonus: Path) -> dict:
    return json.loads((cyclonus / "examples" / "probe.json").read_text())


@pytest.fixture(scope="module")
def engine(cyclonus: Path, probe: dict) -> Engine:
    res = probe["Resources"]
    namespaces = {n: Namespace(n, dict(labels)) for n, labels in res["Namespaces"].items()}
    pods = [
        Pod(p["Namespace"], p["Name"], dict(p["Labels"]), (p["IP"],),
            ports=tuple(ContainerPort(c["Port"], c["Protocol"].upper(), c["PortName"]) for c in p["Containers"]))
        for p in res["Pods"]
    ]
    policies = load_policies([str(cyclonus / "networkpolicies" / "simple-example")])
    return Engine(Inventory(namespaces=namespaces, pods=pods), policies)


def parse_tables(text: str) -> list[dict[str, dict[tuple[str, str], str]]]:
    """Per probe: {"Ingress"|"Egress"|"Combined": {(src, dst): cell}} (rows are sources)."""
    probes: list[dict] = []
    kind = None
    header: list[str] = []
    for line in text.splitlines():
        if line.rstrip(":") in ("Ingress", "Egress", "Combined"):
            kind = line.rstrip(":")
            if kind == "Ingress":
                probes.append({})
            probes[-1][kind] = {}
            header = []
            continue
        if not line.startswith("|") or kind is None:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not cells[0]:
            header = [c.lower() for c in cells[1:]]
            continue
        for dst, cell in zip(header, cells[1:], strict=False):
            probes[-1][kind][(cells[0].lower(), dst)] = cell
    return [p for p in probes if any(p.values())]


def test_probe_truth_tables(cyclonus: Path, probe: dict, engine: Engine) -> None:
    tables = parse_tables((cyclonus / "examples" / "cyclonus-output" / "analyze-probe.txt").read_text())
    assert len(tables) == len(probe["Probes"])
    compared = 0
    for spec, table in zip(probe["Probes"], tables, strict=True):
        port, proto = spec["Port"], spec["Protocol"].upper()
        for kind, grid in table.items():
            assert len(grid) == 81, kind
            for (src, dst), cell in grid.items():
                v = engine.evaluate(src, dst, port, proto)
                got = {"Ingress": v.ingress_allowed, "Egress": v.egress_allowed, "Combined": v.allowed}[kind]
                if cell in CELL:
                    assert got is CELL[cell], (kind, src, dst, port, cell)
                    compared += 1
                elif cell == "N":
                    pod = engine.inventory.pod(dst)
                    assert not any(cp.port == port and cp.protocol == proto for cp in pod.ports), (dst, port)
                else:
                    assert cell == "?", cell
    assert compared >= 2 * 3 * 81  # probes 80 and 81 are fully known


def parse_traffic_answers(text: str) -> list[tuple[bool, dict[str, set[str]]]]:
    """Per query: (allowed, {"Ingress"/"Egress": actions listed}). A direction no policy
    targets does not appear."""
    answers = []
    actions: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("Is traffic allowed?"):
            actions, current = {}, None
            continue
        m = re.match(r"^\| IS ALLOWED\? \|\s*(TRUE|FALSE)", line)
        if m:
            answers.append((m.group(1) == "TRUE", actions))
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("TYPE",):
            continue
        if cells[0] in ("Ingress", "Egress"):
            current = cells[0]
        if current and cells[1] in ("Allow", "Deny"):
            actions.setdefault(current, set()).add(cells[1])
    return answers


def _traffic_end(end: dict, name: str, port: int, port_name: str | None, proto: str) -> tuple[Pod | None, str, Namespace | None]:
    internal = end.get("Internal")
    if not internal:
        return None, end["IP"], None
    ports = (ContainerPort(port, proto, port_name),) if port_name else ()
    ns = Namespace(internal["Namespace"], dict(internal["NamespaceLabels"]))
    return Pod(ns.name, name, dict(internal["PodLabels"]), (end["IP"],), ports=ports), f"{ns.name}/{name}", ns


def test_traffic_queries(cyclonus: Path, engine: Engine) -> None:
    traffic = json.loads((cyclonus / "examples" / "traffic.json").read_text())
    answers = parse_traffic_answers((cyclonus / "examples" / "cyclonus-output" / "analyze-query-traffic.txt").read_text())
    assert len(answers) == len(traffic) == 4
    for t, (allowed, actions) in zip(traffic, answers, strict=True):
        proto, port = t["Protocol"].upper(), t["ResolvedPort"]
        src_pod, src, src_ns = _traffic_end(t["Source"], "source", port, None, proto)
        dst_pod, dst, dst_ns = _traffic_end(t["Destination"], "destination", port, t.get("ResolvedPortName"), proto)
        namespaces = {ns.name: ns for ns in (src_ns, dst_ns) if ns}
        inv = Inventory(namespaces=namespaces, pods=[p for p in (src_pod, dst_pod) if p])
        v = Engine(inv, engine.policies).evaluate(src, dst, port, proto)
        assert v.allowed is allowed, t
        for kind, mine in (("Ingress", v.ingress), ("Egress", v.egress)):
            listed = actions.get(kind)
            assert mine.isolated is bool(listed), (kind, t)
            if listed:
                assert mine.allowed is ("Allow" in listed), (kind, t)
