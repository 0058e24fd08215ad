"""Packets per second of the pcap source, side by side with tcpdump and scapy, and peak memory.

    python benchmarks/bench_pcap.py                       # 1M-packet pcap and pcapng, generated
    python benchmarks/bench_pcap.py --file some.pcap      # any capture
    python benchmarks/bench_pcap.py --packets 200000 --format pcap

Each reader runs in its own process so that its peak RSS is its own:
- netpolgen: ``PcapSource(path).connections()`` (read, decode, decapsulate, track connections,
  build the flow table), timed inside the process after imports; peak RSS of that process, and
  what the imports alone took of it. ``--api chunks`` consumes ``chunks()`` one chunk at a time
  instead (the bounded-memory path: ``--api chunks --no-tcpdump --scapy-packets 0`` on a
  multi-GB capture is the memory check);
- tcpdump: ``tcpdump -nn -r FILE > /dev/null`` (skipped when tcpdump is not installed);
- scapy: ``PcapReader``/``PcapNgReader`` dissecting the first ``--scapy-packets`` packets (it is
  far too slow for the whole file), extrapolated as packets/s.
Figures are printed, never asserted: speed is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"

NETPOLGEN_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from netpolgen.sources.pcap import PcapSource
t1 = time.perf_counter()
import_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
src = PcapSource(sys.argv[1], block_bytes=int(sys.argv[2]))
if sys.argv[3] == "chunks":
    rows = 0
    for chunk in src.chunks():
        rows += len(chunk)
        del chunk
else:
    rows = len(src.connections())
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "import": t1 - t0, "records": src.stats.records, "rows": rows,
                  "import_kb": import_kb, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

SCAPY_CHILD = r"""
import json, sys, time
# As users run it: scapy.all registers the link layers, so packets are dissected (Ether/IP/TCP);
# scapy.utils alone would hand back undecoded Raw packets.
from scapy.all import PcapReader, PcapNgReader
path, limit = sys.argv[1], int(sys.argv[2])
with open(path, "rb") as f:
    ng = f.read(4) == b"\x0a\x0d\x0d\x0a"
reader = (PcapNgReader if ng else PcapReader)(path)
n = 0
t = time.perf_counter()
for pkt in reader:
    n += 1
    if n >= limit:
        break
dt = time.perf_counter() - t
reader.close()
print(json.dumps({"seconds": dt, "packets": n}))
"""


def run_child(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_netpolgen(path: Path, block_bytes: int, repeat: int, api: str) -> dict:
    runs = [run_child(NETPOLGEN_CHILD, str(path), str(block_bytes), api) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    best["maxrss_kb"] = max(r["maxrss_kb"] for r in runs)
    return best


def bench_tcpdump(path: Path, repeat: int) -> float | None:
    exe = shutil.which("tcpdump")
    if not exe:
        return None
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([exe, "-nn", "-r", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best


def ensure_capture(packets: int, fmt: str) -> Path:
    path = DATA / f"bench-{packets}-dns.{fmt}"  # DNS-heavy (gen_capture default)
    if not path.exists():
        # In a process of its own: the generator's arrays would otherwise count in the peak RSS
        # of every reader started from this process (a child's maximum includes the pages it
        # shared with its parent until its exec).
        subprocess.run([sys.executable, str(HERE / "gen_capture.py"), "--packets", str(packets), "--format", fmt,
                        "--out", str(path)], check=True)
    return path


def report(path: Path, args: argparse.Namespace) -> None:
    size = path.stat().st_size
    ours = bench_netpolgen(path, args.block_bytes, args.repeat, args.api)
    n = ours["records"]
    ours_pps = n / ours["seconds"]
    print(f"\n{path.name}: {n:,} packets, {size / 1e6:,.1f} MB, {ours['rows']:,} connections")
    print(f"  {'reader':<34}{'seconds':>9}{'packets/s':>14}{'vs netpolgen':>14}")
    print(f"  {'netpolgen PcapSource.' + args.api:<34}{ours['seconds']:>9.3f}{ours_pps:>14,.0f}{'1.00x':>14}")
    print(f"  {'  (+ imports, once per process)':<34}{ours['import']:>9.3f}")
    dump = None if args.no_tcpdump else bench_tcpdump(path, args.repeat)
    if args.no_tcpdump:
        pass
    elif dump is None:
        print("  tcpdump: not installed, skipped (apt-get install -y tcpdump)")
    else:
        pps = n / dump
        print(f"  {'tcpdump -nn -r FILE > /dev/null':<34}{dump:>9.3f}{pps:>14,.0f}{pps / ours_pps:>13.2f}x")
    if args.scapy_packets:
        sc = run_child(SCAPY_CHILD, str(path), str(args.scapy_packets))
        pps = sc["packets"] / sc["seconds"]
        label = f"scapy reader, first {sc['packets']:,}"
        print(f"  {label:<34}{sc['seconds']:>9.3f}{pps:>14,.0f}{pps / ours_pps:>13.3f}x")
    print(f"  netpolgen peak RSS: {ours['maxrss_kb'] / 1024:,.0f} MB, of which imports "
          f"{ours['import_kb'] / 1024:,.0f} MB (block {args.block_bytes >> 20} MB)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", type=Path, action="append", help="capture(s) to measure (default: generated)")
    ap.add_argument("--packets", type=int, default=1_000_000, help="size of the generated captures")
    ap.add_argument("--format", choices=["pcap", "pcapng", "both"], default="both")
    ap.add_argument("--scapy-packets", type=int, default=20_000, help="0 skips scapy")
    ap.add_argument("--no-tcpdump", action="store_true", help="skip tcpdump (slow on multi-GB files)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per reader; the best is shown")
    ap.add_argument("--block-bytes", type=int, default=8 << 20, help="default: the reader's own")
    ap.add_argument("--api", choices=["connections", "chunks"], default="connections",
                    help="what netpolgen is asked for (chunks: consumed one at a time)")
    args = ap.parse_args(argv)
    files = args.file or [ensure_capture(args.packets, f) for f in
                          (["pcap", "pcapng"] if args.format == "both" else [args.format])]
    for path in files:
        report(path, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
