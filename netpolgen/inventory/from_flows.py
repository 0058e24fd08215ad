"""An inventory made from flow-log metadata, for when no cluster snapshot is given (or to fill its gaps).

Hubble and Calico records name each endpoint's namespace, pod and labels, and Hubble's
``workloads`` names the owner. ``inventory_from_flows`` turns the flow table's metadata columns
into the objects resolution and synthesis need:

- one ``Pod`` per ``namespace/name`` key (``src_pod``/``dst_pod``) with every address it was seen
  with and its labels (the labels common to all its records; volatile ones such as
  pod-template-hash dropped, DESIGN.md). A Calico aggregated endpoint (``frontend-7d4899b484-*``,
  no address) is one pod under that key, standing for the whole set;
- its owner, so that ``Inventory.workload_of`` answers the workload: from the workload column
  (``Deployment/x`` becomes a ReplicaSet ``x-<hash>`` owned by Deployment ``x``, with both
  ``Workload`` objects added; ``CronJob/x`` likewise through a Job); without one, from the names
  Kubernetes' controllers give pods and the labels they put on them (checked before the
  volatile ones are dropped): ``pod-template-hash`` or a ``<name>-<hash>-<suffix>`` pod name
  means a Deployment, ``statefulset.kubernetes.io/pod-name`` a StatefulSet,
  ``controller-revision-hash`` with ``pod-template-generation`` a DaemonSet, ``job-name`` a Job
  (a CronJob's when the Job is ``<name>-<minutes>``). Anything else stays a bare pod;
- namespaces; nothing for networks or addresses without a pod;
- identity-only endpoints: a namespace and labels but no pod name (Cilium's L7 proxy speaking
  for a pod from the node's address, host-networked or terminating pods). They are a workload
  class all the same: when a named pod of the namespace carries exactly those labels the
  resolver credits that pod's workload; otherwise one ``Identity`` pod with those labels and no
  address stands for them (it must not claim the address, which is usually the node's);
- nodes: every address a record gives a node identity (``reserved:host``, ``remote-node``,
  ``kube-apiserver``) is a Node, so that every record of that address tells the same story.

``Inventory.inferred_owners`` says which owners came from Kubernetes' naming rules or labels
rather than from the source's owner field, for the summary.

An address seen with several pods over time keeps all of them, each with the first and last
time it was seen there, so that the inventory can tell them apart by the flow's time.

``merge_inventories`` lets a real inventory win: a pod from the flows is dropped when the real
inventory knows its key or any of its addresses.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd

from netpolgen.flows import labels_to_text, text_to_labels
from netpolgen.inventory.index import Inventory
from netpolgen.inventory.model import IDENTITY_KIND, Namespace, Node, OwnerRef, Pod, Workload
from netpolgen.labels import DEFAULT_VOLATILE_LABELS, is_volatile

# The alphabet Kubernetes uses for generated name suffixes and pod-template-hash values.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_DEPLOYMENT_POD = re.compile(rf"^(?P<base>.+)-(?P<hash>[{_SAFE}]{{6,10}})-(?P<suffix>[{_SAFE}]{{5}}|\*)$")
_CRONJOB_POD = re.compile(rf"^(?P<base>.+)-(?P<minutes>\d{{8,}})-(?P<suffix>[{_SAFE}]{{5}}|\*)$")
_GENERATED_SUFFIX = re.compile(rf"-(?:[{_SAFE}]{{5}}|\*)$")
_ORDINAL = re.compile(r"^(?P<base>.+)-\d+$")
_CRONJOB_JOB = re.compile(r"^(?P<base>.+)-\d{8,}$")
_OWNED_KINDS = ("ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController")
# Identities a flow log gives the node itself (Hubble's reserved labels).
NODE_IDENTITIES = ("reserved:host", "reserved:remote-node", "reserved:kube-apiserver")
# Label keys whose values name a workload well, in the order an identity's name takes them.
_NAME_KEYS = ("app.kubernetes.io/name", "app", "k8s-app", "name", "app.kubernetes.io/component",
              "component", "app.kubernetes.io/version", "version")


def inventory_from_flows(flows: pd.DataFrame) -> Inventory:
    """An Inventory from the metadata columns of a flow table (see module doc)."""
    seen = _endpoints(flows)
    pods: list[Pod] = []
    workloads: dict[tuple[str, str, str], Workload] = {}
    namespaces: set[str] = set()
    inferred: dict[str, list[str]] = {}  # workload text -> how its owner was inferred, per pod
    ip_holders: dict[str, int] = {}
    for info in seen.values():
        for ip in info["ips"]:
            ip_holders[ip] = ip_holders.get(ip, 0) + 1
    for key in sorted(seen):
        info = seen[key]
        ns, name = info["namespace"], info["name"]
        raw_labels = info["labels"] or {}
        owners, owned = _owners(ns, name, info["workload"], raw_labels)
        if owned and not info["workload"]:
            top = owned[-1]
            inferred.setdefault(f"{ns}/{top.name}[{top.kind}]", []).append(name)
        for w in owned:
            workloads.setdefault((w.kind, w.namespace, w.name), w)
        labels = {k: v for k, v in raw_labels.items() if not is_volatile(k, DEFAULT_VOLATILE_LABELS)}
        ips = tuple(sorted(info["ips"]))
        shared = any(ip_holders[ip] > 1 for ip in ips)
        pods.append(Pod(
            namespace=ns,
            name=name,
            labels=labels,
            ips=ips,
            owners=owners,
            # only an address several pods held needs the times to tell them apart
            created=info["first"] if shared else None,
            deleted=info["last"] if shared else None,
            phase="Running",
        ))
        namespaces.add(ns)
    # Template labels: what the pods share, so that a Workload stands for them faithfully.
    members_of = _members(pods, workloads)
    for (kind, ns, wname), w in list(workloads.items()):
        if kind in ("Deployment", "CronJob", "StatefulSet", "DaemonSet", "Job", "ReplicationController"):
            members = [pods[i].labels for i in members_of.get((kind, ns, wname), ())]
            if members:
                common = dict(members[0])
                for m in members[1:]:
                    common = {k: v for k, v in common.items() if m.get(k) == v}
                workloads[(kind, ns, wname)] = replace(w, template_labels=common)
    named = {(p.namespace, tuple(sorted(p.labels.items()))) for p in pods}
    taken = {p.key for p in pods}
    for ns, labels in _identities(flows):
        stable = {k: v for k, v in labels.items() if not is_volatile(k, DEFAULT_VOLATILE_LABELS)}
        if not stable or (ns, tuple(sorted(stable.items()))) in named:
            continue  # a named pod carries these labels: the resolver credits its workload
        name = identity_name(stable)
        if f"{ns}/{name}" in taken:
            name = f"{name}-{_short_hash(labels_to_text(stable))}"
        taken.add(f"{ns}/{name}")
        named.add((ns, tuple(sorted(stable.items()))))
        pods.append(Pod(namespace=ns, name=name, labels=stable, owners=(OwnerRef(IDENTITY_KIND, name, controller=True),),
                        phase="Running"))
        namespaces.add(ns)
    pod_ips = {ip for p in pods for ip in p.ips}
    nodes = [Node(ip, (ip,)) for ip in sorted(_node_addresses(flows) - pod_ips)]
    ns_objs = {n: Namespace(n, {"kubernetes.io/metadata.name": n}) for n in sorted(namespaces)}
    inventory = Inventory(namespaces=ns_objs, pods=pods, workloads=list(workloads.values()), nodes=nodes)
    inventory.inferred_owners = {ref: _inferred_how(names) for ref, names in sorted(inferred.items())}
    return inventory


def identity_name(labels: dict[str, str]) -> str:
    """A DNS-1123 name for an identity-only endpoint, from the label values that name workloads
    (``app=reviews, version=v3`` → ``reviews-v3``); a hash of all labels when none do."""
    parts = [labels[k] for k in _NAME_KEYS if labels.get(k)]
    text = re.sub(r"[^a-z0-9]+", "-", "-".join(dict.fromkeys(parts)).lower()).strip("-")[:50].strip("-")
    return text or f"identity-{_short_hash(labels_to_text(labels))}"


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:6]


def _inferred_how(pod_names: list[str]) -> str:
    shown = ", ".join(sorted(pod_names)[:3]) + (", ..." if len(pod_names) > 3 else "")
    return f"no owner in the records; inferred from {len(pod_names)} pod name(s)/labels: {shown}"


def _identities(flows: pd.DataFrame) -> list[tuple[str, dict[str, str]]]:
    """The distinct (namespace, labels) of endpoints the records name without a pod."""
    out: set[tuple[str, str]] = set()
    for side in ("src", "dst"):
        pod, ns, labels, wl = (flows[f"{side}_{c}"] for c in ("pod", "namespace", "labels", "owner"))
        mask = (pod == "") & (ns != "") & (labels != "") & ~wl.str.startswith("reserved:")
        if mask.any():
            out.update(zip(ns[mask], labels[mask], strict=True))
    return [(ns, text_to_labels(text)) for ns, text in sorted(out)]


def _node_addresses(flows: pd.DataFrame) -> set[str]:
    """Addresses some record gives a node identity."""
    out: set[str] = set()
    for side in ("src", "dst"):
        mask = flows[f"{side}_owner"].isin(NODE_IDENTITIES) & (flows[f"{side}_pod"] == "")
        if mask.any():
            out.update(ip for ip in flows.loc[mask, f"{side}_ip"].unique() if ip and ip != "-")
    return out


def inventory_for(flows: pd.DataFrame, inventory: Inventory | None) -> Inventory:
    """The inventory to resolve with: the given one, completed from flow-log metadata (Hubble and
    Calico records name namespaces, labels and node identities) where the given one does not
    know an address."""
    has_meta = bool((flows["src_namespace"] != "").any() or (flows["dst_namespace"] != "").any()
                    or flows["src_owner"].isin(NODE_IDENTITIES).any() or flows["dst_owner"].isin(NODE_IDENTITIES).any())
    if not has_meta:
        return inventory if inventory is not None else Inventory()
    from_flows = inventory_from_flows(flows)
    return from_flows if inventory is None else merge_inventories(inventory, from_flows)


def merge_inventories(primary: Inventory, secondary: Inventory) -> Inventory:
    """``primary`` completed by ``secondary``: the primary wins for any pod key or address both know.

    Pods (and the workloads they need) and namespaces the primary lacks are added; services,
    endpoint slices, nodes and policies are the primary's.
    """
    real_primary = [p for p in primary.pods if not p.from_template]
    known_keys = {p.key for p in primary.pods}
    known_ips: set[str] = {ip for p in real_primary for ip in p.ips}
    known_ips |= {p.host_ip for p in real_primary if p.host_ip}
    known_ips |= {ip for s in primary.services for ip in s.cluster_ips + s.external_ips}
    known_ips |= {ip for n in primary.nodes for ip in n.addresses}
    # A pod the records name and the primary does not know is kept, so that the records that
    # name it resolve to it (an address reused over the window); the addresses the primary
    # knows are the primary's, so the pod gives those up.
    added = [
        p if not any(ip in known_ips for ip in p.ips) else replace(p, ips=tuple(ip for ip in p.ips if ip not in known_ips))
        for p in secondary.pods
        if not p.from_template and p.key not in known_keys
    ]
    workloads = dict(primary.workloads)
    needed = {(o.kind, p.namespace, o.name) for p in added for o in p.owners}
    # an owner's owner (ReplicaSet -> Deployment) is needed too
    for key in list(needed):
        w = secondary.workloads.get(key)
        if w is not None:
            needed |= {(o.kind, w.namespace, o.name) for o in w.owners}
    for key in sorted(needed):
        if key not in workloads and key in secondary.workloads:
            workloads[key] = secondary.workloads[key]
    namespaces = dict(primary.namespaces)
    for name, ns in secondary.namespaces.items():
        namespaces.setdefault(name, ns)
    merged = Inventory(
        namespaces=namespaces,
        pods=real_primary + added,
        services=primary.services,
        endpoint_slices=primary.endpoint_slices,
        workloads=list(workloads.values()),
        nodes=primary.nodes + [n for n in secondary.nodes if not any(ip in known_ips for ip in n.addresses)],
        policies=primary.policies,
        ignored_kinds=primary.ignored_kinds,
        skipped_files=primary.skipped_files,
    )
    added_refs = {str(secondary.workload_of(p)) for p in added}
    merged.inferred_owners = {**primary.inferred_owners,
                              **{k: v for k, v in secondary.inferred_owners.items() if k in added_refs}}
    # Ranges the caller added to the primary (--cluster-cidr) still hold.
    for net in getattr(primary, "_cluster_networks", []):
        if net not in merged._cluster_networks:
            merged.add_cluster_network(str(net))
    return merged


# ----- endpoints seen in the flows ----------------------------------------------------------------


def _endpoints(flows: pd.DataFrame) -> dict[str, dict]:
    """pod key → namespace, name, addresses, labels (common to its records), workload, times."""
    out: dict[str, dict] = {}
    if flows.empty:
        return out
    first_seen = flows["first_seen"].to_numpy(dtype="float64")
    last_seen = flows["last_seen"].to_numpy(dtype="float64")
    for side in ("src", "dst"):
        cols = [flows[f"{side}_{c}"].to_numpy(dtype=object) for c in ("pod", "namespace", "ip", "labels", "owner")]
        # The distinct (pod, namespace, address, labels, workload) of the side with their time
        # span, in sorted order (the first workload named wins): a flow table has far more
        # rows than endpoints, so the rows are reduced with integer codes first.
        factorized = [pd.factorize(c) for c in cols]
        (pod_codes, pods), (wl_codes, wls) = factorized[0], factorized[4]
        reserved = np.array([w.startswith("reserved:") for w in wls], dtype=bool)
        keep = (pods != "")[pod_codes] & ~reserved[wl_codes]
        if not keep.any():
            continue
        rows = np.flatnonzero(keep)
        group = np.zeros(len(rows), dtype=np.int64)
        for codes, uniques in factorized:
            group, _ = pd.factorize(group * max(len(uniques), 1) + codes[rows])
        n_groups = int(group.max()) + 1
        first = np.full(n_groups, np.nan)
        last = np.full(n_groups, np.nan)
        np.fmin.at(first, group, first_seen[rows])
        np.fmax.at(last, group, last_seen[rows])
        _, one = np.unique(group, return_index=True)
        distinct = sorted(
            (tuple(c[rows[i]] for c in cols), first[g], last[g]) for g, i in enumerate(one)
        )
        for (pod_key, ns_col, ip, labels_text, wl), first_g, last_g in distinct:
            ns, _, name = pod_key.partition("/") if "/" in pod_key else (ns_col, "/", pod_key)
            ns = ns or ns_col
            if not ns or not name:
                continue
            key = f"{ns}/{name}"
            info = out.get(key)
            if info is None:
                info = out[key] = {"namespace": ns, "name": name, "ips": set(), "labels": None,
                                   "workload": "", "first": np.nan, "last": np.nan}
            if ip and ip != "-":
                info["ips"].add(ip)
            if labels_text:
                labels = text_to_labels(labels_text)
                # the labels every record agrees on (an aggregated endpoint's records may differ)
                info["labels"] = labels if info["labels"] is None else {
                    k: v for k, v in info["labels"].items() if labels.get(k) == v
                }
            if wl and not info["workload"]:
                info["workload"] = wl
            info["first"] = np.fmin(info["first"], first_g)
            info["last"] = np.fmax(info["last"], last_g)
    for info in out.values():
        info["first"] = None if info["first"] != info["first"] else float(info["first"])
        info["last"] = None if info["last"] != info["last"] else float(info["last"])
    return out


# ----- owners ---------------------------------------------------------------------------------


def _owners(ns: str, pod: str, workload: str, labels: dict[str, str]) -> tuple[tuple[OwnerRef, ...], list[Workload]]:
    """The pod's owner references and the Workload objects that make the chain resolvable."""
    kind, name = _workload_of(pod, workload, labels)
    if not kind:
        return (), []
    if kind == "Deployment":
        h = labels.get("pod-template-hash")
        m = _DEPLOYMENT_POD.match(pod)
        if not h and m and m.group("base") == name:
            h = m.group("hash")
        rs = f"{name}-{h}" if h else name
        return (
            (OwnerRef("ReplicaSet", rs, controller=True),),
            [Workload("ReplicaSet", ns, rs, owners=(OwnerRef("Deployment", name, controller=True),)),
             Workload("Deployment", ns, name)],
        )
    if kind == "CronJob":
        job = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name") or ""
        if not job:
            m = _CRONJOB_POD.match(pod)
            job = f"{name}-{m.group('minutes')}" if m else name
        return (
            (OwnerRef("Job", job, controller=True),),
            [Workload("Job", ns, job, owners=(OwnerRef("CronJob", name, controller=True),)),
             Workload("CronJob", ns, name)],
        )
    if kind in _OWNED_KINDS:
        return (OwnerRef(kind, name, controller=True),), [Workload(kind, ns, name)]
    return (), []  # a kind the inventory cannot chain (e.g. a custom controller): a bare pod


def _workload_of(pod: str, workload: str, labels: dict[str, str]) -> tuple[str, str]:
    """(kind, name) of the pod's top owner: the source's word, else Kubernetes' naming rules."""
    if workload and "/" in workload and not workload.startswith("reserved:"):
        kind, _, name = workload.partition("/")
        return kind, name
    h = labels.get("pod-template-hash")
    if h and f"-{h}-" in pod + "-":
        return "Deployment", pod[: pod.index(f"-{h}")]
    if "statefulset.kubernetes.io/pod-name" in labels:
        m = _ORDINAL.match(pod)
        return ("StatefulSet", m.group("base")) if m else ("", "")
    job = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name")
    if job:
        m = _CRONJOB_JOB.match(job)
        return ("CronJob", m.group("base")) if m else ("Job", job)
    if "controller-revision-hash" in labels and "pod-template-generation" in labels:
        base = _GENERATED_SUFFIX.sub("", pod)
        return ("DaemonSet", base) if base != pod else ("", "")
    m = _CRONJOB_POD.match(pod)
    if m:
        return "CronJob", m.group("base")
    m = _DEPLOYMENT_POD.match(pod)
    if m:
        return "Deployment", m.group("base")
    # No owner data at all: Kubernetes' naming rules alone. <ds>-<5> is a DaemonSet's pod (a
    # Job's has the job-name label, read above); <sts>-<ordinal> a StatefulSet's.
    base = _GENERATED_SUFFIX.sub("", pod)
    if base != pod and "*" not in pod:
        return "DaemonSet", base
    m = _ORDINAL.match(pod)
    if m:
        return "StatefulSet", m.group("base")
    return "", ""


def _members(pods: list[Pod], workloads: dict[tuple[str, str, str], Workload]) -> dict[tuple[str, str, str], list[int]]:
    """(kind, namespace, name) of a workload → indexes of the pods it owns, directly or through
    its ReplicaSet or Job, in pod order: one pass over the pods, not one per workload."""
    members: dict[tuple[str, str, str], list[int]] = {}
    for i, p in enumerate(pods):
        owners: list[tuple[str, str, str]] = []
        for o in p.owners:
            owners.append((o.kind, p.namespace, o.name))
            parent = workloads.get((o.kind, p.namespace, o.name))
            if parent is not None:
                owners.extend((po.kind, p.namespace, po.name) for po in parent.owners)
        for key in dict.fromkeys(owners):
            members.setdefault(key, []).append(i)
    return members
