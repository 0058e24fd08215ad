"""Inputs the fuzzers found that crashed a parser, kept as regression tests (tests/fuzz_finds/):
each now gives its documented outcome."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from fuzz.harness import run_one

FINDS = Path(__file__).resolve().parent / "fuzz_finds"

# file -> (parser, outcome): "ok" when the input is usable after the fix, "error" when the
# documented error is the right answer
EXPECTED = {
    # a DNS answer whose record dnspython reads as GenericRdata (not class IN): no .address
    "pcap-dns-answer-generic-rdata.pcap": ("pcap", "ok"),
    "pcapng-dns-answer-generic-rdata.pcapng": ("pcapng", "ok"),
    # a header naming a column twice (pandas raised ValueError)
    "csv-header-repeats-a-column.csv": ("csv", "error"),
    # a Parquet text column holding bytes that are not UTF-8 (UnicodeDecodeError from pandas)
    "parquet-text-column-not-utf8.parquet": ("parquet", "error"),
    # a Service port item without "port" (KeyError in the inventory loader)
    "inventory-service-port-without-port.json": ("inventory-json", "error"),
    # a VPC record whose byte count does not fit 64 bits (OverflowError in pyarrow.from_pandas)
    "vpc-count-beyond-64-bits.log": ("vpc", "ok"),
    # a VPC time beyond 2**53 (Arrow's safe int64 -> float64 cast raised ArrowInvalid)
    "vpc-time-beyond-2-53.log": ("vpc", "ok"),
    # a gzip stream cut after its magic, forced to a text format (EOFError from the header read)
    "vpc-gzip-magic-only.log": ("vpc", "error"),
    "csv-gzip-magic-only.csv": ("csv", "error"),
}


def test_every_find_is_listed() -> None:
    assert sorted(p.name for p in FINDS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_fuzz_find_gives_its_documented_outcome(name: str) -> None:
    parser, outcome = EXPECTED[name]
    with tempfile.TemporaryDirectory() as d:
        assert run_one(parser, (FINDS / name).read_bytes(), d) == outcome
