"""Reading ahead in a thread changes nothing a consumer can see: items and the error that ends
them arrive in order, and a consumer that stops early gets the stream back (the producer is
closed in its own thread before the consumer's generator returns)."""

from __future__ import annotations

import threading

import pytest

from netpolgen.capture.prefetch import prefetched


def test_items_arrive_in_order() -> None:
    assert list(prefetched(iter(range(1000)))) == list(range(1000))
    assert list(prefetched(iter([]))) == []


def test_the_error_comes_after_the_items_before_it() -> None:
    def items():
        yield 1
        yield 2
        raise ValueError("record 3 is corrupt")

    got = []
    with pytest.raises(ValueError, match="record 3"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [1, 2]


def test_stopping_early_closes_the_producer_in_its_thread() -> None:
    closed_in: list[str] = []
    produced: list[int] = []

    def items():
        try:
            for i in range(10**6):
                produced.append(i)
                yield i
        finally:
            closed_in.append(threading.current_thread().name)

    it = prefetched(items(), depth=1)
    assert next(it) == 0
    it.close()
    assert closed_in == ["netpolgen-read-ahead"]
    assert len(produced) <= 3  # one handed over, one queued, one waiting to be queued
    assert not any(t.name == "netpolgen-read-ahead" for t in threading.enumerate())


def test_an_error_in_the_consumer_stops_the_producer() -> None:
    closed = threading.Event()

    def items():
        try:
            while True:
                yield 0
        finally:
            closed.set()

    with pytest.raises(RuntimeError):
        for _ in prefetched(items()):
            raise RuntimeError("strict: malformed record")
    assert closed.is_set()
