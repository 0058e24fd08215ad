"""The block feeder hands a reader the same bytes whether it reads the next block ahead in a
thread or in line: every block is the stream's bytes from ``base`` on, followed by zero padding,
and a failed read surfaces at the same call."""

from __future__ import annotations

import io
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.capture.batch import PAD
from netpolgen.capture.blocks import BlockFeeder


class Trickle(io.RawIOBase):
    """A stream that gives at most ``chunk`` bytes per read (a pipe, a gzip member) and cannot
    be read from byte ``fail_from`` on (a bad sector, a corrupt gzip member)."""

    def __init__(self, data: bytes, chunk: int, fail_from: int | None = None) -> None:
        self._data, self._pos, self._chunk, self._fail_from = data, 0, chunk, fail_from

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        end = len(self._data)
        if self._fail_from is not None:
            if self._pos >= self._fail_from and len(b):
                raise OSError("disk on fire")
            end = min(end, self._fail_from)
        n = min(len(b), self._chunk, end - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def feed(data: bytes, block: int, chunk: int, steps: list[tuple[float, int]], read_ahead: bool,
         head: int, fail_from: int | None = None) -> list[tuple]:
    """What a reader sees, advance by advance: (bytes, base, eof, fresh), or the error."""
    stream = Trickle(data[head:], chunk, fail_from)
    feeder = BlockFeeder(stream, block, start=data[:head], read_ahead=read_ahead)
    seen: list[tuple] = []
    try:
        fresh = feeder.advance(0)
        for frac, need in steps:
            blob = bytes(feeder.buf[: feeder.fill])
            assert blob == data[feeder.base : feeder.base + feeder.fill]
            assert not feeder.buf[feeder.fill : feeder.fill + PAD].any() and len(feeder.buf) >= feeder.fill + PAD
            seen.append((blob, feeder.base, feeder.eof, fresh))
            if feeder.eof and feeder.fill == 0:
                break
            fresh = feeder.advance(int(feeder.fill * frac), need)
    except OSError as e:
        seen.append(("error", str(e)))
    finally:
        feeder.close()
    return seen


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 3000), block=st.integers(64, 700), chunk=st.integers(1, 900),
       steps=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1500)), max_size=40),
       head=st.integers(0, 64), fail_from=st.none() | st.integers(0, 3000))
def test_read_ahead_gives_the_same_blocks(size, block, chunk, steps, head, fail_from) -> None:
    """Any stream, block size, read size, consumption and ``need`` pattern: the same blocks,
    bases, end-of-stream and errors with and without reading ahead."""
    data = random.Random(size).randbytes(size)  # the length is what matters, drawn uniformly
    head = min(head, len(data))
    want = feed(data, block, chunk, steps, False, head, fail_from)
    got = feed(data, block, chunk, steps, True, head, fail_from)
    assert got == want


def test_the_read_ahead_thread_ends_with_the_stream() -> None:
    data = bytes(range(256)) * 40
    feeder = BlockFeeder(io.BytesIO(data), 1000)
    while True:
        feeder.advance(feeder.fill)
        if feeder.eof:
            break
    assert not any(t.name.startswith("netpolgen-read-ahead") for t in threading.enumerate())


def test_close_waits_for_the_read_in_flight() -> None:
    feeder = BlockFeeder(io.BytesIO(b"x" * 10_000), 1000)
    feeder.advance(0)
    feeder.close()
    assert not any(t.name.startswith("netpolgen-read-ahead") for t in threading.enumerate())


def test_a_failed_read_ahead_is_raised_by_the_next_advance() -> None:
    feeder = BlockFeeder(Trickle(b"y" * 5000, 1000, fail_from=1000), 1000)
    feeder.advance(0)  # read in line; the read ahead (from byte 1000) fails
    with pytest.raises(OSError, match="disk on fire"):
        feeder.advance(feeder.fill)
    feeder.close()
