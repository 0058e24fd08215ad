"""Re-record the bundled demo: real processes in network namespaces, captured on the "node".

    sudo .venv/bin/python captures/record_demo.py             # record, check, write all three
    .venv/bin/python captures/record_demo.py --check          # verify demo.pcap (no root)
    .venv/bin/python captures/record_demo.py --inventory-only # rewrite JSON + TSV (no root)

Recording needs root (network namespaces, veths, iptables) and tcpdump, dnsmasq, redis-server,
PostgreSQL 15 and openssl. It builds the topology described in ``topology.py`` as an island of
namespaces with no link to the host's network, starts the pods' programs, records
``tcpdump -i any`` inside the node namespace while the outside client sends its requests,
tears everything down (also on failure or Ctrl-C), checks that every expected connection is in
the capture, and only then replaces demo.pcap, demo-inventory.json and expected-edges.tsv.

The inventory is a pure function of the topology and of the capture's first timestamp, so
``--inventory-only`` reproduces it byte for byte.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import topology as T  # noqa: E402  (the sibling module, not a package)

PCAP = os.path.join(HERE, "demo.pcap")
INVENTORY = os.path.join(HERE, "demo-inventory.json")
EDGES = os.path.join(HERE, "expected-edges.tsv")
WORKLOADS_PY = os.path.join(HERE, "workloads.py")

SNAPLEN = 128
OVERALL_TIMEOUT = 420  # seconds; the whole recording, setup to teardown
PG_BIN = "/usr/lib/postgresql/15/bin"


class DemoError(Exception):
    pass


# --- small process helpers ------------------------------------------------------------------

def run(*cmd: str, netns: str | None = None, input: str | None = None, timeout: float = 60) -> str:
    full = (["ip", "netns", "exec", netns] if netns else []) + list(cmd)
    try:
        r = subprocess.run(full, input=input, text=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DemoError(f"timed out after {timeout}s: {' '.join(full)}") from e
    if r.returncode != 0:
        raise DemoError(f"failed ({r.returncode}): {' '.join(full)}\n{r.stderr.strip()}")
    return r.stdout


def sysctl(netns: str, *settings: str) -> None:
    run("sysctl", "-q", "-w", *settings, netns=netns)


@dataclass
class Started:
    name: str
    proc: subprocess.Popen
    log: str
    stop_signal: int = signal.SIGTERM


class Processes:
    """Everything the recorder starts, each in its own process group, stopped by group id."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.started: list[Started] = []

    def start(self, name: str, cmd: list[str], netns: str | None,
              stop_signal: int = signal.SIGTERM) -> Started:
        full = (["ip", "netns", "exec", netns] if netns else []) + cmd
        log = os.path.join(self.logdir, f"{name}.log")
        with open(log, "wb") as f:
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        s = Started(name, proc, log, stop_signal)
        self.started.append(s)
        return s

    def stop(self, s: Started, grace: float = 5.0) -> None:
        if s.proc.poll() is None:
            try:
                os.killpg(s.proc.pid, s.stop_signal)
            except ProcessLookupError:
                pass
            try:
                s.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(s.proc.pid, signal.SIGKILL)  # stragglers left in the group
        except ProcessLookupError:
            pass
        try:
            s.proc.wait(5)
        except subprocess.TimeoutExpired:
            print(f"warning: {s.name} (pid {s.proc.pid}) did not exit", file=sys.stderr)

    def stop_all(self) -> None:
        for s in reversed(self.started):
            self.stop(s)

    def tail(self, s: Started, lines: int = 15) -> str:
        try:
            with open(s.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        for s in self.started:
            if s.proc.poll() is not None and s.name not in ("client", "tcpdump"):
                raise DemoError(f"{s.name} exited with {s.proc.returncode}:\n{self.tail(s)}")


def wait_listening(netns: str, port: int, proto: str, what: str, procs: Processes,
                   timeout: float = 30) -> None:
    flag = "-Hltn" if proto == "TCP" else "-Hlun"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run("ss", flag, f"sport = :{port}", netns=netns).strip():
            return
        procs.check_alive()
        time.sleep(0.2)
    raise DemoError(f"{what} is not listening on {proto} {port} after {timeout}s")


# --- the network --------------------------------------------------------------------------------

def all_netns() -> list[str]:
    return [T.NODE.netns, T.ROUTER_NETNS] + [e.netns for e in T.EXTERNALS] + [p.netns for p in T.pods()]


def existing_netns() -> set[str]:
    out = run("ip", "netns", "list")
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def teardown_network() -> None:
    """Delete our namespaces (by their exact names) and the resolv.conf/hosts we wrote."""
    present = existing_netns()
    for ns in all_netns():
        if ns in present:
            # A process of ours still inside keeps the namespace alive: end it by pid.
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)


def kube_chain(prefix: str, text: str) -> str:
    """kube-proxy's chain names: a prefix and 16 base32 characters of a SHA-256."""
    return prefix + base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def service_endpoints(svc: T.Service, sp: T.ServicePort) -> list[tuple[str, int]]:
    if svc.selector is None:
        return list(svc.manual_endpoints)
    w, port = T._service_backend(svc, sp)
    return [(ip, port) for ip in w.pod_ips]


def kube_proxy_rules() -> str:
    """The nat table kube-proxy (iptables mode) and Calico's natOutgoing would install."""
    chains: list[str] = ["KUBE-SERVICES", "KUBE-NODEPORTS", "cali-nat-outgoing"]
    rules: list[str] = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "cali:nat-outgoing" -j cali-nat-outgoing',
        f"-A cali-nat-outgoing -s {T.CLUSTER_POD_CIDR} ! -d {T.CLUSTER_POD_CIDR} "
        f"-o {T.NODE.uplink} -j MASQUERADE",
    ]

    def balance(chain: str, seps: list[str]) -> None:
        for i, sep in enumerate(seps):
            rest = len(seps) - i
            cond = f" -m statistic --mode nth --every {rest} --packet 0" if rest > 1 else ""
            rules.append(f"-A {chain}{cond} -j {sep}")

    for svc in T.SERVICES:
        for sp in svc.ports:
            name = f"{svc.key}:{sp.name}"
            p = sp.protocol.lower()
            eps = service_endpoints(svc, sp)
            svc_chain = kube_chain("KUBE-SVC-", name + p)
            seps = []
            for ip, port in eps:
                sep = kube_chain("KUBE-SEP-", name + p + f"{ip}:{port}")
                chains.append(sep)
                rules.append(f"-A {sep} -p {p} -m comment --comment {name} -m {p} "
                             f"-j DNAT --to-destination {ip}:{port}")
                seps.append(sep)
            chains.append(svc_chain)
            rules.append(f'-A KUBE-SERVICES -d {svc.cluster_ip}/32 -p {p} -m comment '
                         f'--comment "{name} cluster IP" -m {p} --dport {sp.port} -j {svc_chain}')
            balance(svc_chain, seps)
            if sp.node_port:
                ext = kube_chain("KUBE-EXT-", name + p)
                chains.append(ext)
                rules.append(f"-A KUBE-NODEPORTS -p {p} -m comment --comment {name} -m {p} "
                             f"--dport {sp.node_port} -j {ext}")
                if svc.external_traffic_policy == "Local":
                    svl = kube_chain("KUBE-SVL-", name + p)
                    chains.append(svl)
                    rules.append(f"-A {ext} -j {svl}")
                    balance(svl, seps)  # every endpoint is on this node
                else:
                    rules.append(f"-A {ext} -j {svc_chain}")
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" '
                 '-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for c in chains] + rules + ["COMMIT", ""]
    return "\n".join(lines)


def hosts_file(pod: T.PodInstance) -> str:
    return ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{pod.ip}\t{pod.name}\n")


def build_network() -> None:
    node = T.NODE
    for ns in all_netns():
        run("ip", "netns", "add", ns)
        # No IPv6 anywhere: nothing to route, and no autoconfiguration chatter in the capture.
        sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        run("ip", "link", "set", "lo", "up", netns=ns)

    # The router: the node's uplink and one link per outside host; no default route.
    wan = T.ROUTER_NETNS
    sysctl(wan, "net.ipv4.ip_forward=1")
    run("ip", "-n", node.netns, "link", "add", node.uplink, "type", "veth", "peer", "name", "node0",
        "netns", wan)
    run("ip", "-n", wan, "addr", "add", f"{node.gateway}/{node.prefix}", "dev", "node0")
    run("ip", "-n", wan, "link", "set", "node0", "up")
    for i, e in enumerate(T.EXTERNALS):
        peer = f"host{i}"
        run("ip", "-n", e.netns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", wan)
        run("ip", "-n", wan, "addr", "add", f"{e.gateway}/{e.prefix}", "dev", peer)
        run("ip", "-n", wan, "link", "set", peer, "up")
        run("ip", "-n", e.netns, "addr", "add", f"{e.ip}/{e.prefix}", "dev", "eth0")
        run("ip", "-n", e.netns, "link", "set", "eth0", "up")
        run("ip", "-n", e.netns, "route", "add", "default", "via", e.gateway)

    # The node: uplink, forwarding, one /32 route per pod (Calico style).
    sysctl(node.netns, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
           "net.ipv4.conf.default.rp_filter=0")
    run("ip", "-n", node.netns, "addr", "add", f"{node.ip}/{node.prefix}", "dev", node.uplink)
    run("ip", "-n", node.netns, "link", "set", node.uplink, "up")
    run("ip", "-n", node.netns, "route", "add", "default", "via", node.gateway)

    for pod in T.pods():
        cali = pod.host_veth
        run("ip", "-n", pod.netns, "link", "add", "eth0", "type", "veth", "peer", "name", cali,
            "netns", node.netns)
        run("ip", "-n", node.netns, "link", "set", cali, "address", T.CALI_MAC)
        sysctl(node.netns, f"net.ipv4.conf.{cali}.proxy_arp=1", f"net.ipv4.neigh.{cali}.proxy_delay=0",
               f"net.ipv4.conf.{cali}.rp_filter=0")
        run("ip", "-n", node.netns, "link", "set", cali, "up")
        run("ip", "-n", node.netns, "route", "add", f"{pod.ip}/32", "dev", cali, "scope", "link")
        run("ip", "-n", pod.netns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
        run("ip", "-n", pod.netns, "link", "set", "eth0", "up")
        run("ip", "-n", pod.netns, "route", "add", T.POD_GATEWAY, "dev", "eth0", "scope", "link")
        run("ip", "-n", pod.netns, "route", "add", "default", "via", T.POD_GATEWAY, "dev", "eth0")
        # `ip netns exec` bind-mounts these over /etc/resolv.conf and /etc/hosts.
        etc = os.path.join("/etc/netns", pod.netns)
        os.makedirs(etc, exist_ok=True)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write(T.resolv_conf(pod.workload))
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write(hosts_file(pod))

    run("iptables-restore", netns=node.netns, input=kube_proxy_rules())


# --- the programs -------------------------------------------------------------------------------

def start_programs(procs: Processes, work: str) -> None:
    py = sys.executable
    by_program: dict[str, list[T.PodInstance]] = defaultdict(list)
    for pod in T.pods():
        by_program[pod.workload.program].append(pod)

    # The external TLS endpoint, with a throwaway self-signed certificate.
    payments = next(e for e in T.EXTERNALS if e.program == "tls-server")
    cert, key = os.path.join(work, "payments.crt"), os.path.join(work, "payments.key")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={payments.tls_name}",
        "-addext", f"subjectAltName=DNS:{payments.tls_name}")
    procs.start("payments", [py, WORKLOADS_PY, "tls-server", "--listen", f"0.0.0.0:{payments.listen_port}",
                             "--cert", cert, "--key", key], payments.netns)

    for pod in by_program["dnsmasq"]:
        cmd = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
               "--no-poll", f"--listen-address={pod.ip}", "--bind-interfaces", "--port=53",
               f"--local=/{T.CLUSTER_DOMAIN}/", "--domain-needed", "--bogus-priv", "--pid-file=",
               "--user=dnsmasq", "--group=nogroup", "--log-queries", "--log-facility=-"]
        cmd += [f"--host-record={name},{ip}" for name, ip in sorted(T.dns_records().items())]
        procs.start(pod.name, cmd, pod.netns)
        for port in pod.workload.ports:
            wait_listening(pod.netns, port.port, port.protocol, pod.name, procs)

    for pod in by_program["redis"]:
        d = os.path.join(work, pod.name)
        os.makedirs(d)
        shutil.chown(d, "redis", "redis")
        procs.start(pod.name, ["runuser", "-u", "redis", "--", "redis-server", "--bind", pod.ip,
                               "--port", str(pod.workload.ports[0].port), "--protected-mode", "no",
                               "--save", "", "--appendonly", "no", "--dir", d], pod.netns)

    for pod in by_program["postgres"]:
        data, sock = os.path.join(work, pod.name, "data"), os.path.join(work, pod.name, "run")
        os.makedirs(data)
        os.makedirs(sock)
        for p in (os.path.dirname(data), data, sock):
            shutil.chown(p, "postgres", "postgres")
        run("runuser", "-u", "postgres", "--", f"{PG_BIN}/initdb", "-D", data, "-U", "shop",
            "--auth=trust", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C", timeout=120)
        with open(os.path.join(data, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {T.CLUSTER_POD_CIDR} trust\n")
        procs.start(pod.name, ["runuser", "-u", "postgres", "--", f"{PG_BIN}/postgres", "-D", data,
                               "-c", f"listen_addresses={pod.ip}",
                               "-c", f"port={pod.workload.ports[0].port}",
                               "-c", f"unix_socket_directories={sock}", "-c", "fsync=off",
                               "-c", "shared_buffers=16MB", "-c", "max_connections=20",
                               "-c", "log_connections=on"], pod.netns, stop_signal=signal.SIGINT)

    for pod in by_program["app"]:
        w = pod.workload
        cmd = [py, WORKLOADS_PY, "app", "--name", w.name, "--listen", f"0.0.0.0:{w.ports[0].port}",
               "--ca", cert, "--tls-name", payments.tls_name]
        for c in w.calls:
            cmd += ["--call", c.arg()]
        procs.start(pod.name, cmd, pod.netns)

    for pod in T.pods():
        for port in pod.workload.ports:
            wait_listening(pod.netns, port.port, port.protocol, pod.name, procs)
    wait_listening(payments.netns, payments.listen_port, "TCP", payments.name, procs)


def record(requests: int, work: str, procs: Processes) -> str:
    """Capture in the node namespace while the outside client sends its requests."""
    pcap = os.path.join(work, "demo.pcap")
    tcpdump = procs.start("tcpdump", ["tcpdump", "-i", "any", "-nn", "-s", str(SNAPLEN), "-Z", "root",
                                      "-w", pcap], T.NODE.netns, stop_signal=signal.SIGINT)
    deadline = time.monotonic() + 20
    while "listening on" not in procs.tail(tcpdump):
        if time.monotonic() > deadline or tcpdump.proc.poll() is not None:
            raise DemoError(f"tcpdump did not start:\n{procs.tail(tcpdump)}")
        time.sleep(0.1)
    time.sleep(0.5)

    client = next(e for e in T.EXTERNALS if e.program == "client")
    out = run(sys.executable, WORKLOADS_PY, "client", "--call", client.calls[0].arg(),
              "--count", str(requests), "--interval", "0.2", netns=client.netns, timeout=60 + 10 * requests)
    time.sleep(1.5)  # let the last FIN/ACKs through
    procs.stop(tcpdump, grace=10)
    print(procs.tail(tcpdump, 3).strip(), file=sys.stderr)
    statuses = json.loads(out.strip().splitlines()[-1])["statuses"]
    if statuses != [200] * requests:
        logs = "\n".join(f"--- {s.name}\n{procs.tail(s)}" for s in procs.started)
        raise DemoError(f"client got {statuses}, expected {requests} × 200\n{logs}")
    return pcap


# --- the inventory ------------------------------------------------------------------------------

def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class InventoryBuilder:
    """kubectl get namespaces,nodes,pods,services,endpointslices,replicasets,deployments,
    statefulsets -A -o json, for the topology, with every time relative to ``anchor``."""

    def __init__(self, anchor: datetime) -> None:
        self.anchor = anchor
        self.rv = 1000

    def at(self, minutes_before: float) -> str:
        return rfc3339(self.anchor - timedelta(minutes=minutes_before))

    @staticmethod
    def uid(kind: str, namespace: str, name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"netpolgen-demo/{kind}/{namespace}/{name}"))

    def meta(self, kind: str, namespace: str | None, name: str, created: str, **extra: Any) -> dict:
        self.rv += 7
        m: dict[str, Any] = {"name": name, "uid": self.uid(kind, namespace or "", name),
                             "creationTimestamp": created, "resourceVersion": str(self.rv)}
        if namespace is not None:
            m["namespace"] = namespace
        m.update({k: v for k, v in extra.items() if v is not None})
        return m

    @staticmethod
    def owner(kind: str, name: str, uid: str, api: str = "apps/v1") -> dict:
        return {"apiVersion": api, "kind": kind, "name": name, "uid": uid,
                "controller": True, "blockOwnerDeletion": True}

    # Creation times, minutes before the capture starts.
    CLUSTER_AGE = 180
    APP_NAMESPACE_AGE = 50
    WORKLOAD_AGE = 45

    def workload_age(self, w: T.Workload) -> float:
        return self.CLUSTER_AGE - 2 if w.namespace == "kube-system" else self.WORKLOAD_AGE

    def namespaces(self) -> list[dict]:
        out = []
        for ns, labels in sorted(T.NAMESPACES.items()):
            age = self.APP_NAMESPACE_AGE if ns in ("shop", "data") else self.CLUSTER_AGE
            out.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": self.meta("Namespace", None, ns, self.at(age),
                                              labels={"kubernetes.io/metadata.name": ns, **labels}),
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        return out

    def node(self) -> dict:
        n = T.NODE
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": self.meta("Node", None, n.name, self.at(self.CLUSTER_AGE), labels={
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": n.name,
                "kubernetes.io/os": "linux"},
                annotations={"node.alpha.kubernetes.io/ttl": "0",
                             "projectcalico.org/IPv4Address": f"{n.ip}/{n.prefix}",
                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}),
            "spec": {"podCIDR": n.pod_cidr, "podCIDRs": [n.pod_cidr]},
            "status": {
                "addresses": [{"address": n.ip, "type": "InternalIP"},
                              {"address": n.name, "type": "Hostname"}],
                "allocatable": {"cpu": "2", "ephemeral-storage": "19316009748", "memory": "3921240Ki",
                                "pods": "110"},
                "capacity": {"cpu": "2", "ephemeral-storage": "20959212Ki", "memory": "4023640Ki",
                             "pods": "110"},
                "conditions": [{"lastHeartbeatTime": self.at(1), "lastTransitionTime": self.at(self.CLUSTER_AGE - 1),
                                "message": "kubelet is posting ready status", "reason": "KubeletReady",
                                "status": "True", "type": "Ready"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"architecture": "amd64", "bootID": self.uid("Boot", "", n.name),
                             "containerRuntimeVersion": "containerd://1.7.20",
                             "kernelVersion": "6.1.0-25-amd64", "kubeProxyVersion": T.KUBERNETES_VERSION,
                             "kubeletVersion": T.KUBERNETES_VERSION,
                             "machineID": hashlib.md5(n.name.encode()).hexdigest(),
                             "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "systemUUID": self.uid("System", "", n.name)},
            },
        }

    @staticmethod
    def container(w: T.Workload) -> dict:
        return {"image": w.image, "imagePullPolicy": "IfNotPresent", "name": w.container,
                "ports": [{"containerPort": p.port, "name": p.name, "protocol": p.protocol} for p in w.ports],
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}

    def pod_spec(self, w: T.Workload) -> dict:
        spec: dict[str, Any] = {
            "containers": [self.container(w)], "dnsPolicy": "ClusterFirst", "enableServiceLinks": True,
            "restartPolicy": "Always", "schedulerName": "default-scheduler", "securityContext": {},
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
        }
        if w.program == "dnsmasq":
            # CoreDNS itself resolves upstream through the node's resolver.
            spec.update(dnsPolicy="Default", priorityClassName="system-cluster-critical",
                        serviceAccountName="coredns")
        if w.dns_options:
            spec["dnsConfig"] = {"options": [{"name": o} for o in w.dns_options]}
        return spec

    def template(self, w: T.Workload, labels: dict[str, str]) -> dict:
        return {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": self.pod_spec(w)}

    def pod_labels(self, w: T.Workload, pod: T.PodInstance) -> dict[str, str]:
        if w.kind == "StatefulSet":
            return {**w.labels, "apps.kubernetes.io/pod-index": str(pod.index),
                    "controller-revision-hash": self.revision(w),
                    "statefulset.kubernetes.io/pod-name": pod.name}
        return {**w.labels, "pod-template-hash": w.pod_template_hash}

    @staticmethod
    def revision(w: T.Workload) -> str:
        return f"{w.name}-{T.safe_hash(f'revision/{w.key}', 10)}"

    @staticmethod
    def rs_name(w: T.Workload) -> str:
        return f"{w.name}-{w.pod_template_hash}"

    def pod(self, pod: T.PodInstance) -> dict:
        w = pod.workload
        age = self.workload_age(w) - 0.1 * (pod.index + 1)
        if w.kind == "StatefulSet":
            owner = self.owner("StatefulSet", w.name, self.uid("StatefulSet", w.namespace, w.name))
            extra: dict[str, Any] = {}
        else:
            rs = self.rs_name(w)
            owner = self.owner("ReplicaSet", rs, self.uid("ReplicaSet", w.namespace, rs))
            extra = {"generateName": f"{rs}-"}
        spec = self.pod_spec(w)
        spec.update(nodeName=T.NODE.name, preemptionPolicy="PreemptLowerPriority",
                    priority=2000000000 if w.program == "dnsmasq" else 0, serviceAccount=spec["serviceAccountName"],
                    tolerations=[{"effect": "NoExecute", "key": k, "operator": "Exists", "tolerationSeconds": 300}
                                 for k in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")])
        if w.kind == "StatefulSet":
            spec.update(hostname=pod.name, subdomain=w.name)
        started = self.at(age - 0.15)
        conditions = [{"lastProbeTime": None, "lastTransitionTime": t, "status": "True", "type": c}
                      for c, t in (("PodReadyToStartContainers", started), ("Initialized", self.at(age)),
                                   ("Ready", started), ("ContainersReady", started),
                                   ("PodScheduled", self.at(age)))]
        digest = hashlib.sha256(w.image.encode()).hexdigest()
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": self.meta("Pod", pod.namespace, pod.name, self.at(age),
                                  labels=self.pod_labels(w, pod), ownerReferences=[owner], **extra),
            "spec": spec,
            "status": {
                "conditions": conditions,
                "containerStatuses": [{
                    "containerID": "containerd://" + hashlib.sha256(f"{pod.namespace}/{pod.name}".encode()).hexdigest(),
                    "image": w.image, "imageID": w.image.rsplit(":", 1)[0] + "@sha256:" + digest,
                    "lastState": {}, "name": w.container, "ready": True, "restartCount": 0, "started": True,
                    "state": {"running": {"startedAt": started}}}],
                "hostIP": T.NODE.ip, "hostIPs": [{"ip": T.NODE.ip}], "phase": "Running",
                "podIP": pod.ip, "podIPs": [{"ip": pod.ip}], "qosClass": "BestEffort",
                "startTime": self.at(age),
            },
        }

    def replicaset(self, w: T.Workload) -> dict:
        rs = self.rs_name(w)
        n = len(w.pod_ips)
        labels = {**w.labels, "pod-template-hash": w.pod_template_hash}
        return {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": self.meta("ReplicaSet", w.namespace, rs, self.at(self.workload_age(w)),
                                  annotations={"deployment.kubernetes.io/desired-replicas": str(n),
                                               "deployment.kubernetes.io/max-replicas": str(n + max(1, n // 4)),
                                               "deployment.kubernetes.io/revision": "1"},
                                  generation=1, labels=labels,
                                  ownerReferences=[self.owner("Deployment", w.name,
                                                              self.uid("Deployment", w.namespace, w.name))]),
            "spec": {"replicas": n,
                     "selector": {"matchLabels": {**w.selector, "pod-template-hash": w.pod_template_hash}},
                     "template": self.template(w, labels)},
            "status": {"availableReplicas": n, "fullyLabeledReplicas": n, "observedGeneration": 1,
                       "readyReplicas": n, "replicas": n},
        }

    def deployment(self, w: T.Workload) -> dict:
        n = len(w.pod_ips)
        t = self.at(self.workload_age(w) - 0.5)
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": self.meta("Deployment", w.namespace, w.name, self.at(self.workload_age(w)),
                                  annotations={"deployment.kubernetes.io/revision": "1"}, generation=1,
                                  labels={k: v for k, v in w.labels.items() if k in w.selector}),
            "spec": {"progressDeadlineSeconds": 600, "replicas": n, "revisionHistoryLimit": 10,
                     "selector": {"matchLabels": dict(w.selector)},
                     "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                                  "type": "RollingUpdate"},
                     "template": self.template(w, dict(w.labels))},
            "status": {"availableReplicas": n, "observedGeneration": 1, "readyReplicas": n, "replicas": n,
                       "updatedReplicas": n,
                       "conditions": [
                           {"lastTransitionTime": t, "lastUpdateTime": t, "message": "Deployment has minimum availability.",
                            "reason": "MinimumReplicasAvailable", "status": "True", "type": "Available"},
                           {"lastTransitionTime": self.at(self.workload_age(w)), "lastUpdateTime": t,
                            "message": f'ReplicaSet "{self.rs_name(w)}" has successfully progressed.',
                            "reason": "NewReplicaSetAvailable", "status": "True", "type": "Progressing"}]},
        }

    def statefulset(self, w: T.Workload) -> dict:
        n = len(w.pod_ips)
        rev = self.revision(w)
        svc = next(s for s in T.SERVICES if s.namespace == w.namespace and s.selector == w.selector)
        return {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": self.meta("StatefulSet", w.namespace, w.name, self.at(self.workload_age(w)),
                                  generation=1, labels={k: v for k, v in w.labels.items() if k in w.selector}),
            "spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                     "podManagementPolicy": "OrderedReady", "replicas": n, "revisionHistoryLimit": 10,
                     "selector": {"matchLabels": dict(w.selector)}, "serviceName": svc.name,
                     "template": self.template(w, dict(w.labels)),
                     "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"}},
            "status": {"availableReplicas": n, "collisionCount": 0, "currentReplicas": n, "currentRevision": rev,
                       "observedGeneration": 1, "readyReplicas": n, "replicas": n, "updateRevision": rev,
                       "updatedReplicas": n},
        }

    def service_age(self, svc: T.Service) -> float:
        if svc.namespace in ("default", "kube-system"):
            return self.CLUSTER_AGE - (0 if svc.namespace == "default" else 2)
        return self.WORKLOAD_AGE + 0.5

    def service(self, svc: T.Service) -> dict:
        ports = []
        for sp in svc.ports:
            p: dict[str, Any] = {"name": sp.name, "port": sp.port, "protocol": sp.protocol,
                                 "targetPort": sp.target_port}
            if sp.node_port:
                p["nodePort"] = sp.node_port
            ports.append(p)
        spec: dict[str, Any] = {"clusterIP": svc.cluster_ip, "clusterIPs": [svc.cluster_ip],
                                "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                                "ipFamilyPolicy": "SingleStack", "ports": ports,
                                "sessionAffinity": "None", "type": svc.type}
        if svc.selector is not None:
            spec["selector"] = dict(svc.selector)
        if svc.external_traffic_policy:
            spec["externalTrafficPolicy"] = svc.external_traffic_policy
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": self.meta("Service", svc.namespace, svc.name, self.at(self.service_age(svc)),
                                      labels=dict(svc.labels) or None),
                "spec": spec, "status": {"loadBalancer": {}}}

    def endpointslice(self, svc: T.Service) -> dict:
        pods_by_ip = {p.ip: p for p in T.pods()}
        ports, endpoints = [], []
        seen: set[str] = set()
        for sp in svc.ports:
            eps = service_endpoints(svc, sp)
            ports.append({"name": sp.name, "port": eps[0][1], "protocol": sp.protocol})
            for ip, _ in eps:
                if ip in seen:
                    continue
                seen.add(ip)
                ep: dict[str, Any] = {"addresses": [ip],
                                      "conditions": {"ready": True, "serving": True, "terminating": False}}
                pod = pods_by_ip.get(ip)
                if pod is not None:
                    ep["nodeName"] = T.NODE.name
                    ep["targetRef"] = {"kind": "Pod", "name": pod.name, "namespace": pod.namespace,
                                       "uid": self.uid("Pod", pod.namespace, pod.name)}
                endpoints.append(ep)
        if svc.selector is None:
            name, extra = svc.name, {}
            labels = {"kubernetes.io/service-name": svc.name}
        else:
            name = f"{svc.name}-{T.safe_hash(f'slice/{svc.key}', 5)}"
            extra = {"generateName": f"{svc.name}-", "generation": 1,
                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time":
                                     self.at(self.WORKLOAD_AGE - 1 if svc.namespace in ("shop", "data")
                                             else self.CLUSTER_AGE - 3)},
                     "ownerReferences": [self.owner("Service", svc.name, self.uid("Service", svc.namespace, svc.name),
                                                    api="v1")]}
            labels = {**svc.labels, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                      "kubernetes.io/service-name": svc.name}
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "endpoints": sorted(endpoints, key=lambda e: e["addresses"][0]),
                "metadata": self.meta("EndpointSlice", svc.namespace, name, self.at(self.service_age(svc)),
                                      labels=labels, **extra),
                "ports": ports}

    def build(self) -> dict:
        def by_key(items: list[dict]) -> list[dict]:
            return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

        items: list[dict] = []
        items += self.namespaces()
        items += [self.node()]
        items += by_key([self.pod(p) for p in T.pods()])
        items += by_key([self.service(s) for s in T.SERVICES])
        items += by_key([self.endpointslice(s) for s in T.SERVICES])
        items += by_key([self.replicaset(w) for w in T.WORKLOADS if w.kind == "Deployment"])
        items += by_key([self.deployment(w) for w in T.WORKLOADS if w.kind == "Deployment"])
        items += by_key([self.statefulset(w) for w in T.WORKLOADS if w.kind == "StatefulSet"])
        return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def inventory_json(anchor: datetime) -> str:
    return json.dumps(InventoryBuilder(anchor).build(), indent=4, sort_keys=True) + "\n"


# --- reading and checking the capture ------------------------------------------------------

def pcap_info(path: str) -> dict[str, Any]:
    """Link type, packet count, first/last timestamps, straight from the pcap records."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<",
              b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None:
        raise DemoError(f"{path}: not a classic pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    snaplen, linktype = struct.unpack(endian + "II", data[16:24])
    off, count, first, last = 24, 0, None, None
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        ts = sec + frac / (1e9 if nano else 1e6)
        first = ts if first is None else first
        last = ts
        count += 1
        off += 16 + incl
    return {"linktype": linktype, "snaplen": snaplen, "packets": count, "first": first, "last": last,
            "bytes": len(data)}


def capture_anchor(path: str) -> datetime:
    """The inventory's clock: the capture's first second, rounded down to the minute."""
    first = pcap_info(path)["first"]
    if first is None:
        raise DemoError(f"{path}: no packets")
    t = datetime.fromtimestamp(int(first), tz=timezone.utc)
    return t.replace(second=0)


@dataclass(frozen=True)
class WireForm:
    """One shape a connection must take on the wire: a SYN (TCP) or a query (UDP) from one of
    ``srcs`` to ``dst:dport``."""

    what: str
    protocol: str
    srcs: tuple[str, ...]
    dst: str
    dport: int


def _forms(label: str, clients: tuple[str, ...], t: T.Target) -> list[WireForm]:
    forms = [WireForm(f"{label}, as dialled by {c}", t.protocol, (c,), t.dial_ip, t.dial_port)
             for c in clients]
    if t.dial_ip not in t.server_ips:
        # Service DNAT: every backend must have been reached.
        forms += [WireForm(f"{label}, after DNAT to {b}", t.protocol, clients, b, t.port)
                  for b in t.server_ips]
    elif t.dial_ip not in {p.ip for p in T.pods()}:
        # Leaves the cluster: masqueraded to the node's address on the uplink.
        forms.append(WireForm(f"{label}, masqueraded", t.protocol, (T.NODE.ip,), t.dial_ip, t.dial_port))
    return forms


def wire_forms() -> list[WireForm]:
    """Every form each expected connection takes in a node capture: from every client replica
    as dialled, after DNAT to every backend, and after masquerade."""
    forms: list[WireForm] = []
    dns_svc, dns = T.kube_dns()
    for w in T.WORKLOADS:
        for c in w.calls:
            forms += _forms(f"{w.ref} → {c.host}:{c.port}", w.pod_ips, T.resolve_call(w.namespace, c))
        if T.uses_dns(w.calls):
            proto = "TCP" if "use-vc" in w.dns_options else "UDP"
            t = T.Target(dns_svc.cluster_ip, 53, dns.ref, dns.pod_ips, 53, proto)
            forms += _forms(f"{w.ref} → kube-dns {proto}", w.pod_ips, t)
    for e in T.EXTERNALS:
        for c in e.calls:
            forms += _forms(f"{e.ip} → {c.host}:{c.port}", (e.ip,), T.resolve_call("default", c))
    return forms


def observed_requests(path: str) -> dict[tuple[str, str, str, int], int]:
    """(protocol, src, dst, dport) → count of TCP SYNs without ACK and of UDP datagrams to
    port 53 (the request direction), read with scapy."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import PcapReader

    out: dict[tuple[str, str, str, int], int] = defaultdict(int)
    with PcapReader(path) as reader:
        for pkt in reader:
            ip = pkt.getlayer(IP)
            if ip is None:
                continue
            if ip.haslayer(TCP):
                tcp = ip[TCP]
                if tcp.flags.S and not tcp.flags.A:
                    out[("TCP", ip.src, ip.dst, tcp.dport)] += 1
            elif ip.haslayer(UDP) and ip[UDP].dport == 53:
                out[("UDP", ip.src, ip.dst, 53)] += 1
    return out


def check_capture(path: str) -> list[str]:
    """Problems found: an expected form missing, or a connection nobody expected."""
    seen = observed_requests(path)
    problems = []
    explained: set[tuple[str, str, str, int]] = set()
    for f in wire_forms():
        keys = {(f.protocol, s, f.dst, f.dport) for s in f.srcs}
        explained |= keys
        if not any(seen.get(k) for k in keys):
            problems.append(f"missing: {f.what}: {f.protocol} {'|'.join(f.srcs)} → {f.dst}:{f.dport}")
    for key in sorted(set(seen) - explained):
        problems.append(f"unexpected: {key[0]} {key[1]} → {key[2]}:{key[3]} ({seen[key]}×)")
    return problems


# --- writing ------------------------------------------------------------------------------------

def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_derived(pcap: str) -> None:
    write_atomic(INVENTORY, inventory_json(capture_anchor(pcap)).encode())
    write_atomic(EDGES, T.expected_edges_tsv().encode())


def summary(path: str) -> str:
    info = pcap_info(path)
    names = {1: "EN10MB", 113: "LINUX_SLL", 276: "LINUX_SLL2"}
    dur = (info["last"] or 0) - (info["first"] or 0)
    start = datetime.fromtimestamp(info["first"], tz=timezone.utc).isoformat(timespec="seconds")
    return (f"{path}: {info['packets']} packets, link type {info['linktype']} "
            f"({names.get(info['linktype'], '?')}), snaplen {info['snaplen']}, {dur:.1f} s from {start}, "
            f"{info['bytes']} bytes")


def node_interfaces() -> list[tuple[int, str, str]]:
    """(ifindex, name, what) in the node namespace: SLL2 records carry the ifindex, and
    ``tcpdump -r`` on another machine shows that machine's interface names for it."""
    what = {T.NODE.uplink: "uplink to the router (node IP)", "lo": "loopback"}
    what.update({p.host_veth: f"pod {p.namespace}/{p.name} ({p.ip})" for p in T.pods()})
    out = []
    for line in run("ip", "-n", T.NODE.netns, "-o", "link").splitlines():
        idx, name = line.split(":")[:2]
        name = name.strip().split("@")[0]
        out.append((int(idx), name, what.get(name, "")))
    return out


def do_record(requests: int) -> None:
    if os.geteuid() != 0:
        raise DemoError("recording needs root (network namespaces, veths, iptables)")
    for tool in ("ip", "iptables-restore", "tcpdump", "dnsmasq", "redis-server", "openssl", "runuser", "ss"):
        if shutil.which(tool) is None:
            raise DemoError(f"{tool} not found (apt-get install tcpdump dnsmasq redis-server iptables iproute2)")
    if not os.path.exists(f"{PG_BIN}/postgres"):
        raise DemoError(f"{PG_BIN}/postgres not found (apt-get install postgresql-15)")
    leftovers = existing_netns() & set(all_netns())
    if leftovers:
        print(f"removing namespaces left by an earlier run: {sorted(leftovers)}", file=sys.stderr)
        teardown_network()

    work = tempfile.mkdtemp(prefix="npg-demo-")
    os.chmod(work, 0o755)  # postgres and redis run as their own users below it
    procs = Processes(work)

    def on_signal(signum: int, _frame: Any) -> None:
        raise DemoError(f"interrupted by signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, on_signal)
    signal.alarm(OVERALL_TIMEOUT)
    pcap = None
    try:
        build_network()
        for idx, name, what in node_interfaces():
            print(f"ifindex {idx}\t{name}\t{what}")
        start_programs(procs, work)
        pcap = record(requests, work, procs)
        procs.check_alive()
        kept = os.path.join(HERE, f".demo.pcap.new{os.getpid()}")
        shutil.copyfile(pcap, kept)
        pcap = kept
    finally:
        signal.alarm(0)
        procs.stop_all()
        teardown_network()
        left = existing_netns() & set(all_netns())
        shutil.rmtree(work, ignore_errors=True)
        if left:
            print(f"warning: namespaces still present: {sorted(left)}", file=sys.stderr)
    try:
        problems = check_capture(pcap)
        if problems:
            raise DemoError("the capture does not show the scenario:\n  " + "\n  ".join(problems))
    except BaseException:
        os.unlink(pcap)
        raise
    os.replace(pcap, PCAP)
    write_derived(PCAP)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify demo.pcap against the topology")
    mode.add_argument("--inventory-only", action="store_true",
                      help="rewrite demo-inventory.json and expected-edges.tsv from topology.py and demo.pcap")
    mode.add_argument("--cleanup", action="store_true", help="remove namespaces left by an interrupted run")
    p.add_argument("--requests", type=int, default=T.REQUESTS, help="requests the outside client sends")
    args = p.parse_args(argv)
    try:
        if args.cleanup:
            teardown_network()
        elif args.check:
            problems = check_capture(PCAP)
            print(summary(PCAP))
            for line in problems:
                print(line)
            return 1 if problems else 0
        elif args.inventory_only:
            write_derived(PCAP)
        else:
            if not 1 <= args.requests <= 200:
                raise DemoError("--requests must be between 1 and 200")
            do_record(args.requests)
            print(summary(PCAP))
        return 0
    except DemoError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
