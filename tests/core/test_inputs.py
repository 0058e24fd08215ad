"""Input expansion: files, directories (recursive), globs; a pattern that matches nothing is an
error, because reading less traffic than meant would write policies that break production."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from netpolgen.errors import SourceError
from netpolgen.pipeline import read_flows
from netpolgen.sources import expand_inputs

REPO = Path(__file__).resolve().parents[2]


def test_directories_globs_and_files_expand_sorted_without_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deep").mkdir()
    for p in ("a/x.pcap", "a/deep/y.pcap", "z.log", "a/.hidden"):
        (tmp_path / p).write_bytes(b"x")
    got = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.log"), str(tmp_path / "z.log")])
    assert got == [str(tmp_path / "a" / "deep" / "y.pcap"), str(tmp_path / "a" / "x.pcap"), str(tmp_path / "z.log")]


@pytest.mark.parametrize("pattern,message", [("nothing-*.pcap", "no files match"), ("missing.pcap", "no such file")])
def test_patterns_that_match_nothing_are_errors(tmp_path: Path, pattern: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        expand_inputs([str(tmp_path / pattern)])


def test_a_gzipped_capture_reads_like_the_plain_one(tmp_path: Path) -> None:
    demo = REPO / "captures" / "demo.pcap"
    packed = tmp_path / "demo.pcap.gz"
    packed.write_bytes(gzip.compress(demo.read_bytes()))
    plain, gz = read_flows([str(demo)]), read_flows([str(packed)])
    cols = ["src_ip", "src_port", "dst_ip", "dst_port", "proto", "packets", "bytes", "direction_known"]
    assert plain.flows[cols].equals(gz.flows[cols])
    assert gz.sources[0].stats.records == plain.sources[0].stats.records == 4986
