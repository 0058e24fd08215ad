"""Bad input never gets a traceback: one `Error: <file>: ...` line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import kube, shop

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netpolgen", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=120)


def _assert_one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0]


@pytest.fixture()
def inventory_file(tmp_path: Path) -> Path:
    p = tmp_path / "inv.json"
    p.write_text(json.dumps(kube.as_list(shop.objects())))
    return p


def test_missing_capture(tmp_path: Path, inventory_file: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("generate", str(tmp_path / "nope.pcap"), "--inventory", str(inventory_file), "--output", str(out))
    _assert_one_error_line(proc, "nope.pcap", "no such file")
    assert not out.exists()


def test_empty_capture(tmp_path: Path, inventory_file: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    proc = run_cli("generate", str(empty), "--inventory", str(inventory_file), "--output", str(tmp_path / "out"))
    _assert_one_error_line(proc, "empty.pcap", "empty file")


def test_file_that_is_no_capture_or_flow_log(tmp_path: Path, inventory_file: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    proc = run_cli("generate", str(junk), "--inventory", str(inventory_file), "--output", str(tmp_path / "out"))
    _assert_one_error_line(proc, "junk.bin", "not a recognised")
    assert not (tmp_path / "out").exists()


def test_inventory_that_is_not_kubernetes(tmp_path: Path) -> None:
    bad = tmp_path / "inv.yaml"
    bad.write_text("hello: world\n")
    src = tmp_path / "x.pcap"
    src.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x02\x00\x04\x00" + b"\x00" * 8 + b"\xff\xff\x00\x00\x01\x00\x00\x00")
    proc = run_cli("generate", str(src), "--inventory", str(bad), "--output", str(tmp_path / "out"))
    _assert_one_error_line(proc, "inv.yaml", "document 1", "not a Kubernetes object")
    assert not (tmp_path / "out").exists()


def test_bad_option_values(tmp_path: Path, inventory_file: Path) -> None:
    proc = run_cli("generate", str(inventory_file), "--since", "yesterday-ish")
    _assert_one_error_line(proc, "--since", "neither ISO 8601 nor unix seconds")
    proc = run_cli("generate", str(inventory_file), "--format", "wireshark")  # --format: what is printed
    _assert_one_error_line(proc, "--format", "is not one of text, json, markdown, junit")
    proc = run_cli("generate", str(inventory_file), "--input-format", "wireshark")
    _assert_one_error_line(proc, "--input-format", "unknown format")
    proc = run_cli("generate", str(inventory_file), "--source-format", "wireshark")  # the deprecated alias
    _assert_one_error_line(proc, "--input-format", "unknown format")


def test_a_capture_truncated_mid_record_keeps_what_was_read_and_says_so(tmp_path: Path) -> None:
    demo = REPO / "captures" / "demo.pcap"
    cut = tmp_path / "cut.pcap"
    data = demo.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])  # mid-record
    proc = run_cli("generate", str(cut), "--inventory", str(REPO / "captures" / "demo-inventory.json"),
                   "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "truncated: the file ends mid-record" in proc.stderr
    assert (tmp_path / "out" / "shop" / "default-deny.yaml").exists()
