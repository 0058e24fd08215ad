"""The flow-log record loop in blocks (netpolgen.sources.flowlog, lineblocks, parallel): a file read in many blocks, or
by a pool of worker processes that each read their own byte ranges, gives the same rows, the
same counts and the same line numbers for bad records as one block read here.

Blocks are made tiny (a few hundred bytes) so that small files cross many block boundaries,
and ``workers=2`` forces the pool whatever the file's size.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpolgen.errors import SourceError
from netpolgen.flows import concat_flows
from netpolgen.sources import flowlog, vpc
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.calico import CalicoSource
from netpolgen.sources.hubble import HubbleSource
from netpolgen.sources.lineblocks import RecordLines, line_count
from netpolgen.sources.parallel import read_range
from netpolgen.sources.vpc import VpcFlowLogSource
from tests.sources.test_calico import record
from tests.sources.test_hubble import flow, write_lines


def read(cls, path: Path, **options):
    src = cls(str(path), SourceOptions(**options))
    return src, concat_flows(src.chunks())


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of ~300 bytes read here, ~500-byte ranges in the pool, 400-byte VPC blocks."""
    monkeypatch.setattr(flowlog, "BLOCK_BYTES", 300)
    monkeypatch.setattr(flowlog, "POOL_BLOCK_BYTES", 500)
    monkeypatch.setattr(vpc, "_VPC_BLOCK", 400)


@pytest.mark.parametrize("seed, longest, steps", [
    *[(seed, 300, (1, 2, 7, 64, 301)) for seed in range(4)],
    (4, 200_000, (1000, 70_000, 300_001)),  # lines longer than a range and than the read-ahead
])
def test_ranges_hold_every_line_once(tmp_path, seed, longest, steps):
    """Whatever the range size, the ranges' lines put together are the file: a line belongs to
    the range it begins in, blank lines and an unterminated last line included."""
    rng = random.Random(seed)
    lines = ["x" * rng.choice([0, 0, 1, 5, 40, longest]) for _ in range(200)]
    data = ("\n".join(lines) + ("\n" if seed % 2 else "")).encode()
    path = tmp_path / "f.log"
    path.write_bytes(data)
    for step in (*steps, len(data)):
        parts = []
        for s in range(0, len(data), step):
            buf, begin, end, cut = read_range(str(path), s, min(s + step, len(data)), 1 << 20)
            assert cut == -1  # no line is near the record limit
            parts.append(bytes(buf[begin:end]))
            assert line_count(buf, begin, end) == line_count(parts[-1])
        assert b"".join(parts) == data
        assert sum(line_count(p) for p in parts) == line_count(data)


@given(st.lists(st.sampled_from(["", "  ", "{\"a\": 1}", "# note", "  {\"b\": 2}  ", "x y", "#", "{"]), max_size=30),
       st.booleans(), st.integers(0, 12))
def test_record_lines_yields_the_records_and_counts_every_line(lines, final_newline, skip):
    """The record loop's one pass gives what ``line_count`` counts in a second pass, and the
    lines it yields are the non-blank, non-comment ones with their 1-based numbers."""
    data = ("\n".join(lines) + ("\n" if final_newline and lines else "")).encode()
    begin = data.find(b"\n", 0, skip) + 1 if skip else 0  # ranges start at a line's beginning
    scan = RecordLines(data, begin, len(data), b"#")
    got = [(n, bytes(line)) for n, line in scan]
    assert scan.lines == line_count(data, begin, len(data))
    expected = [(i, text.strip().encode()) for i, text in enumerate(data[begin:].decode().split("\n"), 1)
                if text.strip() and not text.strip().startswith("#")]
    assert got == expected


def _hubble_with_bad_lines(samples: Path, tmp_path: Path) -> Path:
    lines = (samples / "hubble-flows" / "basic-sample-400-tcp-flows.json").read_text().splitlines()
    lines.insert(120, '{"flow": {"time": "x", truncated')
    lines.insert(250, "")
    lines.insert(251, "// a comment")
    bad_ip = json.loads(lines[300])
    bad_ip["flow"]["IP"]["source"] = "10.0.0.999"
    lines.insert(301, json.dumps(bad_ip))
    path = tmp_path / "hubble.json"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_hubble_in_blocks_and_in_a_pool_reads_like_one_block(samples, tmp_path, monkeypatch, workers):
    """400 real flows with a corrupt line (121), a blank and a comment line, an invalid address
    (302): same rows, records and skipped lines whether read whole, in tiny blocks or by two
    workers; --strict stops at line 121 in every mode."""
    path = _hubble_with_bad_lines(samples, tmp_path)
    whole_src, whole = read(HubbleSource, path, workers=0)
    assert whole_src.stats.skipped.counts == {"invalid JSON": 1, "invalid IP address": 1}
    assert [e.split(": ")[1] for e in whole_src.stats.skipped.examples] == ["line 121", "line 302"]
    monkeypatch.setattr(flowlog, "BLOCK_BYTES", 300)
    monkeypatch.setattr(flowlog, "POOL_BLOCK_BYTES", 500)
    src, df = read(HubbleSource, path, workers=workers)
    assert df.drop(columns="source").equals(whole.drop(columns="source"))
    assert src.stats.records == whole_src.stats.records == 402
    assert src.stats.skipped.examples == whole_src.stats.skipped.examples
    with pytest.raises(SourceError) as e:
        read(HubbleSource, path, workers=workers, strict=True)
    assert e.value.where == "line 121"


@pytest.mark.parametrize("workers", [0, 2])
def test_not_hubble_is_fatal_in_a_pool_too(tmp_path, tiny_blocks, workers):
    """A YAML file read as Hubble: 'not a Hubble flow log' at line 1, however it is read."""
    path = tmp_path / "pods.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\n" * 200)
    with pytest.raises(SourceError) as e:
        read(HubbleSource, path, workers=workers)
    assert e.value.where == "line 1" and "not a Hubble flow log" in e.value.what


@pytest.mark.parametrize("workers", [0, 2])
def test_calico_in_blocks_and_in_a_pool_merges_like_one_block(tmp_path, monkeypatch, workers):
    """60 records of 13 flows, both reporters, spread over many blocks, with a bad action on
    line 31: the same 13 rows (reporters merged across blocks) and the same skipped line."""
    recs = [record(dest_port=7000 + i % 13, reporter="src" if i % 2 else "dst", packets_in=i) for i in range(60)]
    recs[30]["action"] = "maybe"
    path = tmp_path / "flows.log"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    whole_src, whole = read(CalicoSource, path, workers=0)
    assert len(whole) == 13
    monkeypatch.setattr(flowlog, "BLOCK_BYTES", 300)
    monkeypatch.setattr(flowlog, "POOL_BLOCK_BYTES", 500)
    src, df = read(CalicoSource, path, workers=workers)
    assert df.drop(columns="source").equals(whole.drop(columns="source"))
    assert src.stats.skipped.examples == whole_src.stats.skipped.examples == [f"{path}: line 31: action is neither allow nor deny"]
    assert src.stats.records == 60


def test_vpc_in_blocks_reads_like_one_block(samples, tmp_path, monkeypatch):
    """The v2 sample repeated with a record with too many fields and one with a bad port:
    blocks Arrow reads and blocks pandas reads (the bad ones) give the same rows and lines."""
    lines = (samples / "aws-vpc-flow-logs" / "default-format-v2.log").read_text().splitlines()
    body = [line for line in lines[1:] if line.strip()] * 6
    body.insert(20, body[0] + " extra")
    body.insert(30, body[0].replace(" 22 ", " 99999 "))
    path = tmp_path / "vpc.log"
    path.write_text("\n".join([lines[0], *body]) + "\n")
    whole_src, whole = read(VpcFlowLogSource, path)
    monkeypatch.setattr(vpc, "_VPC_BLOCK", 400)
    src, df = read(VpcFlowLogSource, path)
    assert src.stats.records == whole_src.stats.records == len(body)
    assert src.stats.skipped.counts == whole_src.stats.skipped.counts
    assert [e for e in src.stats.skipped.examples if "NODATA" not in e and "SKIPDATA" not in e] == [
        f"{path}: line 22: too many fields", f"{path}: line 32: invalid port"]
    key = ["src_ip", "dst_ip", "src_port", "dst_port", "proto", "verdict"]
    merged = lambda d: d.groupby(key)[["packets", "bytes", "connections"]].sum()  # noqa: E731
    assert merged(df).equals(merged(whole))


def test_dns_names_learnt_by_workers_reach_the_rows(tmp_path, tiny_blocks):
    """DNS answers and the connections to the answered addresses, spread over many blocks and
    read by two workers: every row to a named address carries its name, as when read whole."""
    objs = []
    for i in range(1, 30):
        objs.append(flow("10.0.0.9", 53, "10.0.1.5", 41000 + i, proto="UDP", is_reply=True, Type="L7",
                         l7={"type": "RESPONSE", "dns": {"query": f"api{i}.example.com.", "ips": [f"203.0.113.{i}"]}}))
        objs.append(flow("10.0.1.5", 42000 + i, f"203.0.113.{i}", 443, l4extra={"flags": {"SYN": True}}))
    path = write_lines(tmp_path / "dns.json", objs)
    _, whole = read(HubbleSource, path, workers=0)
    _, pooled = read(HubbleSource, path, workers=2)
    names = dict(zip(pooled["dst_ip"], pooled["dst_names"], strict=True))
    assert all(names[f"203.0.113.{i}"] == f"api{i}.example.com" for i in range(1, 30))
    assert pooled.drop(columns="source").equals(whole.drop(columns="source"))


def test_a_dead_worker_is_a_source_error(samples, tmp_path, tiny_blocks, monkeypatch):
    """A worker killed mid-file (out of memory, a signal): one SourceError naming the file."""
    monkeypatch.setattr(flowlog, "parse_range", _die)
    with pytest.raises(SourceError) as e:
        read(HubbleSource, samples / "hubble-flows" / "basic-sample-400-tcp-flows.json", workers=2)
    assert "worker process" in e.value.what


def _die(*args):
    import os
    os._exit(1)
