"""The long fuzz run: coverage-guided (atheris, libFuzzer) over every parser, seeded from
``harness.SEEDS``. Checks the same invariant as tests/test_fuzz_parsers.py: any bytes give a clean
result or a NetpolgenError; anything else is a crash, saved under the work directory.

    pip install -e '.[fuzz]'
    python fuzz/run_atheris.py --seconds 30            # every parser, 30 s each
    python fuzz/run_atheris.py --parser hubble --seconds 300

Prints, per parser, the inputs tried, the coverage reached and the crashes found (each crash
input is kept as ``<workdir>/<parser>/crash-*``; replay it with ``--replay FILE --parser P``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _worker(parser: str, scratch: str, argv: list[str]) -> None:
    """In the child: fuzz one parser with libFuzzer (never returns)."""
    import atheris

    # Libraries are imported uninstrumented (their coverage would drown netpolgen's, and slow
    # every input); netpolgen is instrumented, which is what guides the search.
    import msgspec  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import yaml  # noqa: F401

    with atheris.instrument_imports(include=["netpolgen", "fuzz"]):
        import netpolgen.inventory  # noqa: F401
        import netpolgen.policy  # noqa: F401
        import netpolgen.sources.calico  # noqa: F401
        import netpolgen.sources.hubble  # noqa: F401
        import netpolgen.sources.pcap  # noqa: F401
        import netpolgen.sources.table  # noqa: F401
        import netpolgen.sources.vpc  # noqa: F401
        from fuzz.harness import run_one

    os.makedirs(scratch, exist_ok=True)  # one input file, rewritten for every input

    def one_input(data: bytes) -> None:
        run_one(parser, data, scratch)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def _run_parser(parser: str, seconds: int, workdir: Path) -> dict:
    from fuzz.harness import SEEDS

    pdir = workdir / parser
    corpus = pdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    seed = corpus / "seed"
    if not seed.exists():
        seed.write_bytes(SEEDS[parser]())
    args = [sys.executable, __file__, "--worker", "--parser", parser, "--scratch", str(pdir / "scratch"), "--",
            str(corpus), f"-max_total_time={seconds}", "-rss_limit_mb=3072", "-timeout=60",
            f"-artifact_prefix={pdir}/", "-print_final_stats=1", "-max_len=65536"]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    log = proc.stderr
    (pdir / "log.txt").write_text(log)
    runs = re.findall(r"stat::number_of_executed_units:\s+(\d+)", log)
    cov = re.findall(r"cov: (\d+)", log)
    crashes = sorted(p.name for p in pdir.glob("crash-*")) + sorted(p.name for p in pdir.glob("timeout-*"))
    return {"parser": parser, "inputs": int(runs[-1]) if runs else 0, "coverage": int(cov[-1]) if cov else 0,
            "corpus": len(list(corpus.iterdir())), "crashes": crashes, "exit": proc.returncode}


def main() -> None:
    from fuzz.harness import PARSERS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parser", choices=PARSERS, help="one parser (default: each in turn)")
    ap.add_argument("--seconds", type=int, default=30, help="per parser")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "netpolgen-fuzz"))
    ap.add_argument("--replay", help="run one saved input and show what it raises")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.parser, args.scratch, [sys.argv[0], *args.rest])
        return
    if args.replay:
        from fuzz.harness import run_one

        with tempfile.TemporaryDirectory() as d:
            print(run_one(args.parser, Path(args.replay).read_bytes(), d))
        return
    workdir = Path(args.workdir)
    total_inputs = 0
    all_crashes = 0
    print(f"{'parser':16} {'inputs':>10} {'coverage':>9} {'corpus':>7}  crashes")
    for parser in [args.parser] if args.parser else PARSERS:
        r = _run_parser(parser, args.seconds, workdir)
        total_inputs += r["inputs"]
        all_crashes += len(r["crashes"])
        print(f"{parser:16} {r['inputs']:>10} {r['coverage']:>9} {r['corpus']:>7}  {', '.join(r['crashes']) or '-'}",
              flush=True)
    print(f"total: {total_inputs} inputs, {all_crashes} crashes (logs and crash inputs under {workdir})")


if __name__ == "__main__":
    main()
