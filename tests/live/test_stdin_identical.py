"""Standard input gives the same output as the file it came from, byte for byte (issue 18):
a capture (the demo, with its inventory), real Hubble flows, and Calico records."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from tests.live.helpers import run_cli, tree
from tests.sources.test_calico import record


def _same_from_file_and_pipe(tmp_path, path, *args: str) -> dict[str, bytes]:
    from_file = run_cli("generate", str(path), "-o", str(tmp_path / "file"), *args)
    assert from_file.returncode == 0, from_file.stderr.decode()
    from_pipe = run_cli("generate", "-", "-o", str(tmp_path / "pipe"), *args, stdin=path.read_bytes())
    assert from_pipe.returncode == 0, from_pipe.stderr.decode()
    files = tree(tmp_path / "file")
    assert files, "the file gave no output to compare with"
    assert tree(tmp_path / "pipe") == files
    assert "read <stdin>" in from_pipe.stderr.decode()
    return files


def test_demo_capture_from_stdin_is_byte_identical(tmp_path):
    files = _same_from_file_and_pipe(tmp_path, REPO / "captures" / "demo.pcap",
                                     "-i", str(REPO / "captures" / "demo-inventory.json"))
    assert any(name.endswith("default-deny.yaml") for name in files)


def test_hubble_flows_from_stdin_are_byte_identical(tmp_path, samples):
    files = _same_from_file_and_pipe(tmp_path, samples / "hubble-flows" / "basic-sample-400-tcp-flows.json")
    assert "bookinfo/allow-productpage-v1.yaml" in files


def test_calico_records_from_stdin_are_byte_identical(tmp_path):
    recs = [
        record(),
        record(reporter="dst"),
        record(source_ip="10.48.3.30", source_name="checkout-5d9f8-xyz12", source_name_aggr="checkout-5d9f8-*",
               source_labels={"labels": ["app=checkout", "pod-template-hash=5d9f8"]}),
        record(dest_ip="10.48.4.40", dest_name="redis-0", dest_name_aggr="redis-*", dest_port=6379,
               dest_labels={"labels": ["app=redis"]}, dest_service_name="redis", dest_service_port="6379"),
    ]
    path = tmp_path / "calico.log"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    files = _same_from_file_and_pipe(tmp_path, path)
    assert "shop/allow-cartservice.yaml" in files


def test_errors_name_stdin_and_the_line(tmp_path):
    """A stream nothing recognises, and a bad record, are errors naming <stdin> and the line."""
    proc = run_cli("generate", "-", "-o", str(tmp_path / "o"), stdin=b"hello\nworld\n")
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("Error: <stdin>: not a recognised capture or flow log")
    good = json.dumps(record())
    proc = run_cli("generate", "-", "-o", str(tmp_path / "o"), "--strict", "--input-format", "calico",
                   stdin=f"{good}\n{good}\n{{not json\n".encode())
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("Error: <stdin>: line 3: "), proc.stderr.decode()


def test_an_empty_stream_is_an_error():
    proc = run_cli("generate", "-", "-o", "/nonexistent/never-written", stdin=b"")
    assert proc.returncode == 2
    assert proc.stderr.decode() == "Error: <stdin>: empty stream\n"


@pytest.mark.parametrize("every", ["0", "soon", "-3s"])
def test_a_bad_every_is_a_usage_error(every):
    proc = run_cli("generate", "-", "--every", every, stdin=b"")
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("Error: --every: ")


def test_an_endless_line_on_stdin_is_dropped_as_it_arrives(tmp_path, samples):
    """A line longer than --max-record-size is not held while it grows: skipped and counted
    with its line number in the stream (or fatal with --strict)."""
    lines = (samples / "hubble-flows" / "basic-sample-400-tcp-flows.json").read_bytes().splitlines(keepends=True)
    data = b"".join(lines[:5]) + b'{"flow":"' + b"x" * 3_000_000 + b'"}\n' + b"".join(lines[5:])
    proc = run_cli("generate", "-", "-o", str(tmp_path / "o"), "--max-record-size", "100000", stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "<stdin>: line 6: oversized record" in proc.stderr.decode()
    assert "read <stdin> (hubble): 401 records" in proc.stderr.decode()
    strict = run_cli("generate", "-", "-o", str(tmp_path / "o2"), "--max-record-size", "100000", "--strict", stdin=data)
    assert strict.returncode == 2
    assert strict.stderr.decode() == "Error: <stdin>: line 6: record longer than 100000 bytes (--max-record-size)\n"
