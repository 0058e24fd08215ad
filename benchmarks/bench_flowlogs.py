"""Flow-log source throughput, and netpolgen against hubble-audit2policy on the same Hubble file.

Prints records per second for the Hubble, VPC and Calico sources (the files come from
benchmarks/gen_flowlogs.py; run it first), best of ``--repeat`` runs. Then, when the
``hubble-audit2policy`` package is installed (``pip install .[bench]``), runs it and
``netpolgen generate`` end to end on the 200,000-flow Hubble file, and counts the rules each
wrote towards ephemeral client ports (32768-60999, minus the ports the generated servers use):
rules that only a reply flow can produce.

With ``--million`` the Hubble and Calico figures, and the comparison, use the 1,000,000-record
files (``gen_flowlogs.py --million``), and each source also runs end to end as ``netpolgen
generate FILE`` (a fresh process: interpreter start, imports, reading, resolving, synthesis and
YAML), with its peak RSS.

Usage: ``python benchmarks/bench_flowlogs.py [--repeat N] [--data DIR] [--million]``. Figures
only, no assertions: speed is not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netpolgen.sources.base import SourceOptions  # noqa: E402
from netpolgen.sources.calico import CalicoSource  # noqa: E402
from netpolgen.sources.hubble import HubbleSource  # noqa: E402
from netpolgen.sources.vpc import VpcFlowLogSource  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_flowlogs import SERVER_PORTS  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
FILES = (("hubble", HubbleSource, "hubble-200k.json", 300_000),
         ("vpc", VpcFlowLogSource, "vpc-1m.log", 1_000_000),
         ("calico", CalicoSource, "calico-300k.log", 300_000))
FILES_MILLION = (("hubble", HubbleSource, "hubble-1m.json", 500_000),
                 ("vpc", VpcFlowLogSource, "vpc-1m.log", 1_500_000),
                 ("calico", CalicoSource, "calico-1m.log", 500_000))
EPHEMERAL = set(range(32768, 61000)) - set(SERVER_PORTS)
REPO = Path(__file__).resolve().parents[1]
# Both tools run as a user runs them: with their bytecode cached (some sandboxes turn that off).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_source(cls, path: Path) -> tuple[float, float, int, int, int]:
    """(wall seconds, CPU seconds, records, rows, connections). CPU time is the steadier figure
    on a machine shared with other work; it includes the worker processes that parse a large
    file in parallel (their CPU time is added up, so it can exceed the wall time)."""
    src = cls(str(path), SourceOptions())
    t, c, k = time.perf_counter(), time.process_time(), _children_cpu()
    rows = sum(len(c) for c in src.chunks())
    cpu = time.process_time() - c + _children_cpu() - k
    return time.perf_counter() - t, cpu, src.stats.records, rows, src.stats.connections


def ephemeral_rules(docs: list[dict]) -> int:
    """Port entries on ephemeral ports in NetworkPolicy or CiliumNetworkPolicy documents."""
    count = 0

    def walk(node):
        nonlocal count
        if isinstance(node, dict):
            port = node.get("port")
            if port is not None and str(port).isdigit() and int(port) in EPHEMERAL:
                count += 1
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for d in docs:
        walk(d)
    return count


def _timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS in MB, process) of one run of ``command``. The peak RSS is the
    one /usr/bin/time reports for its child: a child forked from this (large) process would
    count this process's pages in its own maximum, up to its exec."""
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    wrapped = [timer, "-f", "%M", *command] if timer else command
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, cwd=REPO, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode()
        done = subprocess.CompletedProcess(command, proc.returncode, out.read().decode(), stderr)
    rss = usage.ru_maxrss / 1024
    if timer:
        last = stderr.strip().splitlines()[-1:] or [""]
        rss = int(last[0]) / 1024 if last[0].isdigit() else float("nan")
    return wall, rss, done


def _best_run(command: list[str], runs: int = 2) -> tuple[float, subprocess.CompletedProcess, list[dict]]:
    """(best wall time, last process, YAML documents written) of ``runs`` runs of ``command``
    into a fresh directory (``{out}`` in the command). The first run also writes the bytecode
    caches that an installed tool has."""
    best, proc, docs = float("inf"), None, []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            proc = subprocess.run([a.replace("{out}", out) for a in command], capture_output=True, text=True,
                                  cwd=REPO, env=ENV)
            best = min(best, time.perf_counter() - t)
            docs = [d for f in sorted(Path(out).rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return best, proc, docs


def bench_audit2policy(path: Path, records: int) -> None:
    exe = shutil.which("hubble-audit2policy") or str(Path(sys.executable).with_name("hubble-audit2policy"))
    if not Path(exe).exists():
        print("hubble-audit2policy: not installed (pip install '.[bench]'); comparison skipped")
        return
    from netpolgen.pipeline import generate

    runs = 1 if records > 500_000 else 2  # the reference takes about a minute on 1M flows
    theirs, proc, docs = _best_run([exe, str(path), "-o", "{out}", "--no-enrich"], runs)
    if proc.returncode != 0:
        print(f"hubble-audit2policy failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        return
    generate([str(path)], [])  # first call: lazy imports and caches, as the process below pays
    t = time.perf_counter()
    result = generate([str(path)], [])
    ours = time.perf_counter() - t
    cli, proc, _ = _best_run([sys.executable, "-m", "netpolgen", "generate", str(path), "-o", "{out}", "-q"], runs)
    if proc.returncode != 0:
        print(f"netpolgen generate failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        return
    print(f"hubble-audit2policy  {theirs:7.2f} s  {records / theirs:>10,.0f} records/s  "
          f"{len(docs)} policies, {ephemeral_rules(docs)} port entries on ephemeral (reply) ports  "
          f"(process time, best of {runs}, includes interpreter start)")
    print(f"netpolgen generate   {cli:7.2f} s  {records / cli:>10,.0f} records/s  "
          f"(process time, best of {runs}: interpreter start, imports, read + resolve + synthesize, YAML files)")
    print(f"  in process         {ours:7.2f} s  {records / ours:>10,.0f} records/s  "
          f"{len(result.policies)} policies, {ephemeral_rules(result.policies)} port entries on ephemeral ports  "
          f"(read + resolve + synthesize, no inventory, second call)")
    print(f"speed-up             {theirs / cli:7.1f}x process to process, {theirs / ours:.1f}x in process  "
          f"(load average {os.getloadavg()[0]:.2f})")
    floor(path, theirs)


def floor(path: Path, theirs: float) -> None:
    """What any Python run of this job pays before resolving anything: the interpreter with
    pandas imported (the aggregation stack), and a scan of every line with the fastest JSON
    decoder at hand (msgspec) decoding no field at all, split over every CPU. Set against a
    tenth of hubble-audit2policy's time, it shows how much of a 10x budget is left."""
    import msgspec

    class Nothing(msgspec.Struct):
        pass

    start = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pandas"], check=True, env=ENV)
        start.append(time.perf_counter() - t)
    decode = msgspec.json.Decoder(Nothing).decode
    t = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            if len(line) > 1:
                decode(line)
    scan = (time.perf_counter() - t) / (os.cpu_count() or 1)
    budget = theirs / 10
    print(f"floor                {min(start) + scan:7.2f} s  = interpreter + import pandas {min(start):.2f} s + "
          f"reading and scanning every line with msgspec, no field decoded, over {os.cpu_count()} CPUs "
          f"{scan:.2f} s;  10x budget {budget:.2f} s leaves {budget - min(start) - scan:+.2f} s for "
          f"decoding fields, folding, resolving, aggregating, synthesis and YAML")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--no-compare", action="store_true", help="skip the hubble-audit2policy comparison")
    ap.add_argument("--million", action="store_true",
                    help="1,000,000-record Hubble and Calico files, and end-to-end runs of netpolgen generate")
    args = ap.parse_args()
    files = FILES_MILLION if args.million else FILES
    hubble_records = 0
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    for name, cls, fname, target in files:
        path = args.data / fname
        if not path.exists():
            print(f"{name}: {path} missing (run benchmarks/gen_flowlogs.py)")
            continue
        best = None
        for _ in range(args.repeat):
            run = run_source(cls, path)
            best = run if best is None or run[0] < best[0] else best
        secs, cpu, records, rows, conns = best
        if name == "hubble":
            hubble_records = records
        mb = path.stat().st_size / 1e6
        print(f"{name:7s} {records:>9,} records  {secs:6.2f} s  {records / secs:>10,.0f} records/s "
              f"(CPU: {records / cpu:>9,.0f}/s)  {mb / secs:6.1f} MB/s  -> {rows:,} rows, {conns:,} connections  "
              f"(target {target:,}/s)")
        if args.million:
            end_to_end(path, records, args.repeat)
    hubble = args.data / ("hubble-1m.json" if args.million else "hubble-200k.json")
    if not args.no_compare and hubble.exists():
        bench_audit2policy(hubble, hubble_records or 200_000)


def end_to_end(path: Path, records: int, repeat: int) -> None:
    """``netpolgen generate FILE`` as a user runs it: best wall time of ``repeat`` runs, and the
    highest peak RSS among them."""
    best, rss = float("inf"), 0.0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            wall, peak, proc = _timed([sys.executable, "-m", "netpolgen", "generate", str(path), "-o", out, "-q"])
        if proc.returncode != 0:
            print(f"  netpolgen generate failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
            return
        best, rss = min(best, wall), max(rss, peak)
    print(f"  end to end: netpolgen generate {best:6.2f} s  {records / best:>10,.0f} records/s  peak RSS {rss:,.0f} MB")


if __name__ == "__main__":
    main()
