"""The long fuzz run without atheris (where it does not install): hypothesis, many examples per
parser, the same mutations and invariant as tests/test_fuzz_parsers.py (fuzz/harness.py).

    python fuzz/run_hypothesis.py --examples 5000              # every parser
    python fuzz/run_hypothesis.py --parser vpc --examples 20000

Prints, per parser, the inputs tried and the first failure hypothesis found and shrank (its
input is saved under --workdir as ``<parser>-failure.bin``; replay it with
``python fuzz/run_atheris.py --replay FILE --parser P``, which needs no atheris for replays).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fuzz.harness import PARSERS, SEEDS, mutate, run_one  # noqa: E402

OPS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=16)


def fuzz_parser(parser: str, examples: int, workdir: Path) -> tuple[int, str | None]:
    """(inputs tried, the failure's traceback or None)."""
    seed = SEEDS[parser]()
    tried = 0
    last: list[bytes] = [b""]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(ops=OPS, raw=st.one_of(st.none(), st.binary(max_size=4096)))
    def one(ops: list, raw: bytes | None) -> None:
        nonlocal tried
        tried += 1
        data = raw if raw is not None else mutate(seed, ops)
        last[0] = data
        with tempfile.TemporaryDirectory() as d:
            assert run_one(parser, data, d) in ("ok", "error")

    try:
        one()
    except Exception:  # the shrunk failing example was the last one run
        (workdir / f"{parser}-failure.bin").write_bytes(last[0])
        return tried, traceback.format_exc(limit=-6)
    return tried, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parser", choices=PARSERS)
    ap.add_argument("--examples", type=int, default=2000, help="per parser")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "netpolgen-fuzz-hypothesis"))
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    total = failures = 0
    for parser in [args.parser] if args.parser else PARSERS:
        tried, failure = fuzz_parser(parser, args.examples, workdir)
        total += tried
        failures += failure is not None
        print(f"{parser:16} {tried:>8} inputs  {'FAILED' if failure else 'ok'}", flush=True)
        if failure:
            print(failure)
    print(f"total: {total} inputs, {failures} parsers with a failure (inputs under {workdir})")


if __name__ == "__main__":
    main()
