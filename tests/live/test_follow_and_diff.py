"""``generate --follow FILE`` reads appends, rotation and truncation as ``tail -F`` does; ``diff -``
reports would-be-denied connections as they appear, once each, and exits 1 (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.conftest import REPO
from tests.live.helpers import run_cli, start_cli, wait_for
from tests.live.test_live_cli import HUBBLE, _policies, _Stderr


def test_follow_reads_appends_rotation_and_truncation(tmp_path, samples):
    lines = (samples / HUBBLE).read_bytes().splitlines(keepends=True)
    log = tmp_path / "hubble.log"
    log.write_bytes(b"".join(lines[:20]))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "netpolgen", "generate", "--follow", str(log), "-o", str(out),
                             "--every", "200ms"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    err = _Stderr(proc)
    try:
        assert wait_for(lambda: out.is_dir() and _policies(out) == 4), "".join(err.lines)
        with open(log, "ab") as f:  # appended
            f.write(b"".join(lines[20:50]))
        assert wait_for(lambda: _policies(out) == 5), "".join(err.lines)
        os.rename(log, tmp_path / "hubble.log.1")  # rotated: a new file at the path
        log.write_bytes(b"".join(lines[50:100]))
        assert wait_for(lambda: _policies(out) == 6), "".join(err.lines)
        log.write_bytes(b"".join(lines[100:101]))  # truncated (shorter than what was read), rewritten
        assert wait_for(lambda: any(" write " in ln and ": 101 records" in ln for ln in err.lines)), "".join(err.lines)
        with open(log, "ab") as f:
            f.write(b"".join(lines[101:]))
        assert wait_for(lambda: _policies(out) == 9), "".join(err.lines)
        assert proc.poll() is None  # following: only a signal ends it
    finally:
        proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 0, "".join(err.lines)
    assert any(ln.startswith(f"read {log} (hubble): {len(lines)} records") for ln in err.lines), "".join(err.lines)


def test_follow_of_a_missing_file_is_an_error(tmp_path):
    proc = run_cli("generate", "--follow", str(tmp_path / "nope.json"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.decode() == f"Error: {tmp_path / 'nope.json'}: no such file\n"


def _existing_without_two_allows(tmp_path, samples):
    """The policies generated from the sample, with two of bookinfo's allow policies removed."""
    gen = run_cli("generate", str(samples / HUBBLE), "-o", str(tmp_path / "existing"), "-q")
    assert gen.returncode == 0
    existing = tmp_path / "existing"
    for name in ("allow-details-v1.yaml", "allow-reviews-v1.yaml"):
        os.unlink(existing / "bookinfo" / name)
    return existing


def test_diff_from_stdin_reports_denied_connections_once_each_and_exits_1(tmp_path, samples):
    existing = _existing_without_two_allows(tmp_path, samples)
    data = (samples / HUBBLE).read_bytes()
    from_file = run_cli("diff", str(samples / HUBBLE), "--existing", str(existing))
    from_pipe = run_cli("diff", "-", "--existing", str(existing), stdin=data + data)  # everything twice
    assert from_file.returncode == from_pipe.returncode == 1
    live = [ln for ln in from_pipe.stdout.decode().splitlines() if ln.startswith("DENIED ")]
    assert len(live) == len(set(live)) > 0
    assert "DENIED bookinfo/productpage-v1[Deployment] -> bookinfo/details-v1[Deployment] TCP/9080: " \
           "denied at ingress by bookinfo/default-deny" in "\n".join(live)
    report = from_pipe.stdout.decode().split("\n", len(live))[-1]
    def denied(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if " -> " in ln and ln.startswith("  ") and "(" in ln]
    assert [ln.split("  (")[0] for ln in denied(report)] == [ln.split("  (")[0] for ln in denied(from_file.stdout.decode())]


def test_diff_reports_a_denied_connection_while_the_stream_is_still_open(tmp_path, samples):
    existing = _existing_without_two_allows(tmp_path, samples)
    proc = start_cli("diff", "-", "--existing", str(existing))
    out: list[str] = []
    import threading

    t = threading.Thread(target=lambda: out.extend(ln.decode() for ln in proc.stdout), daemon=True)
    t.start()
    try:
        proc.stdin.write((samples / HUBBLE).read_bytes())
        proc.stdin.flush()
        assert wait_for(lambda: any(ln.startswith("DENIED ") for ln in out))
        assert proc.poll() is None
    finally:
        proc.stdin.close()
    assert proc.wait(timeout=300) == 1


def test_diff_from_an_allowing_stream_exits_0(tmp_path, samples):
    gen = run_cli("generate", str(samples / HUBBLE), "-o", str(tmp_path / "existing"), "-q")
    assert gen.returncode == 0
    proc = run_cli("diff", "-", "--existing", str(tmp_path / "existing"), stdin=(samples / HUBBLE).read_bytes())
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert "DENIED: none" in proc.stdout.decode()
    assert not [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("DENIED ")]
