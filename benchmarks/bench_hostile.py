"""Peak memory against input size, and what hostile inputs cost before they are refused.

1. Hubble flow logs of growing size (the same few thousand connections repeated, as a busy
   cluster's log is): ``netpolgen generate`` end to end, peak RSS of the whole process tree
   (the parsing pool included) against the input size. Bounded memory means the figure stays
   flat while the input grows.
2. One line of growing length (no newline) in front of real records: skipped as an oversized
   record; memory must not follow the line's length.
3. A gzip file of whitespace (~1000x): refused by the expansion guard; seconds and RSS.
4. A "billion laughs" YAML inventory: refused; seconds and RSS.

Usage: ``python benchmarks/bench_hostile.py [--sizes-gb 0.25,1,4] [--line-gb 0.25,1]
[--bomb-gb 2] [--tmp DIR]``. The data is generated under --tmp (default /tmp) and deleted after
each case. Figures only, no assertions: speed and memory are not tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

try:
    import psutil
except ImportError:  # the figure is then the main process's own peak (pool workers not counted)
    psutil = None


def _record(i: int) -> bytes:
    """One Hubble record of connection ``i % 4000`` (a client pod to one of 40 server pods)."""
    c = i % 4000
    src, dst, sport = f"10.244.{c % 50}.{10 + c % 200}", f"10.245.{c % 40}.{20 + c % 40}", 30000 + c
    reply = i % 3 == 2
    flow = {
        "time": f"2024-05-01T10:{(i // 60_000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}000000Z",
        "verdict": "FORWARDED",
        "IP": {"source": dst if reply else src, "destination": src if reply else dst, "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 8080 if reply else sport, "destination_port": sport if reply else 8080,
                       "flags": {"ACK": True}}},
        "source": {"namespace": "shop", "pod_name": f"client-{c % 50}", "labels": [f"k8s:app=client{c % 50}"]},
        "destination": {"namespace": "shop", "pod_name": f"server-{c % 40}", "labels": [f"k8s:app=server{c % 40}"]},
        "Type": "L3_L4", "node_name": "node-1", "is_reply": reply, "traffic_direction": "EGRESS",
    }
    if reply:
        flow["source"], flow["destination"] = flow["destination"], flow["source"]
    return json.dumps({"flow": flow, "node_name": "node-1"}).encode() + b"\n"


def _write_hubble(path: Path, size: int) -> int:
    block = b"".join(_record(i) for i in range(12_000))  # every connection, both ways
    written = 0
    with open(path, "wb", buffering=1 << 20) as f:
        while written < size:
            f.write(block)
            written += len(block)
    return written


def _run(args: list[str]) -> tuple[int, float, float, str]:
    """(exit code, seconds, peak RSS MB of the process tree, last stderr line)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "netpolgen", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    if psutil is not None:
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [p, *p.children(recursive=True)]
                peak = max(peak, sum(q.memory_info().rss for q in tree if q.is_running()))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
            time.sleep(0.05)
    _, err = proc.communicate()
    secs = time.perf_counter() - t0
    if psutil is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return proc.returncode, secs, peak / 2**20, lines[-1] if lines else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-gb", default="0.25,1,4")
    ap.add_argument("--line-gb", default="0.25,1")
    ap.add_argument("--bomb-gb", type=float, default=2.0)
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="netpolgen-bench-hostile-", dir=args.tmp))
    try:
        print("1. Hubble flow log, 4,000 connections repeated: peak RSS against input size")
        print(f"   {'input GB':>9} {'records':>11} {'seconds':>8} {'MB/s':>6} {'peak RSS MB':>12}  exit")
        for gb in (float(x) for x in args.sizes_gb.split(",") if x):
            path = work / "flows.json"
            size = _write_hubble(path, int(gb * 2**30))
            records = size // (len(_record(0)) or 1)
            code, secs, rss, _ = _run(["generate", str(path), "--output", str(work / "out"), "-q"])
            print(f"   {size / 2**30:>9.2f} {records:>11,} {secs:>8.1f} {size / 2**20 / secs:>6.0f} {rss:>12.0f}  {code}",
                  flush=True)
            path.unlink()
            shutil.rmtree(work / "out", ignore_errors=True)

        print("2. One line without a newline before real records (skipped: oversized record);")
        print("   plain: read by the parsing pool in byte ranges; gzip: one stream read by one process")
        print(f"   {'line GB':>9} {'file':>6} {'seconds':>8} {'peak RSS MB':>12}  exit")
        for gb in (float(x) for x in args.line_gb.split(",") if x):
            path = work / "long.json"
            packed = work / "long.json.gz"
            comp = zlib.compressobj(1, zlib.DEFLATED, 31)
            with open(path, "wb") as f, open(packed, "wb") as g:
                chunk = b" " * (64 << 20)
                for _ in range(max(int(gb * 2**30) // len(chunk), 1)):
                    f.write(chunk)
                    g.write(comp.compress(chunk))
                tail = b"\n" + b"".join(_record(i) for i in range(1000))
                f.write(tail)
                g.write(comp.compress(tail) + comp.flush())
            for kind, file, extra in (("plain", path, []), ("gzip", packed, ["--max-expansion-ratio", "1e9"])):
                code, secs, rss, _ = _run(["generate", str(file), "--format", "hubble", "--output", "-", "-q", *extra])
                print(f"   {gb:>9.2f} {kind:>6} {secs:>8.1f} {rss:>12.0f}  {code}", flush=True)
            path.unlink()
            packed.unlink()

        print(f"3. gzip of {args.bomb_gb:g} GB of spaces (refused by the expansion guard)")
        path = work / "bomb.json.gz"
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        with open(path, "wb") as f:
            f.write(comp.compress(_record(0)))
            chunk = b" " * (16 << 20)
            for _ in range(int(args.bomb_gb * 2**30) // len(chunk)):
                f.write(comp.compress(chunk))
            f.write(comp.flush())
        code, secs, rss, last = _run(["generate", str(path), "--output", "-", "-q"])
        print(f"   {path.stat().st_size / 2**20:.1f} MB compressed: exit {code} after {secs:.1f} s, peak RSS {rss:.0f} MB")
        print(f"   {last}")
        path.unlink()

        print("4. billion-laughs YAML inventory (refused)")
        inv = work / "lol.yaml"
        doc = ["kind: Pod", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        doc += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
        inv.write_text("\n".join(doc) + "\n")
        flows = work / "one.json"
        flows.write_bytes(_record(0))
        code, secs, rss, last = _run(["generate", str(flows), "--inventory", str(inv), "--output", "-", "-q"])
        print(f"   exit {code} after {secs:.2f} s (process start included), peak RSS {rss:.0f} MB")
        print(f"   {last}")
        sys.path.insert(0, str(REPO))
        from netpolgen.errors import NetpolgenError
        from netpolgen.inventory import load_inventory

        t0 = time.perf_counter()
        try:
            load_inventory([str(inv)])
        except NetpolgenError:
            pass
        print(f"   in process, reading the inventory alone: refused after {time.perf_counter() - t0:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
