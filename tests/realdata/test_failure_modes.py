"""Each way netpolgen used to break real clusters, pinned down on real records where the samples
have them (``records/``: trimmed lines of the kind-bookinfo cluster, SOURCE.md says which) and
on documented-field records where no public data exists (Calico, IP reuse, a capture with one
inventory snapshot).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from netpolgen import exitcodes
from netpolgen.flows import normalize_flows
from netpolgen.inventory import inventory_from_objects
from netpolgen.pipeline import generate
from netpolgen.policy import Engine, parse_policies
from netpolgen.resolve import resolve_flows
from tests import kube
from tests.sources.test_calico import record as calico_record

REPO = Path(__file__).resolve().parents[2]
RECORDS = Path(__file__).resolve().parent / "records"


def _policy(result, namespace: str, name: str) -> dict:
    return next(p for p in result.policies if p["metadata"]["namespace"] == namespace and p["metadata"]["name"] == name)


def _peers(rules: list[dict], key: str) -> list[dict]:
    return [peer for rule in rules for peer in rule[key]]


# ----- 1. identity-only endpoints ------------------------------------------------------------------


def test_an_identity_only_client_is_selected_by_its_labels() -> None:
    """reviews-v3 reaches ratings:9080 only through Cilium's proxy, from the node address
    10.244.1.29 with reviews-v3's labels and no pod name: ratings' ingress names reviews-v3 by
    its labels, the address is not unresolved, and the self-check passes."""
    result = generate([str(RECORDS / "identity-only-proxy.jsonl")], [])
    ratings = _policy(result, "bookinfo", "allow-ratings-v1")
    assert {"podSelector": {"matchLabels": {"app": "reviews", "sidecar.opentelemetry.io/injected": "bookinfo.otelcol-bookinfo",
                                            "version": "v3"}}} in _peers(ratings["spec"]["ingress"], "from")
    assert "10.244.1.29" not in result.report.unresolved
    assert not any("ipBlock" in peer for p in result.policies for r in p["spec"].get("ingress", []) for peer in r["from"])
    assert result.self_check.checked and not result.self_check.failed


def test_an_identity_no_named_pod_carries_is_its_own_workload_class(tmp_path: Path) -> None:
    """The same records without the lines that name reviews-v3's pod: the identity becomes a
    workload class of its own (kind Identity, named from its labels), selected by its labels."""
    lines = [line for line in (RECORDS / "identity-only-proxy.jsonl").read_text().splitlines()
             if "reviews-v3-84779c7bbc" not in line]
    path = tmp_path / "flows.json"
    path.write_text("\n".join(lines) + "\n")
    result = generate([str(path)], [])
    policy = _policy(result, "bookinfo", "allow-reviews-v3")
    assert policy["metadata"]["annotations"]["netpolgen.io/workload"] == "bookinfo/reviews-v3[Identity]"
    assert policy["spec"]["podSelector"]["matchLabels"]["version"] == "v3"
    assert policy["spec"]["egress"][0]["ports"] == [{"port": 9080, "protocol": "TCP"}]
    assert not result.self_check.failed and result.self_check.checked


# ----- 2. pods labels cannot tell apart ------------------------------------------------------------


def test_daemonset_pods_told_apart_by_name_only_are_one_workload_inferred_from_their_names() -> None:
    """Two otelcol-hubble-collector pods on two nodes, no workloads field, identical labels:
    the DaemonSet is inferred from the <ds>-<5> names, one selector names both, jaeger's
    ingress has one peer for them, and the inference is reported."""
    result = generate([str(RECORDS / "daemonset-by-name.jsonl")], [])
    jaeger = _policy(result, "jaeger", "allow-jaeger-default")
    peers = _peers(jaeger["spec"]["ingress"], "from")
    assert len(peers) == 1
    assert peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "otelcol-hubble-collector"
    assert "kube-system/otelcol-hubble-collector[DaemonSet]" in result.inventory.inferred_owners
    assert not result.self_check.failed


def test_bare_pods_with_identical_labels_are_one_label_class_policy(tmp_path: Path) -> None:
    """Calico records of two pods with no owner anyone can infer (plain names) and the same
    labels, both calling cartservice: one class policy selects both, annotated with its members,
    counted in the summary; nothing is left without a rule."""
    recs = [calico_record(source_name=name, source_name_aggr=name, source_ip=ip,
                          source_labels={"labels": ["app=loadgen"]})
            for name, ip in (("loadgen-east", "10.48.1.11"), ("loadgen-west", "10.48.1.12"))]
    path = tmp_path / "flows.log"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    result = generate([str(path)], [])
    cls = _policy(result, "shop", "allow-loadgen")
    assert cls["spec"]["podSelector"] == {"matchLabels": {"app": "loadgen"}}
    assert cls["metadata"]["annotations"]["netpolgen.io/label-class"] == "shop/loadgen-east[Pod], shop/loadgen-west[Pod]"
    assert "identical labels (app=loadgen)" in cls["metadata"]["annotations"]["netpolgen.io/label-class-reason"]
    assert result.synthesis.label_classes and result.synthesis.problems == []
    assert not result.self_check.failed and result.self_check.checked == 2  # one per member workload


# ----- 3. one address, one story ------------------------------------------------------------------


def test_an_address_that_is_node_and_proxy_source_has_one_story(tmp_path: Path) -> None:
    """10.244.0.148 is the node (reserved:host for the kubelet's probe of jaeger, remote-node
    for the other node) and the source address of productpage's proxied requests: it is a node
    peer everywhere and never unresolved, the proxied requests are productpage's, and the
    summary names it once."""
    proc = subprocess.run([sys.executable, "-m", "netpolgen", "generate", str(RECORDS / "one-address-node-and-proxy.jsonl"),
                           "--output", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stderr
    lines = summary.splitlines()
    at = [i for i, line in enumerate(lines) if "10.244.0.148" in line]
    assert len(at) == 1 and lines[at[0] - 1].startswith("node peers")
    reviews = yaml.safe_load((tmp_path / "bookinfo" / "allow-reviews-v2.yaml").read_text())
    assert _peers(reviews["spec"]["ingress"], "from") == [{"podSelector": {"matchLabels": {
        "app": "productpage", "sidecar.opentelemetry.io/injected": "bookinfo.otelcol-bookinfo", "version": "v1"}}}]
    jaeger = yaml.safe_load((tmp_path / "jaeger" / "allow-jaeger-default.yaml").read_text())
    assert {"ipBlock": {"cidr": "10.244.0.148/32"}} in _peers(jaeger["spec"]["ingress"], "from")


def test_a_pod_address_is_never_an_ipblock_even_when_a_record_calls_it_world(tmp_path: Path) -> None:
    """Hubble's L7 records sometimes label a pod's address reserved:world (kind-bookinfo's
    productpage -> reviews-v1 responses do): the address is the pod's, never an ipBlock."""
    line = json.loads((RECORDS / "one-address-node-and-proxy.jsonl").read_text().splitlines()[-1])
    flow = line["flow"]
    world = json.loads(json.dumps(line))
    world["flow"]["destination"] = {"identity": 2, "labels": ["reserved:world"]}
    world["flow"]["l4"]["TCP"]["source_port"] += 1
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(line) + "\n" + json.dumps(world) + "\n")
    result = generate([str(path)], [])
    pod_ips = {ip for p in result.inventory.pods for ip in p.ips}
    assert flow["IP"]["destination"] in pod_ips
    blocks = [peer["ipBlock"]["cidr"].split("/")[0] for p in result.policies
              for rule in p["spec"].get("egress", []) for peer in rule["to"] if "ipBlock" in peer]
    assert not set(blocks) & pod_ips


# ----- 4. a failing self-check is a failure -------------------------------------------------------


def _unselectable_inventory(tmp_path: Path) -> Path:
    objs = [kube.namespace("ns"), kube.pod("ns", "bare", "10.0.0.1", {"pod-template-hash": "x"}),
            kube.pod("ns", "web", "10.0.0.3", {"app": "web"})]
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(kube.as_list(*objs)))
    return path


def test_generate_exits_3_lists_every_denied_connection_and_still_writes(tmp_path: Path) -> None:
    """A pod no selector can name calls web: the output denies it, so generate writes the files,
    lists the connection with why on stderr, and exits with the self-check code (not 0, not 2)."""
    flows = tmp_path / "flows.csv"
    flows.write_text("src_ip,dst_ip,src_port,dst_port,proto\n10.0.0.1,10.0.0.3,40000,80,TCP\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "netpolgen", "generate", str(flows), "-i", str(_unselectable_inventory(tmp_path)),
           "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == exitcodes.SELF_CHECK_FAILED == 3, proc.stderr
    assert "self-check: FAILED: 1 of 1 observed connections are DENIED" in proc.stderr
    assert "ns/bare[Pod] -> ns/web[Pod] TCP/80: " in proc.stderr and "no stable labels" in proc.stderr
    assert (out / "ns" / "default-deny.yaml").exists()
    quiet = subprocess.run(cmd + ["-q"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert quiet.returncode == 3 and "ns/bare[Pod] -> ns/web[Pod] TCP/80" in quiet.stderr
    warned = subprocess.run(cmd + ["--warn-on-self-check"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert warned.returncode == 0 and "warning: the self-check failed" in warned.stderr


# ----- 5. IP reuse over the window ----------------------------------------------------------------


def test_an_address_two_pods_held_resolves_per_record(tmp_path: Path) -> None:
    """The real productpage -> reviews-v2 request, and the same record a minute later from a
    different pod (other name, other labels) that got productpage's address: each record is its
    own pod's, never a merge of the two."""
    line = json.loads((RECORDS / "one-address-node-and-proxy.jsonl").read_text().splitlines()[-1])
    later = json.loads(json.dumps(line))
    later["flow"]["time"] = "2021-11-10T10:42:00Z"
    later["flow"]["source"]["pod_name"] = "batch-job-7f9c4b6d5d-x2x9q"
    later["flow"]["source"]["labels"] = ["k8s:app=batch", "k8s:io.kubernetes.pod.namespace=bookinfo"]
    later["flow"]["l4"]["TCP"]["source_port"] += 7
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(line) + "\n" + json.dumps(later) + "\n")
    result = generate([str(path)], [])
    reviews = _policy(result, "bookinfo", "allow-reviews-v2")
    apps = sorted(p["podSelector"]["matchLabels"]["app"] for p in _peers(reviews["spec"]["ingress"], "from"))
    assert apps == ["batch", "productpage"]
    assert not result.report.ambiguous_ips and not result.self_check.failed


def test_a_capture_record_older_than_the_pod_at_its_address_is_ambiguous_not_credited() -> None:
    """A capture has no identities and the inventory is one snapshot: the pod at 10.0.0.1 was
    created after the first connection, so that one is reported as ambiguous and gets no rule;
    the later one is the pod's."""
    inv = inventory_from_objects([kube.as_list(
        kube.pod("ns", "client", "10.0.0.1", {"app": "client"}, created="2026-01-01T00:10:00Z"),
        kube.pod("ns", "web", "10.0.0.3", {"app": "web"}, created="2026-01-01T00:00:00Z"),
    )])
    t0 = pd.Timestamp("2026-01-01T00:05:00Z").timestamp()
    t1 = pd.Timestamp("2026-01-01T00:15:00Z").timestamp()
    flows = normalize_flows(pd.DataFrame([
        {"src_ip": "10.0.0.1", "src_port": 40000, "dst_ip": "10.0.0.3", "dst_port": 80, "proto": "TCP",
         "direction_known": True, "connections": 1, "first_seen": t, "last_seen": t, "dst_names": ""} for t in (t0, t1)
    ]))
    res = resolve_flows(flows, inv)
    assert list(res.flows.sort_values("first_seen")["src_kind"]) == ["unresolved", "pod"]
    assert "started after the flow" in res.report.ambiguous_ips["10.0.0.1"]


# ----- Calico aggregated records ------------------------------------------------------------------


def test_calico_aggregated_records_and_networks_become_exact_rules(tmp_path: Path) -> None:
    """Calico's default aggregation: pod names replaced by ``<prefix>-*`` (source_name "-"),
    source ports null, and the world as ``pub``/``pvt`` nets without addresses. The aggregated
    endpoints are workloads (Deployments from their names), the nets get no rule (nothing to
    name) and are said, and every observed pod connection is allowed."""
    recs = [
        calico_record(source_name="-", source_ip="-", dest_name="-", dest_ip="-"),
        calico_record(source_name="-", source_ip="-", source_name_aggr="frontend-755cdc7957-*",
                      dest_name="-", dest_ip="-", dest_name_aggr="pub", dest_type="net", dest_namespace="-",
                      dest_labels=None, dest_port=443, dest_service_name="-", dest_service_namespace="-",
                      dest_service_port="-"),
        calico_record(source_name="-", source_ip="-", source_name_aggr="pvt", source_type="net", source_namespace="-",
                      source_labels=None, dest_name="-", dest_ip="-", dest_name_aggr="frontend-755cdc7957-*",
                      dest_labels={"labels": ["app=frontend", "pod-template-hash=755cdc7957"]}, dest_port=8080),
    ]
    path = tmp_path / "flows.log"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    result = generate([str(path)], [])
    cart = _policy(result, "shop", "allow-cartservice")
    assert _peers(cart["spec"]["ingress"], "from") == [{"podSelector": {"matchLabels": {"app": "frontend"}}}]
    frontend = _policy(result, "shop", "allow-frontend")
    assert [r["ports"] for r in frontend["spec"]["egress"]] == [[{"port": 7070, "protocol": "TCP"}]]
    assert "ingress" not in frontend["spec"]  # the pvt net cannot be named: no rule, reported
    assert result.report.unresolved
    engine = Engine(result.inventory, parse_policies(result.policies))
    fe = next(p.key for p in result.inventory.pods if p.namespace == "shop" and p.name.startswith("frontend"))
    cs = next(p.key for p in result.inventory.pods if p.namespace == "shop" and p.name.startswith("cartservice"))
    assert engine.evaluate(fe, cs, 7070, "TCP").allowed and not engine.evaluate(cs, fe, 7070, "TCP").allowed
    assert not result.self_check.failed


def test_explain_tells_the_same_story_of_an_address_as_generate(tmp_path: Path) -> None:
    """explain, reading the same records, calls 10.244.0.148 a node, as the summary does, and
    finds the rule generate wrote for it."""
    records = str(RECORDS / "one-address-node-and-proxy.jsonl")
    out = tmp_path / "out"
    gen = subprocess.run([sys.executable, "-m", "netpolgen", "generate", records, "-o", str(out), "-q"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert gen.returncode == 0, gen.stderr
    proc = subprocess.run([sys.executable, "-m", "netpolgen", "explain", "10.244.0.148", "jaeger/jaeger-default", "14269/TCP",
                           "--flows", records, "-p", str(out)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "source 10.244.0.148: node"
    assert "admitted by jaeger/allow-jaeger-default" in proc.stdout
