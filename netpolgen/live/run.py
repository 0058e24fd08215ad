"""Following a stream: fold segments in as they come, rewrite the proposal every so often.

The loop owns the time: every ``every`` seconds (and on SIGHUP) what arrived is cut into a
segment, folded into the accumulated edges, and the current proposal is written atomically
(``outdir.staged``, through ``render.write_policy_files``) with one line on stderr saying what
changed. End of stream, SIGINT or SIGTERM end the loop: the caller makes the final write, as
for a file. A second SIGINT or SIGTERM stops at once: the write in progress, if any, is
abandoned and the last complete output stays.
"""

from __future__ import annotations

import queue
import re
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TextIO

import pandas as pd

from netpolgen.aggregate import EDGE_KEYS
from netpolgen.errors import SourceError, UsageError
from netpolgen.inventory import Inventory
from netpolgen.live.accumulate import EdgeAccumulator
from netpolgen.live.feed import EOF, RESTART, Feed, FollowFeed, StdinFeed
from netpolgen.live.segments import Segmenter
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.stdin import STDIN_NAME, is_stdin

DEFAULT_EVERY = 60.0
SEGMENT_BYTES = 16 << 20  # a segment is cut when this much is waiting, whatever the clock says (bigger: less
# per-segment work, more memory)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str = "--every") -> float:
    """``10s``, ``2m``, ``1h``, ``500ms`` or plain seconds → seconds (more than zero)."""
    m = _DURATION.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise UsageError(None, option, f"{text!r} is not a duration (10s, 2m, 1h, 500ms or seconds)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def stream_name(arg: str) -> str:
    return STDIN_NAME if is_stdin(arg) else arg


def open_feed(arg: str, follow: bool) -> Feed:
    if is_stdin(arg):
        return StdinFeed(sys.stdin.buffer.fileno() if hasattr(sys.stdin, "buffer") else 0).start()
    if not follow:
        raise UsageError(None, arg, "only - or a file given with --follow is read as a stream")
    import os

    if not os.path.isfile(arg):
        raise SourceError(arg, None, "no such file" if not os.path.exists(arg) else "not a regular file")
    return FollowFeed(arg).start()


class Signals:
    """SIGHUP asks for a write now; the first SIGINT/SIGTERM asks to stop after a final write;
    the second raises KeyboardInterrupt wherever the program is."""

    def __init__(self) -> None:
        self.write_now = False
        self.stop = False
        self._saved: dict[int, object] = {}

    def _hup(self, signum: int, frame: object) -> None:
        self.write_now = True

    def _stop(self, signum: int, frame: object) -> None:
        if self.stop:
            raise KeyboardInterrupt()
        self.stop = True

    @contextmanager
    def installed(self) -> Iterator["Signals"]:
        import threading

        if threading.current_thread() is not threading.main_thread():  # only the main thread may
            yield self
            return
        wanted = {signal.SIGINT: self._stop, signal.SIGTERM: self._stop}
        if hasattr(signal, "SIGHUP"):
            wanted[signal.SIGHUP] = self._hup
        for sig, handler in wanted.items():
            self._saved[sig] = signal.signal(sig, handler)
        try:
            yield self
        finally:
            for saved_sig, saved in self._saved.items():
                signal.signal(saved_sig, saved)  # type: ignore[arg-type]  # what signal.signal returned
            if self.stop:  # a second signal during the final write stops at once
                signal.signal(signal.SIGINT, _interrupt)
                signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


@dataclass
class StreamLoop:
    """Reads one stream into an ``EdgeAccumulator``, calling ``on_write`` every ``every``
    seconds, on SIGHUP, and (through the caller) at the end. ``on_segment`` sees each
    segment's resolved flows (``diff`` reports denied connections from them)."""

    arg: str
    fmt: str | None
    options: SourceOptions
    inventory: Inventory | None
    every: float = DEFAULT_EVERY
    follow: bool = False
    on_write: Callable[[EdgeAccumulator], None] | None = None
    on_segment: Callable[[pd.DataFrame, EdgeAccumulator], None] | None = None
    records_seen: int = 0
    signals: Signals = field(default_factory=Signals)

    def run(self) -> EdgeAccumulator:
        name = stream_name(self.arg)
        acc = EdgeAccumulator(self.inventory, self.options, name)
        segmenter = self._segmenter(name)
        feed = open_feed(self.arg, self.follow)
        next_write = time.monotonic() + self.every
        with self.signals.installed() as sig:
            while True:
                try:
                    item = feed.items.get(timeout=max(0.01, min(0.25, next_write - time.monotonic())))
                except queue.Empty:
                    item = None
                if isinstance(item, OSError):
                    raise SourceError(name, None, f"cannot read: {item.strerror or item}") from item
                if sig.stop:  # what the pipe already handed over is part of the final write
                    item = self._drain(feed, segmenter, item)
                if item is EOF or sig.stop:
                    self._fold(segmenter, acc, final=True)
                    break
                if item is RESTART:  # rotation or truncation: the new file has its own header
                    self._fold(segmenter, acc, final=True)
                    segmenter = self._segmenter(name)
                elif item is not None:
                    segmenter.feed(item)
                    self._oversized(segmenter, acc)
                    if segmenter.pending_bytes >= SEGMENT_BYTES:
                        self._fold(segmenter, acc)
                if sig.write_now or time.monotonic() >= next_write:
                    sig.write_now = False
                    self._fold(segmenter, acc)
                    if self.on_write is not None:
                        self.on_write(acc)
                    next_write = time.monotonic() + self.every
        if segmenter.fmt is None and acc.summary.segments == 0:  # type: ignore[union-attr]
            raise SourceError(name, None, "empty stream")
        return acc

    def _segmenter(self, name: str) -> Segmenter:
        return Segmenter(name, self.fmt, max_line=self.options.max_record_size)

    def _oversized(self, segmenter: Segmenter, acc: EdgeAccumulator) -> None:
        """Lines the segmenter dropped for their length: fatal with --strict, else counted."""
        for line in segmenter.oversized:
            what = f"record longer than {self.options.max_record_size} bytes (--max-record-size)"
            if self.options.strict:
                raise SourceError(acc.name, f"line {line}", what)
            acc.summary.stats.records += 1  # type: ignore[union-attr]
            acc.summary.stats.skipped.add("oversized record", f"{acc.name}: line {line}")  # type: ignore[union-attr]
        segmenter.oversized.clear()

    @staticmethod
    def _drain(feed: Feed, segmenter: Segmenter, item: object) -> object:
        """Feed what is queued already (without waiting for more); returns EOF if it was there."""
        while True:
            if isinstance(item, bytes):
                segmenter.feed(item)
            elif item is EOF:
                return EOF
            try:
                item = feed.items.get_nowait()
            except queue.Empty:
                return None

    def _fold(self, segmenter: Segmenter, acc: EdgeAccumulator, final: bool = False) -> None:
        segment = segmenter.cut(final)
        if segment is None:
            return
        flows = acc.add(segment, segmenter.fmt)  # type: ignore[arg-type]
        self.records_seen += segment.records
        if self.on_segment is not None:
            self.on_segment(flows, acc)


@dataclass
class ChangeReporter:
    """One line per write: what changed since the last one."""

    out: TextIO
    writes: int = 0
    _edges: set = field(default_factory=set)
    _policies: dict[str, str] = field(default_factory=dict)

    def line(self, result: object, when: float | None = None) -> str:
        from netpolgen.render import policy_path, to_yaml

        edges = result.edges  # type: ignore[attr-defined]
        keys = set(edges[EDGE_KEYS].itertuples(index=False, name=None)) if len(edges) else set()
        policies = {policy_path(p): to_yaml(p) for p in result.policies}  # type: ignore[attr-defined]
        new_edges = len(keys - self._edges)
        new_pol = sum(1 for k in policies if k not in self._policies)
        changed = sum(1 for k, v in policies.items() if k in self._policies and self._policies[k] != v)
        gone = sum(1 for k in self._policies if k not in policies)
        self._edges, self._policies = keys, policies
        self.writes += 1
        check = result.self_check  # type: ignore[attr-defined]
        verdict = (f"self-check FAILED ({len(check.denied)} denied)" if check.failed
                   else f"self-check ok ({check.allowed}/{check.checked} allowed)")
        stamp = time.strftime("%H:%M:%S", time.localtime(when or time.time()))
        records = sum(s.stats.records for s in result.sources)  # type: ignore[attr-defined]
        removed = f", {gone} removed" if gone else ""
        return (f"{stamp} write {self.writes}: {records} records, {len(keys)} edges (+{new_edges} new), "
                f"{len(policies)} policies ({new_pol} new, {changed} changed{removed}), {verdict}\n")

    def unchanged(self, result: object) -> bool:
        from netpolgen.render import policy_path, to_yaml

        return self.writes > 0 and {policy_path(p): to_yaml(p) for p in result.policies} == self._policies  # type: ignore[attr-defined]


__all__ = ["ChangeReporter", "DEFAULT_EVERY", "Signals", "StreamLoop", "parse_duration"]
