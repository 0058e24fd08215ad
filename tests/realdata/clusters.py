"""The three real clusters of ``../shared/samples/hubble-flows`` (its README says which files
belong together), and the connections their flows show, as an independent reading.

``observed_connections`` reads the flow logs with the standard ``json`` module, not with
netpolgen's reader: a request record (``is_reply`` false, or an L7 REQUEST) of TCP/UDP between
two endpoints that Hubble names by namespace and pod, or by namespace and labels (Cilium's L7
proxy speaks for a pod from the node's address), forwarded or redirected. That is what a
cluster owner would call "the connections this cluster made", and every one of them must be
allowed by the output.
"""

from __future__ import annotations

import json
from pathlib import Path

CLUSTERS: dict[str, tuple[str, ...]] = {
    # GKE with Istio bookinfo, 2021-06 (old Hubble: only `reply: true` marks replies)
    "gke-istio": ("basic-sample-10-flows.json",),
    # GKE, 2021-10: L7 DNS/HTTP records, node-local-dns, prometheus scrapes
    "gke-l7": ("basic-sample-330-dns-flows.json", "basic-sample-5-dns-flows.json", "basic-sample-5-http-flows.json"),
    # kind with bookinfo and Cilium L7 visibility, 2021-11 (REDIRECTED = Cilium's own proxy)
    "kind-bookinfo": ("basic-sample-400-icmpv4-flows.json", "basic-sample-400-tcp-flows.json",
                      "basic-sample-400-udp-flows.json"),
}

_CILIUM_PREFIX = "io.cilium."
_NS_LABEL = "io.kubernetes.pod.namespace"
_VOLATILE = {"pod-template-hash", "controller-revision-hash", "pod-template-generation",
             "statefulset.kubernetes.io/pod-name", "job-name", "controller-uid"}


def cluster_files(samples: Path, cluster: str) -> list[Path]:
    return [samples / "hubble-flows" / name for name in CLUSTERS[cluster]]


def endpoint_identity(ep: dict) -> tuple[str, str, tuple[tuple[str, str], ...]] | None:
    """(namespace, pod name or "", stable k8s labels) of a Hubble endpoint; None for reserved
    identities (host, world, health...)."""
    labels: dict[str, str] = {}
    namespace = ep.get("namespace", "")
    for text in ep.get("labels", []):
        source, _, kv = text.partition(":")
        if source == "reserved":
            return None
        if source != "k8s":
            continue
        key, _, value = kv.partition("=")
        if key == _NS_LABEL:
            namespace = namespace or value
        elif not key.startswith(_CILIUM_PREFIX) and key not in _VOLATILE:
            labels[key] = value
    if not namespace or not (ep.get("pod_name") or labels):
        return None
    return namespace, ep.get("pod_name", ""), tuple(sorted(labels.items()))


def observed_connections(files: list[Path]) -> set[tuple[tuple, tuple, str, int]]:
    """(client identity, server identity, protocol, server port) of every request record."""
    out: set[tuple[tuple, tuple, str, int]] = set()
    for path in files:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        flows = [rec.get("flow", rec) for rec in records]
        # Old Hubble (2021-06) writes no is_reply at all and marks replies with reply: true only.
        old_format = not any("is_reply" in flow for flow in flows)
        for flow in flows:
            if flow.get("verdict") not in ("FORWARDED", "REDIRECTED"):
                continue
            l7 = flow.get("l7") or {}
            if flow.get("is_reply") or flow.get("reply") or l7.get("type") == "RESPONSE":
                continue
            l4 = flow.get("l4") or {}
            proto = next((p for p in ("TCP", "UDP") if p in l4), None)
            if proto is None:
                continue
            tcp_flags = l4[proto].get("flags") or {}
            if proto == "TCP" and tcp_flags.get("SYN") and tcp_flags.get("ACK"):
                continue  # a SYN-ACK is the server's answer
            if not old_format and flow.get("is_reply") is None and not tcp_flags.get("SYN") and flow.get("Type") != "L7":
                continue  # neither side is certain: not counted as a request
            src, dst = endpoint_identity(flow.get("source", {})), endpoint_identity(flow.get("destination", {}))
            if src is None or dst is None:
                continue
            out.add((src, dst, proto, int(l4[proto]["destination_port"])))
    return out
