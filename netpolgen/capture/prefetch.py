"""Reading ahead in a worker thread, so that reading a capture overlaps decoding it.

A reader's ``batches()`` generator (read a block, walk its records, gather their headers) runs
in a worker thread one batch ahead of the consumer, which decodes and tracks connections in the
caller's thread. File reads release the GIL, and so do numpy's loops over a block, so on a
second core the read and much of the record walk hide behind the decode (1M-packet pcap: 0.38 s
→ 0.33 s). Items, and the exception that ended the generator, reach the consumer in the order
the generator produced them, so errors surface exactly where they would without the thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2
# How often a worker waiting to hand over an item checks whether the consumer has gone.
_POLL_SECONDS = 0.05
# How long a consumer that stops early waits for the worker to let go of the stream (a worker
# blocked reading an idle pipe may never answer; it is a daemon thread and dies with the process).
_JOIN_SECONDS = 5.0


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items``, produced in a worker thread at most ``depth`` items ahead of the consumer.

    When the consumer stops early (an exception, or closing this generator), the worker stops
    at its next hand-over and closes ``items`` in its own thread before this generator returns,
    so the caller may then close the stream ``items`` was reading."""
    handover: queue.Queue = queue.Queue(maxsize=max(int(depth), 1))
    stop = threading.Event()

    def put(kind: int, value: object) -> bool:
        while not stop.is_set():
            try:
                handover.put((kind, value), timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(_ITEM, item):
                    return
            put(_END, None)
        except BaseException as e:  # handed to the consumer, raised in its thread
            put(_ERROR, e)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="netpolgen-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handover.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(_JOIN_SECONDS)
