"""End-to-end `netpolgen generate` on generated captures and inventories: wall time and peak RSS.

    .venv/bin/python benchmarks/bench_generate.py                      # 1M packets, 2,000 pods (issue 4's target: < 3 s)
    .venv/bin/python benchmarks/bench_generate.py --packets 1000000,10000000 --pods 100,2000,20000
    .venv/bin/python benchmarks/bench_generate.py --talkers all        # worst case: every pod talks to every other
    .venv/bin/python benchmarks/bench_generate.py --no-tcpdump          # skip the reference

The reference is ``tcpdump -nn -r CAPTURE > /dev/null`` on the same capture, timed the same way
in the same run (best of ``--repeat``, runs interleaved with netpolgen's), and the table gives
how many times faster netpolgen's whole run is than tcpdump merely printing the packets.

Each run is a fresh `python -m netpolgen generate CAPTURE --inventory INV --output DIR -q`
process, timed from outside (interpreter start-up and imports included, as a user sees it);
its peak RSS is read from the kernel's accounting of the child. Captures come from
gen_capture.py: by default its standard traffic between 300 hosts (as in bench_pcap.py), which
are the first 300 pods of the inventory (all of them when there are fewer) — a cluster where
some workloads talk and most of the inventory is idle; ``--talkers all`` makes every pod a host,
so that the workloads form a full mesh (tens of thousands of edges, the largest policies). The
inventory groups the pods into Deployments of 10 pods, 1,000 pods per namespace, each pod
listening on every port the generator serves. Inputs are cached in benchmarks/data/ (git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
DATA = os.path.join(HERE, "data")

import gen_capture  # noqa: E402  (benchmarks/ is not a package)

PODS_PER_WORKLOAD = 10
PODS_PER_NAMESPACE = 1000


def host_ip(h: int) -> str:
    """The address gen_capture gives host number ``h``."""
    return f"10.244.{h // 250}.{h % 250 + 1}"


def inventory(pods: int) -> dict:
    ports = [{"name": f"p{p}", "containerPort": int(p), "protocol": "TCP"} for p in gen_capture.SERVICE_PORTS]
    ports.append({"name": "dns", "containerPort": 53, "protocol": "UDP"})
    items: list[dict] = []
    namespaces = sorted({f"ns{h // PODS_PER_NAMESPACE}" for h in range(pods)})
    items += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}
              for ns in namespaces]
    for w in range(-(-pods // PODS_PER_WORKLOAD)):
        ns = f"ns{w * PODS_PER_WORKLOAD // PODS_PER_NAMESPACE}"
        name = f"app{w}"
        h = hashlib.sha1(name.encode()).hexdigest()[:10]
        labels = {"app": name}
        items.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                      "spec": {"selector": {"matchLabels": labels},
                               "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "ports": ports}]}}}})
        items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "metadata": {"name": f"{name}-{h}", "namespace": ns,
                                   "ownerReferences": [{"kind": "Deployment", "name": name, "controller": True}]},
                      "spec": {"selector": {"matchLabels": {**labels, "pod-template-hash": h}}}})
        for r in range(PODS_PER_WORKLOAD):
            host = w * PODS_PER_WORKLOAD + r
            if host >= pods:
                break
            items.append({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": f"{name}-{h}-{r}", "namespace": ns, "labels": {**labels, "pod-template-hash": h},
                                       "ownerReferences": [{"kind": "ReplicaSet", "name": f"{name}-{h}", "controller": True}]},
                          "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": ports}]},
                          "status": {"phase": "Running", "podIP": host_ip(host), "podIPs": [{"ip": host_ip(host)}], "hostIP": "172.18.0.2"}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def ensure_inputs(packets: int, pods: int, hosts: int) -> tuple[str, str]:
    os.makedirs(DATA, exist_ok=True)
    cap = os.path.join(DATA, f"cap-{packets}-{hosts}-dns.pcap")  # DNS-heavy (gen_capture default)
    inv = os.path.join(DATA, f"inv-{pods}.json")
    if not os.path.exists(cap):
        gen_capture.generate(cap, packets, "pcap", hosts=hosts)
    if not os.path.exists(inv):
        with open(inv, "w") as f:
            json.dump(inventory(pods), f)
    return cap, inv


def run(cap: str, inv: str) -> dict:
    out = tempfile.mkdtemp(prefix="npg-bench-")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "netpolgen", "generate", cap, "--inventory", inv, "--output", out, "-q"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"generate failed: {proc.stderr.strip()}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    files = sum(len(fs) for _, _, fs in os.walk(out))
    # ru_maxrss of children is a running maximum: runs go smallest first, so a new maximum is
    # this run's; an unchanged one means this run peaked no higher (reported as an upper bound).
    return {"wall_s": wall, "peak_rss_mb": rss / 1024, "rss_is_upper_bound": rss == before, "files": files}


def tcpdump(cap: str) -> float | None:
    exe = shutil.which("tcpdump")
    if exe is None:
        return None
    t0 = time.perf_counter()
    subprocess.run([exe, "-nn", "-r", cap], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", default="1000000")
    ap.add_argument("--pods", default="2000")
    ap.add_argument("--repeat", type=int, default=3, help="runs per combination; the best wall time is reported")
    ap.add_argument("--talkers", default="300", help="hosts in the capture: a number (capped at the pod count) or 'all'")
    ap.add_argument("--no-tcpdump", action="store_true", help="skip the reference run of tcpdump -nn -r")
    args = ap.parse_args()
    packets = [int(x) for x in args.packets.split(",")]
    pods = [int(x) for x in args.pods.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'packets':>10} {'pods':>7} {'talkers':>7} {'capture MB':>10} {'wall s':>8} {'pkts/s':>11} {'peak RSS MB':>12} "
          f"{'files':>6} {'tcpdump s':>10} {'vs tcpdump':>11}")
    for n in sorted(packets):
        for p in sorted(pods):
            hosts = p if args.talkers == "all" else min(p, int(args.talkers))
            cap, inv = ensure_inputs(n, p, hosts)
            runs, dumps = [], []
            for _ in range(args.repeat):  # interleaved: a burst of load hits both alike
                runs.append(run(cap, inv))
                if not args.no_tcpdump:
                    dumps.append(tcpdump(cap))
            best = min(runs, key=lambda r: r["wall_s"])
            rss = max(r["peak_rss_mb"] for r in runs)
            flag = "≤" if all(r["rss_is_upper_bound"] for r in runs) else " "
            dump = min((d for d in dumps if d is not None), default=None)
            versus = (f"{dump:>10.2f} {dump / best['wall_s']:>10.2f}x" if dump is not None
                      else f"{'-':>10} {'-':>11}")
            print(f"{n:>10,} {p:>7,} {hosts:>7,} {os.path.getsize(cap) / 1e6:>10.0f} {best['wall_s']:>8.2f} "
                  f"{n / best['wall_s']:>11,.0f} {flag}{rss:>11.0f} {best['files']:>6} {versus}", flush=True)


if __name__ == "__main__":
    main()
