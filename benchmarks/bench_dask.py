"""Scale-out: `netpolgen generate` over many flow-log files, in process and on Dask.

    .venv/bin/python benchmarks/bench_dask.py                     # 200,000 Hubble records in 10 / 1,000 / 10,000 files
    .venv/bin/python benchmarks/bench_dask.py --records 50000 --files 10,100

The same records (gen_flowlogs.py's Hubble generator: one cluster, traffic from a per-file seed)
are split into N files; each run is a fresh `python -m netpolgen generate DIR -q` process, timed
from outside, with `--engine pandas` and with `--engine dask` (a LocalCluster of 2 worker
processes started by the run, its start-up included). Peak RSS is the largest of the process
and its workers. Both engines must write the same policies; the script checks it.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DATA = HERE / "data"

import gen_flowlogs  # noqa: E402  (benchmarks/ is not a package)


def ensure_files(records: int, files: int) -> Path:
    d = DATA / f"hubble-{records}-x{files}"
    if d.is_dir() and len(list(d.iterdir())) == files:
        return d
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    per = -(-records // files)
    left = records
    for i in range(files):
        n = min(per, left)
        gen_flowlogs.write_hubble(d / f"flows-{i:05d}.json", n, seed=1000 + i)
        left -= n
    return d


def run(inputs: Path, engine: str) -> tuple[float, float, Path]:
    out = Path(tempfile.mkdtemp(prefix=f"npg-{engine}-"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "netpolgen", "generate", str(inputs), "--engine", engine,
                           "--output", str(out), "-q"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{engine}: generate failed: {proc.stderr.strip()[-2000:]}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, out


def same_tree(a: Path, b: Path) -> bool:
    fa = sorted(str(p.relative_to(a)) for p in a.rglob("*.yaml"))
    fb = sorted(str(p.relative_to(b)) for p in b.rglob("*.yaml"))
    if fa != fb:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, fa, shallow=False)
    return not mismatch and not errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--files", default="10,1000,10000")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'files':>7} {'records':>9} {'MB':>6} {'pandas s':>9} {'dask s':>8} {'dask/pandas':>12} {'peak RSS MB':>12} {'same policies':>14}")
    for n in [int(x) for x in args.files.split(",")]:
        d = ensure_files(args.records, n)
        mb = sum(p.stat().st_size for p in d.iterdir()) / 1e6
        t_pd, _, out_pd = run(d, "pandas")
        t_dk, rss, out_dk = run(d, "dask")
        same = same_tree(out_pd, out_dk)
        print(f"{n:>7,} {args.records:>9,} {mb:>6.0f} {t_pd:>9.2f} {t_dk:>8.2f} {t_dk / t_pd:>12.2f} {rss:>12.0f} {str(same):>14}",
              flush=True)
        shutil.rmtree(out_pd)
        shutil.rmtree(out_dk)


if __name__ == "__main__":
    main()
