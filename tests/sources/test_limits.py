"""Resource bounds on reading: long lines are emptied and reported, compression bombs stopped."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.errors import SourceError
from netpolgen.sources.base import SourceOptions, open_binary
from netpolgen.sources.limits import LineLimiter

zstandard = pytest.importorskip("zstandard")


def _limited(data: bytes, limit: int) -> tuple[bytes, list[int]]:
    reported: list[int] = []
    out = LineLimiter(io.BytesIO(data), limit, reported.append).read()
    return out, reported


def _expected(data: bytes, limit: int) -> tuple[bytes, list[int]]:
    """The reference: split, empty the long lines, join."""
    lines = data.split(b"\n")
    out, long_ = [], []
    for i, line in enumerate(lines, 1):
        if len(line) > limit:
            long_.append(i)
            out.append(b"")
        else:
            out.append(line)
    return b"\n".join(out), long_


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=30), st.integers(1, 25), st.booleans())
def test_line_limiter_empties_exactly_the_lines_longer_than_the_limit(lengths: list[int], limit: int, end_nl: bool) -> None:
    data = b"\n".join(bytes([97 + i % 26]) * n for i, n in enumerate(lengths)) + (b"\n" if end_nl and lengths else b"")
    assert _limited(data, limit) == _expected(data, limit)
    # read in small pieces (as io.TextIOWrapper does): the same bytes
    limiter = LineLimiter(io.BytesIO(data), limit, lambda line: None)
    pieces = iter(lambda: limiter.read1(7), b"")
    assert b"".join(pieces) == _expected(data, limit)[0]


def test_a_line_of_gigabytes_costs_no_more_than_the_limit() -> None:
    """A stream that produces one 64 MB line (no newline) until its end: the limiter holds at most
    the limit, reports the line once, and passes the lines after it through."""

    class Endless(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 64 << 20

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            if self.left <= 0:
                tail = b"\n{\"ok\": 1}\n"
                if self.left == 0:
                    b[:len(tail)] = tail
                    self.left = -1
                    return len(tail)
                return 0
            n = min(len(b), self.left)
            b[:n] = b" " * n
            self.left -= n
            return n

    reported: list[int] = []
    limiter = LineLimiter(io.BufferedReader(Endless()), 1 << 20, reported.append)
    assert limiter.read() == b"\n{\"ok\": 1}\n"
    assert reported == [1]
    assert len(limiter._pending) <= 1 << 20


def _gzip_of_spaces(path: Path, total: int) -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(total // len(block)):
            f.write(comp.compress(block))
        f.write(comp.flush())


def test_a_gzip_bomb_stops_with_the_compressed_offset_not_after_inflating_it_all(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    _gzip_of_spaces(bomb, 200 << 20)  # ~200 kB of gzip, 1000x
    with pytest.raises(SourceError) as info, open_binary(str(bomb), SourceOptions()) as f:
        while f.read(1 << 20):
            pass
    assert info.value.file == str(bomb)
    assert info.value.where.startswith("compressed byte ")
    assert "compression bomb" in info.value.what and "--max-expansion-ratio" in info.value.what


def test_the_total_size_bound_applies_whatever_the_ratio(tmp_path: Path) -> None:
    packed = tmp_path / "log.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(b'{"a": 1}\n' * 200_000))
    opts = SourceOptions(max_decompressed_size=100_000, max_expansion_ratio=1e9)
    with pytest.raises(SourceError, match="more than 100000 bytes.*--max-decompressed-size"):
        with open_binary(str(packed), opts) as f:
            f.read()


def test_zstd_and_gzip_inputs_read_as_their_plain_text(tmp_path: Path) -> None:
    text = b"".join(b'{"n": %d}\n' % i for i in range(10_000))
    (tmp_path / "a.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
    (tmp_path / "a.gz").write_bytes(gzip.compress(text))
    for name in ("a.zst", "a.gz"):
        with open_binary(str(tmp_path / name), SourceOptions()) as f:
            assert f.read() == text
