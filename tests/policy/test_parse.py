"""Parsing NetworkPolicies: what is accepted, what the model says, and the exact error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from netpolgen.cli import main
from netpolgen.errors import PolicyError
from netpolgen.policy import EGRESS, INGRESS, load_policies, parse_policies, parse_policy
from netpolgen.policy.conns import ConnSet


def np_doc(name: str = "p", ns: str | None = "prod", **spec) -> dict:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {}, **spec}}


def error_of(obj: dict) -> PolicyError:
    with pytest.raises(PolicyError) as e:
        parse_policy(obj, "f.yaml", "document 1")
    return e.value


# ----- the model ---------------------------------------------------------------------------------


def test_missing_policy_types_default_to_ingress_and_to_egress_only_with_egress_rules():
    assert parse_policy(np_doc()).policy_types == ("Ingress",)
    assert parse_policy(np_doc(egress=[{}])).policy_types == ("Ingress", "Egress")
    assert parse_policy(np_doc(egress=[])).policy_types == ("Ingress",)
    assert parse_policy(np_doc(policyTypes=["Egress"], ingress=[{}])).policy_types == ("Egress",)


def test_rules_of_unlisted_directions_do_not_count():
    p = parse_policy(np_doc(policyTypes=["Egress"], ingress=[{}], egress=[{}]))
    assert p.rules(INGRESS) == () and len(p.rules(EGRESS)) == 1


def test_namespace_defaults_to_default():
    assert parse_policy(np_doc(ns=None)).key == "default/p"


def test_ports_model_protocol_default_ranges_names_and_all():
    p = parse_policy(np_doc(ingress=[{"ports": [{"port": 80}, {"protocol": "UDP", "port": 5000, "endPort": 5005},
                                                 {"port": "http"}, {"protocol": "SCTP"}]}]))
    rule = p.ingress[0]
    assert [str(s) for s in rule.ports] == ["TCP 80", "UDP 5000-5005", "TCP http", "SCTP (all ports)"]
    assert rule.conns() == ConnSet.from_mapping({"TCP": [(80, 80)], "UDP": [(5000, 5005)], "SCTP": [(1, 65535)]})
    assert rule.conns(lambda name, proto: 8080 if (name, proto) == ("http", "TCP") else None).contains("TCP", 8080)


def test_ip_block_ranges_subtract_excepts():
    p = parse_policy(np_doc(ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]))
    block = p.ingress[0].peers[0].ip_block
    assert [str(r) for r in block.ranges] == ["10.0.0.0-10.0.255.255", "10.2.0.0-10.255.255.255"]


def test_empty_and_missing_peer_lists_both_mean_every_peer():
    p = parse_policy(np_doc(ingress=[{"from": []}, {}]))
    assert all(r.all_peers for r in p.ingress)


# ----- structural errors -------------------------------------------------------------------------


@pytest.mark.parametrize("spec, where, what", [
    ({"ingress": [{"ports": [{"port": 80}, {"port": 70000}]}]}, "spec.ingress[0].ports[1].port", "70000 is not a port number (1-65535)"),
    ({"ingress": [{"ports": [{"port": "Not_A_Name"}]}]}, "spec.ingress[0].ports[0].port",
     "'Not_A_Name' is neither a port number nor a valid port name"),
    ({"ingress": [{"ports": [{"port": "80"}]}]}, "spec.ingress[0].ports[0].port", "'80' is neither a port number nor a valid port name"),
    ({"ingress": [{"ports": [{"protocol": "ICMP"}]}]}, "spec.ingress[0].ports[0].protocol", "'ICMP' is not one of TCP, UDP, SCTP"),
    ({"egress": [{"ports": [{"port": 90, "endPort": 80}]}]}, "spec.egress[0].ports[0].endPort", "80 is below port 90"),
    ({"egress": [{"ports": [{"port": "http", "endPort": 90}]}]}, "spec.egress[0].ports[0].endPort", "cannot be used with a named port"),
    ({"ingress": [{"from": [{}]}]}, "spec.ingress[0].from[0]", "must specify podSelector, namespaceSelector or ipBlock"),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}, "spec.ingress[0].from[0]",
     "ipBlock cannot be combined with podSelector or namespaceSelector"),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}, "spec.ingress[0].from[0].ipBlock.cidr", None),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]", "11.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8"),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]", "10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8"),
    ({"ingress": [{"to": []}]}, "spec.ingress[0].to", "unknown field (an ingress rule has 'from' and 'ports')"),
    ({"ingress": {"from": []}}, "spec.ingress", "expected a list, got dict"),
    ({"policyTypes": ["Ingres"]}, "spec.policyTypes[0]", "'Ingres' is not Ingress or Egress"),
    ({"ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}]},
     "spec.ingress[0].from[0].podSelector.matchExpressions[0].values", "must be non-empty for In"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}},
     "spec.podSelector.matchExpressions[0].operator", None),
])
def test_structural_errors_name_the_file_the_document_and_the_path(spec, where, what):
    err = error_of(np_doc(**spec))
    assert err.file == "f.yaml"
    assert err.where == f"document 1: {where}"
    if what is not None:
        assert err.what == what


def test_shared_and_repeated_items_parse_as_they_would_alone():
    """Parsing remembers peers by identity and port items by content within one call; the
    policies must equal those parsed one by one."""
    peer = {"podSelector": {"matchLabels": {"app": "a"}}}  # the same object in every rule
    ports = lambda: [{"port": 80}, {"port": 53, "protocol": "UDP"}, {"port": "http"}]  # noqa: E731
    docs = [np_doc(f"p{i}", ns, ingress=[{"from": [peer], "ports": ports()}], egress=[{"to": [peer], "ports": ports()}])
            for i, ns in enumerate(("prod", "dev", "prod"))]
    together = parse_policies(docs)
    assert together == [parse_policy(d) for d in docs]
    assert together[0].ingress[0].ports == together[1].egress[0].ports


@pytest.mark.parametrize("valid, lookalike, where, what", [
    ({"port": 1}, {"port": True}, "spec.ingress[0].ports[0].port", "expected a number or a name"),
    ({"port": 1}, {"port": 1.0}, "spec.ingress[0].ports[0].port", "1.0 is not a port number (1-65535)"),
    ({"port": 80, "protocol": None}, {"port": 80, "proto": None}, "spec.ingress[0].ports[0].proto",
     "unknown field (a port has protocol, port and endPort)"),
    ({"port": 80}, {"port": 80, "proto": "TCP"}, "spec.ingress[0].ports[0].proto",
     "unknown field (a port has protocol, port and endPort)"),
])
def test_a_port_item_once_valid_does_not_vouch_for_a_lookalike(valid, lookalike, where, what):
    """Equal in Python (True == 1 == 1.0, a missing key reads as null) is not equal to the API."""
    with pytest.raises(PolicyError) as e:
        parse_policies([np_doc("a", ingress=[{"ports": [valid]}]), np_doc("b", ingress=[{"ports": [lookalike]}])])
    assert (e.value.where, e.value.what) == (f"object 2: {where}", what)


def test_a_shared_invalid_peer_is_reported_where_it_first_appears():
    bad = {"podSelector": {"matchLabels": "app=a"}}
    with pytest.raises(PolicyError) as e:
        parse_policies([np_doc("a", ingress=[{"from": [{"podSelector": {}}, bad]}]), np_doc("b", egress=[{"to": [bad]}])])
    assert e.value.where == "object 1: spec.ingress[0].from[1].podSelector.matchLabels"


def test_a_missing_pod_selector_is_an_error_not_every_pod():
    doc = np_doc()
    del doc["spec"]["podSelector"]
    assert error_of(doc).where == "document 1: spec.podSelector"


def test_invalid_names():
    assert error_of(np_doc(name="Bad_Name")).where == "document 1: metadata.name"
    doc = np_doc()
    del doc["metadata"]["name"]
    assert error_of(doc).what == "required"


def test_parse_policies_ignores_other_kinds_but_not_objects_without_kind():
    assert [p.key for p in parse_policies([np_doc("a"), {"kind": "Pod", "metadata": {"name": "x"}}])] == ["prod/a"]
    with pytest.raises(PolicyError) as e:
        parse_policies([{"metadata": {"name": "x"}}])
    assert e.value.where == "object 1"


# ----- files -------------------------------------------------------------------------------------


def test_load_policies_reads_files_directories_multidoc_lists_json_and_inventories(tmp_path: Path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "multi.yaml").write_text(yaml.safe_dump_all([np_doc("a"), {"kind": "Service", "metadata": {"name": "s"}}, np_doc("b")]))
    (tmp_path / "sub" / "list.json").write_text(json.dumps({"kind": "List", "items": [np_doc("c")]}))
    (tmp_path / "sub" / "deeper" / "typed.yml").write_text(yaml.safe_dump(
        {"kind": "NetworkPolicyList", "items": [{k: v for k, v in np_doc("d").items() if k != "kind"}]}))
    (tmp_path / "sub" / "inventory.json").write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "x", "namespace": "prod"}}, np_doc("e")]}))
    (tmp_path / "notes.yaml").write_text("just: text\n- not: [kubernetes")  # skipped inside a directory
    (tmp_path / "README.md").write_text("ignored")
    got = sorted(p.key for p in load_policies([str(tmp_path)]))
    assert got == ["prod/a", "prod/b", "prod/c", "prod/d", "prod/e"]


def test_exact_repeats_are_kept_once_and_conflicting_ones_are_an_error(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(np_doc("a")))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(np_doc("a")))
    assert len(load_policies([str(tmp_path)])) == 1
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(np_doc("a", policyTypes=["Egress"])))
    with pytest.raises(PolicyError) as e:
        load_policies([str(tmp_path)])
    assert e.value.file.endswith("b.yaml") and "defined twice" in e.value.what


def test_a_named_file_that_is_not_kubernetes_is_an_error(tmp_path: Path):
    f = tmp_path / "x.yaml"
    f.write_text("a: [1, 2\n")
    with pytest.raises(PolicyError) as e:
        load_policies([str(f)])
    assert e.value.file == str(f)
    with pytest.raises(PolicyError) as e:
        load_policies([str(tmp_path / "missing")])
    assert e.value.what == "no such file or directory"


def test_the_cli_prints_one_error_line_and_exits_2(tmp_path: Path, capsys):
    pol = tmp_path / "pol.yaml"
    pol.write_text(yaml.safe_dump_all([np_doc("ok"), np_doc("bad", ingress=[{"ports": [{"port": 1}, {"port": 0}]}])]))
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps({"kind": "Pod", "metadata": {"name": "x", "namespace": "prod"}, "status": {"podIP": "10.0.0.1"}}))
    with pytest.raises(SystemExit) as e:
        main(["explain", "prod/x", "prod/x", "80/TCP", "--policies", str(pol), "--inventory", str(inv)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == f"Error: {pol}: document 2: spec.ingress[0].ports[1].port: 0 is not a port number (1-65535)\n"
