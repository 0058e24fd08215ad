"""The same traffic as a pcap, as Hubble flows and as VPC flow logs gives the same policies.

``tests/scenario.py`` holds one description of the traffic and renders it in each format; the
pipeline (`netpolgen.pipeline.generate`, what ``netpolgen generate`` runs) reads each rendering
with the same inventory. The sources differ in what they see (Hubble: metadata and is_reply; VPC:
per-direction records with tcp-flags; pcap: packets), so agreement checks each reader's
direction and folding against the others.
"""

from __future__ import annotations

import pytest
import yaml

from netpolgen.pipeline import generate, read_flows
from tests import scenario

RENDERERS = {"hubble": scenario.write_hubble, "vpc": scenario.write_vpc, "pcap": scenario.write_pcap}
NAMES = {"hubble": "flows.json", "vpc": "flows.log", "pcap": "capture.pcap"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenario")
    files = {fmt: str(render(d / NAMES[fmt])) for fmt, render in RENDERERS.items()}
    return files, str(scenario.write_inventory(d / "inventory.json"))


def connections(path: str) -> set[tuple]:
    flows = read_flows([path]).flows
    return {(r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.proto, r.direction_known, r.connections)
            for r in flows.itertuples()}


def test_every_source_sees_the_described_connections(rendered):
    """Each rendering reads back as exactly the scenario's connections, client first, each
    counted once. The client side is known where the format says it (Hubble's is_reply, TCP's
    SYN in a capture or in VPC tcp-flags); UDP in a capture or a VPC log is oriented by the
    port rule, which must still put the DNS server on the server side."""
    files, _ = rendered
    for fmt, path in files.items():
        expected = {(scenario.ip_of(c.client), c.client_port, scenario.ip_of(c.server), c.port, c.proto,
                     fmt == "hubble" or c.proto == "TCP", 1) for c in scenario.CONNECTIONS}
        assert connections(path) == expected, fmt


def test_same_policies_from_pcap_hubble_and_vpc(rendered):
    """The generated NetworkPolicies are identical whichever rendering was read."""
    files, inventory = rendered
    policies = {fmt: generate([path], [inventory]).policies for fmt, path in files.items()}
    text = {fmt: yaml.safe_dump_all(p, sort_keys=True) for fmt, p in policies.items()}
    assert text["hubble"] == text["vpc"] == text["pcap"]
    # and they are the scenario's: cart admits both frontends on 7070, redis admits cart
    by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in policies["hubble"]}
    cart = by_name[("shop", "allow-cart")]["spec"]
    assert cart["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                                "ports": [{"port": 7070, "protocol": "TCP"}]}]
    egress_cidrs = [peer["ipBlock"]["cidr"] for rule in by_name[("shop", "allow-frontend")]["spec"]["egress"]
                    for peer in rule["to"] if "ipBlock" in peer]
    assert egress_cidrs == [f"{scenario.EXTERNAL}/32"]


def test_hubble_without_inventory_gives_the_same_policies(rendered):
    """Hubble records carry namespaces, labels and workloads: without --inventory the policies
    are the ones the real inventory gives."""
    files, inventory = rendered
    with_inv = yaml.safe_dump_all(generate([files["hubble"]], [inventory]).policies, sort_keys=True)
    without = yaml.safe_dump_all(generate([files["hubble"]], []).policies, sort_keys=True)
    assert without == with_inv
