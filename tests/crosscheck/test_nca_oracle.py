"""The NCA oracle (tests/crosscheck/nca_oracle.py) reads NCA correctly, on cases with known answers.

- np-guard netpol-analyzer's real onlineboutique cluster: every off-diagonal cell of its pod x pod
  matrix (``connections_map_output.txt``, computed by np-guard's Go analyzer, not by NCA) must be
  what NCA says, as text and through ``allows`` on probe ports. The diagonal is not compared:
  NCA does not report a pod to itself (``allows`` refuses it, which is checked too);
- hand-built cases whose answers follow from the NetworkPolicy API alone: a default-deny plus
  one TCP 80 allow, several protocols and port ranges on one pair, replicas with equal labels;
- NCA's complaints about an unreadable policy surface as NcaError instead of a silent drop.

The tests that run NCA skip when it is not installed (see ``nca_oracle.nca_python``: the
README's test command puts it in ``.venv/nca``); the parser tests do not need it.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLES
from tests.crosscheck.nca_oracle import (
    NcaError,
    OraclePod,
    nca_connectivity,
    parse_conn,
    parse_connectivity,
)

BOUTIQUE = SAMPLES / "netpol-analyzer" / "tests" / "onlineboutique"
_MATRIX_LINE = re.compile(r"^src: (\S+), dest: (\S+), allowed conns: (.+)$")


def _connlist_allows(text: str, proto: str, port: int) -> bool:
    """np-guard's connlist connection syntax, read independently of the module under test."""
    if text == "All Connections":
        return True
    if text == "No Connections":
        return False
    current = None
    for token in text.split(","):
        m = re.fullmatch(r"(?:([A-Z]+) )?(\d+)(?:-(\d+))?", token)
        assert m, f"unexpected connlist token {token!r} in {text!r}"
        current = m.group(1) or current
        lo = int(m.group(2))
        hi = int(m.group(3) or lo)
        if current == proto and lo <= port <= hi:
            return True
    return False


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- onlineboutique


@pytest.fixture(scope="module")
def boutique(samples: Path, tmp_path_factory: pytest.TempPathFactory):
    doc = yaml.safe_load((BOUTIQUE / "pods.yaml").read_text(encoding="utf-8"))
    pods = [
        OraclePod(
            namespace=item["metadata"].get("namespace", "default"),
            name=item["metadata"]["name"],
            labels=item["metadata"].get("labels") or {},
            ip=(item.get("status") or {}).get("podIP", ""),
        )
        for item in doc["items"]
        if item.get("kind", "Pod") == "Pod"
    ]
    expected: dict[tuple[str, str], str] = {}
    for line in (BOUTIQUE / "connections_map_output.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            m = _MATRIX_LINE.match(line)
            assert m, line
            expected[(m.group(1), m.group(2))] = m.group(3).strip()
    conn = nca_connectivity([BOUTIQUE / "netpols.yaml"], pods, tmp_path_factory.mktemp("nca-boutique"))
    return pods, expected, conn


def test_boutique_matrix_covers_every_pod_pair(boutique):
    pods, expected, _ = boutique
    keys = {p.key for p in pods}
    assert len(keys) == 12
    assert set(expected) == {(s, d) for s in keys for d in keys}


def test_boutique_every_pair_as_text(boutique):
    pods, expected, conn = boutique
    got = conn.pairs()
    assert all(s != d for s, d in got), "NCA reported a pod to itself"
    mismatches = {
        (s, d): (want, got.get((s, d), "No Connections"))
        for (s, d), want in expected.items()
        if s != d and got.get((s, d), "No Connections") != want
    }
    assert not mismatches, mismatches
    # Not vacuous: the policies admit 15 pod pairs and deny the other 117 off-diagonal ones.
    admitted = sum(1 for (s, d), v in expected.items() if s != d and v != "No Connections")
    assert len(got) == admitted and 0 < admitted < len(expected) - len(pods)


def test_boutique_every_pair_through_allows(boutique):
    pods, expected, conn = boutique
    ports = {int(p) for v in expected.values() for p in re.findall(r"\d+", v)}
    probes = sorted({q for p in ports for q in (p - 1, p, p + 1)} | {1, 53, 65535})
    for (s, d), want in expected.items():
        if s == d:
            with pytest.raises(ValueError):
                conn.allows(s, d, "TCP", 80)
            continue
        for proto in ("TCP", "UDP", "SCTP"):
            for port in probes:
                assert conn.allows(s, d, proto, port) == _connlist_allows(want, proto, port), (s, d, proto, port, want)


def test_boutique_other_peers_are_kept_apart(boutique):
    _, _, conn = boutique
    # redis-cart has no policy: it talks to the world (IP ranges), which is not a pod pair.
    redis_to_world = "default/redis-cart-78746d49dc-5hk5z => 0.0.0.0-255.255.255.255 "
    assert any(line.startswith(redis_to_world) for line in conn.other_lines)
    with pytest.raises(KeyError):
        conn.allows("default/redis-cart-78746d49dc-5hk5z", "kube-system/kube-dns-livesim", "UDP", 53)


# --------------------------------------------------------------------------- hand-built cases


def test_default_deny_and_one_tcp_80_allow(tmp_path: Path):
    deny = _write(
        tmp_path / "deny.yaml",
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: default-deny, namespace: web}
        spec: {podSelector: {}, policyTypes: [Ingress]}
        """,
    )
    allow = _write(
        tmp_path / "allow.yaml",
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-client, namespace: web}
        spec:
          podSelector: {matchLabels: {app: server}}
          policyTypes: [Ingress]
          ingress:
          - from: [{podSelector: {matchLabels: {app: client}}}]
            ports: [{protocol: TCP, port: 80}]
        """,
    )
    pods = [
        OraclePod("web", "client", {"app": "client"}, "10.1.0.1"),
        OraclePod("web", "server", {"app": "server"}, "10.1.0.2"),
        OraclePod("web", "other", {"app": "other"}, "10.1.0.3"),
        OraclePod("ops", "probe", {"app": "client"}, "10.2.0.1"),  # right labels, wrong namespace
    ]
    work = tmp_path / "nca"
    work.mkdir()
    conn = nca_connectivity([deny, allow], pods, work)

    assert conn.allows("web/client", "web/server", "TCP", 80)
    assert conn.allows("web/client", "web/server", "tcp", 80)
    assert not conn.allows("web/client", "web/server", "TCP", 81)
    assert not conn.allows("web/client", "web/server", "UDP", 80)
    assert not conn.allows("web/other", "web/server", "TCP", 80)
    assert not conn.allows("ops/probe", "web/server", "TCP", 80)
    assert not conn.allows("web/server", "web/client", "TCP", 80)
    # Egress is not restricted and ops has no policies: web pods reach ops/probe on anything.
    assert conn.allows("web/server", "ops/probe", "UDP", 5353)
    assert conn.pairs() == {
        ("web/client", "web/server"): "TCP 80",
        ("web/client", "ops/probe"): "All Connections",
        ("web/other", "ops/probe"): "All Connections",
        ("web/server", "ops/probe"): "All Connections",
    }
    with pytest.raises(KeyError):
        conn.allows("web/client", "web/nobody", "TCP", 80)
    # The inputs NCA read are in the work directory, namespaces labelled by name.
    ns_doc = yaml.safe_load((work / "namespaces.yaml").read_text())
    assert {n["metadata"]["name"]: n["metadata"]["labels"] for n in ns_doc["items"]} == {
        "ops": {"kubernetes.io/metadata.name": "ops"},
        "web": {"kubernetes.io/metadata.name": "web"},
    }
    pod_doc = yaml.safe_load((work / "pods.yaml").read_text())
    assert pod_doc["kind"] == "PodList"
    assert all("ownerReferences" not in p["metadata"] for p in pod_doc["items"])


def test_several_protocols_and_port_ranges_on_one_pair(tmp_path: Path):
    policy = _write(
        tmp_path / "dns.yaml",
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: dns, namespace: kube-system}
        spec:
          podSelector: {matchLabels: {k8s-app: dns}}
          policyTypes: [Ingress]
          ingress:
          - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: app}}}]
            ports:
            - {protocol: UDP, port: 53}
            - {protocol: TCP, port: 53}
            - {protocol: TCP, port: 10053, endPort: 10054}
            - {protocol: UDP, port: 10053}
            - {protocol: SCTP, port: 9}
        """,
    )
    pods = [
        OraclePod("app", "a", {"app": "a"}, "10.3.0.1"),
        OraclePod("kube-system", "dns", {"k8s-app": "dns"}, "10.3.0.2"),
    ]
    conn = nca_connectivity([policy], pods, tmp_path)
    assert conn.pairs()[("app/a", "kube-system/dns")] == "SCTP 9,TCP 53,10053-10054,UDP 53,10053"
    assert len(conn.raw_pairs()[("app/a", "kube-system/dns")]) >= 2  # NCA prints one line per port set
    for proto, port, want in [
        ("TCP", 53, True), ("TCP", 10053, True), ("TCP", 10054, True), ("TCP", 10055, False),
        ("TCP", 10052, False), ("UDP", 53, True), ("UDP", 10053, True), ("UDP", 10054, False),
        ("SCTP", 9, True), ("SCTP", 53, False), ("UDP", 9, False),
    ]:  # fmt: skip
        assert conn.allows("app/a", "kube-system/dns", proto, port) == want, (proto, port)
    assert conn.pairs()[("kube-system/dns", "app/a")] == "All Connections"


def test_replicas_with_equal_labels_stay_separate_pods(tmp_path: Path):
    # NCA keeps at most two pods of one owner with equal labels; OraclePods have no owner.
    policy = _write(
        tmp_path / "p.yaml",
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          ingress:
          - from: [{podSelector: {matchLabels: {app: web}}}]
            ports: [{port: 8080}]
        """,
    )
    pods = [OraclePod("shop", f"web-{i}", {"app": "web", "pod-template-hash": "abc"}, f"10.4.0.{i}") for i in range(4)]
    conn = nca_connectivity([policy], pods, tmp_path)
    assert any("policyTypes is missing/empty" in w for w in conn.warnings)  # lint, not an error
    keys = [p.key for p in pods]
    assert conn.pairs() == {(s, d): "TCP 8080" for s in keys for d in keys if s != d}


def test_nca_complaint_is_an_error_not_a_dropped_policy(tmp_path: Path):
    bad = _write(
        tmp_path / "bad.yaml",
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: bad, namespace: web}
        spec:
          podSelector: {}
          ingress: [{ports: [{protocol: TCPX, port: 80}]}]
        """,
    )
    with pytest.raises(NcaError, match="protocol has invalid value"):
        nca_connectivity([bad], [OraclePod("web", "a", {}, "10.5.0.1")], tmp_path)


# --------------------------------------------------------------------------- the parser alone


@pytest.mark.parametrize(
    ("text", "yes", "no"),
    [
        ("All connections", [("TCP", 1), ("UDP", 65535), ("ICMP", 0)], []),
        ("No connections", [], [("TCP", 80)]),
        ("{protocols:TCP,dst_ports:80,443,8000-8010}", [("TCP", 443), ("TCP", 8010)], [("TCP", 81), ("UDP", 80)]),
        ("{protocols:TCP, UDP,dst_ports:53}", [("TCP", 53), ("UDP", 53)], [("SCTP", 53), ("TCP", 54)]),
        ("{protocols:UDP}", [("UDP", 1), ("UDP", 65535)], [("TCP", 1)]),
        ("{protocols:TCP,dst_ports:80},{protocols:UDP,dst_ports:53}", [("TCP", 80), ("UDP", 53)], [("TCP", 53)]),
        ("{dst_ports:80}", [("TCP", 80), ("UDP", 80)], [("TCP", 81)]),
        ("{protocols:all but TCP}", [("UDP", 80), ("ICMP", 0)], [("TCP", 80)]),
        ("All but {protocols:TCP,dst_ports:22}", [("TCP", 80), ("UDP", 22)], [("TCP", 22)]),
    ],
)
def test_parse_conn(text, yes, no):
    conn = parse_conn(text)
    for proto, port in yes:
        assert conn.allows(proto, port), (text, proto, port)
    for proto, port in no:
        assert not conn.allows(proto, port), (text, proto, port)


@pytest.mark.parametrize("text", ["TCP 80", "{protocols:TCP,dst_ports:eighty}", "{methods:GET}", "{}"])
def test_parse_conn_refuses_what_it_does_not_understand(text):
    with pytest.raises(NcaError):
        parse_conn(text)


def test_parse_connectivity_unions_lines_and_keeps_other_peers():
    text = "\n".join(
        [
            "a/x => a/y : {protocols:TCP,dst_ports:53,80}",
            "a/x => a/y : {protocols:UDP,dst_ports:53}",
            "a/x => a/y : {protocols:TCP,dst_ports:8080-8090}",
            "a/x => a/y : {protocols:TCP,dst_ports:8085-8095,8096}",
            "a/x[Pod] => b/z[Pod] : {protocols:TCP,dst_ports:10053-10054}",
            "a/x => 10.0.0.0-10.255.255.255 : All connections",
            "kube-system/kube-dns-livesim => a/x : All connections",
        ]
    )
    conn = parse_connectivity(text, ["a/x", "a/y", "b/z"])
    assert conn.pairs() == {("a/x", "a/y"): "TCP 53,80,8080-8096,UDP 53", ("a/x", "b/z"): "TCP 10053-10054"}
    assert conn.allows("a/x", "a/y", "UDP", 53) and not conn.allows("a/x", "a/y", "UDP", 80)
    assert not conn.allows("a/y", "a/x", "TCP", 80)
    assert len(conn.other_lines) == 2
    with pytest.raises(NcaError):
        parse_connectivity("a/x -> a/y : All connections", ["a/x", "a/y"])


def test_without_nca_the_caller_skips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import tests.crosscheck.nca_oracle as oracle

    monkeypatch.setattr(oracle, "nca_python", lambda: None)
    assert not oracle.nca_available()
    with pytest.raises(pytest.skip.Exception, match="network-config-analyzer"):
        oracle.nca_connectivity([], [OraclePod("web", "a", {}, "10.6.0.1")], tmp_path)


def test_an_unusable_explicit_nca_python_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import tests.crosscheck.nca_oracle as oracle

    monkeypatch.setenv(oracle.NCA_PYTHON_ENV, str(tmp_path / "no-such-python"))
    oracle.nca_python.cache_clear()
    try:
        with pytest.raises(NcaError, match="cannot import nca"):
            oracle.nca_python()
    finally:
        monkeypatch.delenv(oracle.NCA_PYTHON_ENV)
        oracle.nca_python.cache_clear()
