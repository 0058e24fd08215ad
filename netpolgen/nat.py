"""NAT sightings: the same connection seen on both sides of a Service DNAT or a masquerade.

On a node, ``tcpdump -i any`` sees a Service connection twice: client → ClusterIP:port on the
client's veth, and client → backend-pod:targetPort after kube-proxy's DNAT. It sees pod egress
to the outside twice too: pod → remote on the veth, and node → remote after MASQUERADE (and a
NodePort connection as remote → node:nodePort, then node → pod after SNAT). Each pair is one
connection. Matching uses the client's source port, which both NATs keep unless it clashes.

- DNAT: a pre-DNAT row (resolved to every backend of the Service) and a post-DNAT row from the
  same client address and port: keep the post-DNAT row (it names the backend that was really
  used) and drop the pre-DNAT expansion.
- SNAT/masquerade: a row from a node address and a row from a non-node client with the same
  source port, protocol and resolved destination: drop the node row; the connection is the
  client's. Node rows to the outside that match nothing are reported: their pod is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

KIND_NODE = "node"
KIND_EXTERNAL = "external"


@dataclass
class NatReport:
    dnat_merged: int = 0  # pre-DNAT connections folded into their post-DNAT sighting
    snat_merged: int = 0  # node-side (masqueraded) sightings folded into the client's
    masquerade_only: list[str] = field(default_factory=list)  # node → outside, pod side unseen


def merge_nat_sightings(resolved: pd.DataFrame, node_ips: set[str]) -> tuple[pd.DataFrame, NatReport]:
    report = NatReport()
    df = _merge_dnat(resolved, report)
    df = _merge_snat(df, node_ips, report)
    return df.reset_index(drop=True), report


def _merge_dnat(df: pd.DataFrame, report: NatReport) -> pd.DataFrame:
    known_port = df["src_port"].to_numpy() > 0
    pre = df[(df["dst_service"] != "") & known_port]
    post = df[(df["dst_service"] == "") & (df["dst_kind"] == "pod") & known_port]
    if pre.empty or post.empty:
        return df
    keys = ["src_ip", "src_port", "proto"]
    hits = pre.reset_index().merge(
        post.reset_index()[keys + ["dst_workload", "dst_port", "index"]].rename(columns={"index": "post_index"}),
        on=keys + ["dst_workload", "dst_port"],
    )
    if hits.empty:
        return df
    # Every expansion row of a matched pre-DNAT connection goes, not just the one that matched.
    matched = pre.reset_index().merge(hits[keys + ["dst_service"]].drop_duplicates(), on=keys + ["dst_service"])
    df = df.copy()
    first_hit = hits.drop_duplicates("post_index")
    df.loc[first_hit["post_index"].to_numpy(), "dst_service"] = first_hit["dst_service"].to_numpy()
    df.loc[first_hit["post_index"].to_numpy(), "service_port"] = first_hit["service_port"].to_numpy()
    report.dnat_merged = int(hits.drop_duplicates(keys)["connections"].sum())
    return df.drop(index=matched["index"].unique())


def _merge_snat(df: pd.DataFrame, node_ips: set[str], report: NatReport) -> pd.DataFrame:
    from_node = (df["src_kind"] == KIND_NODE).to_numpy() & df["src_ip"].isin(node_ips).to_numpy()
    if not from_node.any():
        return df
    keys = ["src_port", "proto", "dst_workload", "dst_port"]
    node_rows = df[from_node & (df["src_port"].to_numpy() > 0)]
    client_keys = df[~from_node][keys].drop_duplicates()
    hit = node_rows.reset_index().merge(client_keys, on=keys)["index"].to_numpy()
    report.snat_merged = int(df.loc[hit, "connections"].sum()) if len(hit) else 0
    remaining = df.drop(index=hit)
    lone = remaining[(remaining["src_kind"] == KIND_NODE) & remaining["src_ip"].isin(node_ips)
                     & (remaining["dst_kind"] == KIND_EXTERNAL)]
    report.masquerade_only = sorted({
        f"{r.src_ip} -> {r.dst_ip} {r.proto}/{r.dst_port}" for r in lone.itertuples(index=False)
    })
    return remaining


def node_addresses(inventory) -> set[str]:
    """Every address the inventory knows as a node's (Node objects and pods' hostIP)."""
    ips = {ip for n in inventory.nodes for ip in n.addresses}
    ips |= {p.host_ip for p in inventory.pods if p.host_ip}
    return ips


__all__ = ["NatReport", "merge_nat_sightings", "node_addresses"]
