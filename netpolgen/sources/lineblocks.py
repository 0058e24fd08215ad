"""Reading a line format in blocks of whole lines, and the record loop's bookkeeping.

A ``BlockParser`` turns a block into a ``ParsedBlock``: counts, the places of ignored and bad
records (line numbers within the block), and the format's records pre-aggregated into compact
columns. ``RecordLines`` walks a block's lines; ``BlockReader`` reads a (possibly compressed)
file a block at a time; ``CollectorPause`` keeps the garbage collector off a record loop.
"""

from __future__ import annotations

import gc
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from netpolgen.sources.base import SourceOptions
from netpolgen.sources.records import BadRecord

BLOCK_BYTES = 1 << 22  # bytes read at a time


class BlockReader:
    """Reads ~BLOCK_BYTES bytes at a time with ``read1``, so that a compressed file cut short
    still hands over everything before the cut (``read(n)`` would lose the partial block);
    the error comes with the next read."""

    def __init__(self, f, size: int = BLOCK_BYTES) -> None:
        self.f = f
        self.size = size
        self.error: BaseException | None = None

    def read(self) -> bytes:
        if self.error is not None:
            raise self.error
        read1 = getattr(self.f, "read1", self.f.read)
        parts: list[bytes] = []
        total = 0
        while total < self.size:
            try:
                part = read1(self.size - total)
            except (OSError, EOFError, zlib.error) as e:
                if not parts:
                    raise
                self.error = e
                break
            if not part:
                break
            parts.append(part)
            total += len(part)
        return b"".join(parts)


class CollectorPause:
    """Keeps Python's cyclic garbage collector off while a parse loop runs.

    A record loop allocates millions of small objects without cycles: the collector would
    traverse them over and over (a third of the run time) and free none. It is switched back
    on while the consumer of the chunks runs (``released``) and when the loop ends.
    """

    def __init__(self) -> None:
        self.was_on = gc.isenabled()

    def __enter__(self) -> "CollectorPause":
        gc.disable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.was_on:
            gc.enable()

    @contextmanager
    def released(self) -> Iterator[None]:
        if self.was_on:
            gc.enable()
        try:
            yield
        finally:
            gc.disable()


# ----- block parsing: the line formats' record loop, in this process or in a pool -------------

#: events a block lists with their line; beyond these it only counts them (the summary keeps
#: 20 examples, and the first malformed record is always listed: --strict reports it)
_LISTED_EVENTS = 20


@dataclass
class ParsedBlock:
    """What a ``BlockParser`` made of one newline-aligned block of lines.

    Line numbers in ``events`` count from 1 at the block's first line: the reader, which knows
    how many lines came before, turns them into file line numbers. ``data`` is the format's
    compact (columnar) partial result.
    """

    lines: int = 0  # lines in the block, blank and comment lines included
    records: int = 0  # lines that were candidate records (not blank, not comments)
    usable: int = 0  # records that had the format's shape
    # (line, reason, what or None for an ignored record, structural, usable records before it)
    events: list[tuple[int, str, str | None, bool, int]] = field(default_factory=list)
    more: dict[str, int] = field(default_factory=dict)  # reason -> events not listed
    counters: dict[str, int] = field(default_factory=dict)
    data: Any = None

    def ignore(self, line: int, reason: str) -> None:
        """A well-formed record without usable traffic (see ``FlowLogSource.ignore``)."""
        if len(self.events) < _LISTED_EVENTS:
            self.events.append((line, reason, None, False, self.usable))
        else:
            self.more[reason] = self.more.get(reason, 0) + 1

    def bad(self, line: int, e: BadRecord) -> None:
        """A malformed record (see ``FlowLogSource.bad``)."""
        if len(self.events) < _LISTED_EVENTS or not any(ev[2] is not None for ev in self.events):
            self.events.append((line, e.reason, e.what, e.structural, self.usable))
        else:
            self.more[e.reason] = self.more.get(e.reason, 0) + 1

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n


class BlockParser:
    """Parses blocks of whole lines of one format into ``ParsedBlock`` objects.

    One parser reads every block of a file in order when the source reads alone; in a pool,
    each worker process has its own (made from ``spec``), kept across the blocks it is given so
    that its caches last. Either way a block's result must not depend on blocks before it.
    """

    def __init__(self, options: SourceOptions) -> None:
        self.options = options

    def parse(self, data: bytes | bytearray, begin: int = 0, end: int | None = None) -> ParsedBlock:
        """Parse the lines of ``data[begin:end]`` (a worker reuses one buffer for its blocks:
        nothing may keep a reference into ``data``)."""
        raise NotImplementedError


def line_count(data: bytes | bytearray, begin: int = 0, end: int | None = None) -> int:
    """Lines in ``data[begin:end]``: its newlines, and an unterminated last line when not empty."""
    end = len(data) if end is None else end
    if end <= begin:
        return 0
    return data.count(b"\n", begin, end) + (data[end - 1] != 0x0A)


class RecordLines:
    """(line number in the block from 1, line) for each line of ``data[begin:end]`` that is not
    blank or a ``comment``; a line that starts with ``{`` comes as a view, uncopied. Once the
    loop has run to its end, ``lines`` is the number of lines in the range, blank and comment
    lines included (what ``line_count`` says, without a second pass over the bytes)."""

    def __init__(self, data: bytes | bytearray, begin: int, end: int, comment: bytes) -> None:
        self.data, self.begin, self.end, self.comment = data, begin, end, comment
        self.lines = 0

    def __iter__(self) -> Iterator[tuple[int, bytes | bytearray | memoryview]]:
        data, end, comment = self.data, self.end, self.comment
        find = data.find
        view = memoryview(data)
        pos, n = self.begin, 0
        line: bytes | bytearray | memoryview
        while pos < end:
            stop = find(b"\n", pos, end)
            if stop < 0:
                stop = end
            n += 1
            if data[pos] == 0x7B:  # "{"
                line = view[pos:stop]
            else:
                line = data[pos:stop].strip()
                if not line or line.startswith(comment):
                    pos = stop + 1
                    continue
            pos = stop + 1
            yield n, line
        self.lines = n
