"""Benchmark: diff two policy sets (`netpolgen diff --existing A --proposed B`'s core) at scale.

The cluster and the 1,000 policies are bench_engine.py's (50 namespaces x 10 workloads, pods per
workload as given); the proposed set drops the last tenth of the policies. Prints the time to
compute both connectivities and their pairwise difference, and how many pairs differ.

    .venv/bin/python benchmarks/bench_diff.py [--pods-per-workload 1,10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import SEED, build_cluster, build_policies  # noqa: E402

from netpolgen.diff import diff_policy_sets  # noqa: E402
from netpolgen.policy import parse_policies  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods-per-workload", default="1,10")
    args = ap.parse_args(argv)
    for per in (int(x) for x in args.pods_per_workload.split(",")):
        rng = np.random.default_rng(SEED)
        inv, workloads = build_cluster(rng, per)
        callees = {w: [workloads[int(i)] for i in rng.choice(len(workloads), 3, replace=False)] for w in workloads}
        docs = build_policies(rng, callees)
        old, new = parse_policies(docs), parse_policies(docs[: len(docs) * 9 // 10])
        t = time.perf_counter()
        d = diff_policy_sets(inv, old, new)
        secs = time.perf_counter() - t
        print(f"pods {len(inv.pods):>6,}  workloads {len(workloads)}  policies {len(old):,} vs {len(new):,}: "
              f"{secs:6.2f} s, {len(d.entries):,} pairs differ")


if __name__ == "__main__":
    main()
