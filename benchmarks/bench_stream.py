"""Live streams: memory over a long Hubble stream through a pipe, and throughput against a file.

1. Rate: the same generated Hubble file read as a file (the default reader, which parses a
   large file with one worker process per CPU, and the single-process reader) and piped into
   ``netpolgen generate -``; records/s of each and their ratio, in the same run.
2. Memory: ``--records`` Hubble records (default 10M) written into ``netpolgen generate -
   --every 30s`` through a pipe, the resident set size (VmRSS) of the netpolgen process printed
   every million records, and its peak (VmHWM) at the end. The stream is the generated file
   passed over again and again; from the second pass on the clients' ephemeral ports are
   shifted, so each pass brings connections the reader has not seen (its per-connection ledger
   grows as it would on a live cluster) on the same workloads (the same distinct edges).

Usage: ``python benchmarks/bench_stream.py [--records 10000000] [--file-records 1000000]``.
The file is generated once into benchmarks/data/ (git-ignored) by gen_flowlogs.write_hubble.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from gen_flowlogs import DATA, SERVER_PORTS, write_hubble  # noqa: E402

PIECE = 1 << 20
_EPHEMERAL = re.compile(rb'(_port":)(3[2-9]\d{3}|[4-5]\d{4}|60\d{3})')


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def netpolgen(*args: str) -> list[str]:
    return [sys.executable, "-m", "netpolgen", *args]


def timed_file_run(path: Path, out: str, single_process: bool) -> float:
    if single_process:
        code = ("import sys; from netpolgen.pipeline import generate; from netpolgen.sources.base import SourceOptions;"
                f"r = generate([{str(path)!r}], [], source_options=SourceOptions(workers=0));"
                "from netpolgen.render import write_policy_files; write_policy_files(r.policies, sys.argv[1])")
        cmd = [sys.executable, "-c", code, out]
    else:
        cmd = netpolgen("generate", str(path), "-o", out, "-q")
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - t


def shifted(data: bytes, shift: int) -> bytes:
    """``data`` with every ephemeral port (32768..60999) moved by ``shift`` inside that range."""
    if not shift:
        return data

    def move(m: re.Match) -> bytes:
        port = int(m.group(2))
        if port in SERVER_PORTS:  # a server port inside the range (50051) stays: same edges
            return m.group(0)
        moved = (port - 32768 + shift) % 28232 + 32768
        while moved in SERVER_PORTS:
            moved += 1
        return m.group(1) + str(moved).encode()

    return _EPHEMERAL.sub(move, data)


def pipe_run(path: Path, out: str, total: int, report_every: int | None) -> tuple[float, list[tuple[int, float]], float, str]:
    """Write ``total`` records (``path`` over and over) into ``generate -``; (seconds, [(records,
    RSS MB)], peak MB, stderr)."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(netpolgen("generate", "-", "-o", out, "--every", "30s"), stdin=subprocess.PIPE,
                            stderr=err, cwd=REPO)
    samples: list[tuple[int, float]] = []
    written, next_report, passes = 0, report_every or 0, 0
    t = time.perf_counter()
    try:
        while written < total:
            with path.open("rb") as f:
                while written < total:
                    piece = f.read(PIECE)
                    if not piece:
                        break
                    piece += f.readline()  # whole lines: the shift must not cut a port in two
                    n = piece.count(b"\n")
                    if written + n > total:
                        keep = total - written
                        piece = b"".join(piece.splitlines(keepends=True)[:keep])
                        n = keep
                    proc.stdin.write(shifted(piece, passes * 7919))
                    written += n
                    if report_every and written >= next_report:
                        samples.append((written, rss_mb(proc.pid)))
                        peak = rss_mb(proc.pid, "VmHWM")
                        print(f"  {written:>11,} records written: RSS {samples[-1][1]:6.0f} MB (peak so far {peak:.0f} MB)",
                              flush=True)
                        next_report += report_every
            passes += 1
        peak_status = float("nan")
        proc.stdin.close()
        # VmHWM is gone once the process exits: read it while it makes its final write
        while proc.poll() is None:
            try:
                got = rss_mb(proc.pid, "VmHWM")
            except OSError:
                break
            if got == got:  # not NaN (a zombie has no memory lines)
                peak_status = got
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.wait()
    elapsed = time.perf_counter() - t
    err.seek(0)
    return elapsed, samples, peak_status, err.read().decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000, help="records streamed for the memory run")
    ap.add_argument("--file-records", type=int, default=1_000_000, help="records of the generated file")
    ap.add_argument("--report-every", type=int, default=1_000_000)
    ap.add_argument("--skip-rate", action="store_true", help="only the memory run")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"hubble-stream-{args.file_records}.json"
    if not path.exists():
        t = time.perf_counter()
        write_hubble(path, args.file_records)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    n = args.file_records
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_rate:
            print(f"rate: {n:,} Hubble records ({path.stat().st_size / 1e6:.0f} MB)")
            pooled = timed_file_run(path, f"{tmp}/file", single_process=False)
            single = timed_file_run(path, f"{tmp}/single", single_process=True)
            piped, _, peak, _ = pipe_run(path, f"{tmp}/pipe", n, None)
            print(f"  file, default reader (worker processes): {n / pooled:>9,.0f} records/s ({pooled:.1f} s)")
            print(f"  file, one process:                       {n / single:>9,.0f} records/s ({single:.1f} s)")
            print(f"  pipe (generate -):                       {n / piped:>9,.0f} records/s ({piped:.1f} s), peak RSS {peak:.0f} MB")
            print(f"  pipe / file (default): {pooled / piped:.2f}   pipe / file (one process): {single / piped:.2f}")
            same = subprocess.run(["diff", "-r", f"{tmp}/file", f"{tmp}/pipe"], capture_output=True).returncode == 0
            print(f"  output from the pipe identical to the file's: {same}")
        print(f"memory: {args.records:,} records through a pipe")
        elapsed, samples, peak, err = pipe_run(path, f"{tmp}/long", args.records, args.report_every)
        rss = [m for _, m in samples]
        print(f"  {args.records / elapsed:,.0f} records/s ({elapsed:.0f} s); RSS min {min(rss):.0f} MB, "
              f"max {max(rss):.0f} MB, peak (VmHWM) {peak:.0f} MB")
        if args.records < 10_000_000 and len(rss) >= 4:
            # growth from the first half's median to the second half's, per million, carried on
            half = len(rss) // 2
            first, second = sorted(rss[:half])[half // 2], sorted(rss[half:])[(len(rss) - half) // 2]
            per_million = (second - first) / max(half, 1)
            print(f"  projection to 10M records: {second + per_million * (10_000_000 - args.records) / args.report_every:.0f} MB "
                  f"(median of the second half plus the growth between the halves' medians, per million)")
        last = [ln for ln in err.splitlines() if " write " in ln][-1:]
        print("  last write: " + (last[0] if last else "(none)"))


if __name__ == "__main__":
    main()
