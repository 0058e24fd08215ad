"""A running ``generate -`` keeps its output current while records arrive slowly, and a kill
mid-stream leaves the last complete output, with no staging directory (issue 18)."""

from __future__ import annotations

import signal
import threading
import time

import yaml

from tests.live.helpers import catches, leftovers, start_cli, tree, wait_for

HUBBLE = "hubble-flows/basic-sample-400-tcp-flows.json"


def _lines(samples) -> list[bytes]:
    return (samples / HUBBLE).read_bytes().splitlines(keepends=True)


def _policies(out) -> int:
    return sum(1 for name in tree(out) if name.endswith(".yaml"))


def _all_parse(out) -> bool:
    """Every file of the output is a whole NetworkPolicy document."""
    docs = [yaml.safe_load(body) for body in tree(out).values()]
    return bool(docs) and all(d and d.get("kind") == "NetworkPolicy" for d in docs)


class _Stderr:
    """Collects the child's stderr lines on a thread (so the pipe never fills)."""

    def __init__(self, proc) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc) -> None:
        for line in proc.stderr:
            self.lines.append(line.decode())

    def writes(self) -> list[str]:
        return [ln for ln in self.lines if " write " in ln]


def test_the_output_appears_and_grows_before_the_writer_finishes(tmp_path, samples):
    out = tmp_path / "out"
    lines = _lines(samples)
    proc = start_cli("generate", "-", "-o", str(out), "--every", "200ms")
    err = _Stderr(proc)
    try:
        proc.stdin.write(b"".join(lines[:20]))
        proc.stdin.flush()
        # the writer has not finished: stdin is still open and most records are still to come
        assert wait_for(lambda: out.is_dir() and _policies(out) > 0), "".join(err.lines)
        early = _policies(out)
        assert _all_parse(out)
        for i in range(20, len(lines), 20):  # the rest, slowly: a pause between batches
            proc.stdin.write(b"".join(lines[i:i + 20]))
            proc.stdin.flush()
            time.sleep(0.2)
        assert wait_for(lambda: _policies(out) > early), "".join(err.lines)
        assert proc.poll() is None  # still running: the output grew before the end of the input
    finally:
        proc.stdin.close()
    assert proc.wait(timeout=300) == 0, "".join(err.lines)
    assert _policies(out) == 9
    first = err.writes()[0]
    assert "records," in first and "policies (" in first and "self-check ok" in first
    assert leftovers(out) == []


def _killed_mid_stream(tmp_path, samples, sig: int) -> tuple[dict, object, _Stderr]:
    out = tmp_path / "out"
    lines = _lines(samples)
    proc = start_cli("generate", "-", "-o", str(out), "--every", "2s")
    err = _Stderr(proc)
    proc.stdin.write(b"".join(lines[:100]))
    proc.stdin.flush()
    # right after a write is reported (the next is two seconds away) the output is complete
    assert wait_for(lambda: len(err.writes()) >= 1), "".join(err.lines)
    before = tree(out)
    proc.send_signal(sig)
    code = proc.wait(timeout=300)
    proc.stdin.close()
    return before, code, err


def test_sigkill_mid_stream_leaves_the_last_complete_output(tmp_path, samples):
    before, code, err = _killed_mid_stream(tmp_path, samples, signal.SIGKILL)
    out = tmp_path / "out"
    assert code == -signal.SIGKILL
    assert tree(out) == before and _policies(out) > 0
    assert _all_parse(out)
    assert leftovers(out) == []


def test_sigterm_mid_stream_makes_a_final_write_and_leaves_no_staging(tmp_path, samples):
    before, code, err = _killed_mid_stream(tmp_path, samples, signal.SIGTERM)
    out = tmp_path / "out"
    assert code == 0, "".join(err.lines)
    assert _all_parse(out) and _policies(out) >= len([n for n in before if n.endswith(".yaml")])
    assert leftovers(out) == []
    assert any(ln.startswith("read <stdin> (hubble): 100 records") for ln in err.lines), "".join(err.lines)


def test_sighup_writes_at_once(tmp_path, samples):
    out = tmp_path / "out"
    proc = start_cli("generate", "-", "-o", str(out), "--every", "1h")
    err = _Stderr(proc)
    try:
        proc.stdin.write(b"".join(_lines(samples)[:50]))
        proc.stdin.flush()
        # the stream loop has its handler once it is reading (before that SIGHUP would end it)
        assert wait_for(lambda: catches(proc.pid, signal.SIGHUP)), "".join(err.lines)

        def asked_and_written() -> bool:  # nothing is written before the hour is up, unless asked
            proc.send_signal(signal.SIGHUP)
            return out.exists() and _policies(out) == 5

        assert wait_for(asked_and_written, poll=0.5), "".join(err.lines)
        assert proc.poll() is None
    finally:
        proc.stdin.close()
    assert proc.wait(timeout=300) == 0
    assert _policies(out) == 5
