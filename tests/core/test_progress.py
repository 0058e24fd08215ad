"""The progress tracker counts what sources read without the sources knowing about it."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from netpolgen.progress import ProgressTracker, active
from netpolgen.sources.base import open_binary


def test_bytes_read_through_open_binary_are_counted_and_files_topped_up(tmp_path: Path) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(b"x" * 300_000)
    packed = tmp_path / "b.log.gz"
    packed.write_bytes(gzip.compress(b"y" * 300_000))
    with ProgressTracker([str(plain), str(packed)], enabled=False) as t:
        assert active() is t
        t.start_file(str(plain))
        with open_binary(str(plain)) as f:
            assert not isinstance(f.raw, io.FileIO)  # wrapped to count
            assert f.read(1000) == b"x" * 1000
        assert 1000 <= t.done <= plain.stat().st_size  # buffered: at least what was asked
        t.finish_file(str(plain))
        assert t.done == plain.stat().st_size
        t.start_file(str(packed))
        with open_binary(str(packed)) as f:
            assert f.read() == b"y" * 300_000
        t.finish_file(str(packed))
        assert t.done == t.total == plain.stat().st_size + packed.stat().st_size
    assert active() is None


def test_without_a_tracker_files_are_not_wrapped(tmp_path: Path) -> None:
    p = tmp_path / "a"
    p.write_bytes(b"abc")
    with open_binary(str(p)) as f:
        assert isinstance(f.raw, io.FileIO) and f.read() == b"abc"
