"""The source interface: every traffic input (capture or flow log) is one ``Source``.

A source reads one file and yields flow-table chunks (``netpolgen.flows`` schema) with bounded
memory. What it cannot use it counts in ``stats.skipped`` (a partial failure is data); what makes
the whole file unusable it raises as ``SourceError`` naming the file and the place.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, ClassVar, Iterator

import pandas as pd

from netpolgen import progress
from netpolgen.errors import SourceError, open_for_reading
from netpolgen.flows import SkippedRecords
from netpolgen.sources.limits import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_EXPANSION_RATIO,
    DEFAULT_MAX_RECORD_SIZE,
    GZIP_MAGIC,
    ExpansionGuard,
    LineLimiter,
    ReadLimits,
    compression_of,
    decompressing,
)

__all__ = ["GZIP_MAGIC", "ReadLimits", "Source", "SourceOptions", "SourceStats", "open_binary", "open_text", "read_head"]


@dataclass
class SourceOptions:
    """Options every source understands (each source ignores what does not apply to it)."""

    strict: bool = False  # the first malformed record is fatal
    include_dropped: bool = False  # flow logs: count DROPPED/deny records as observed traffic
    chunk_size: int = 200_000  # records (or packets) per chunk
    since: float | None = None  # unix seconds; rows outside [since, until] are dropped
    until: float | None = None
    show_progress: bool | None = False  # None: when stderr is a terminal
    # flow logs: processes parsing one big file (None: one per CPU when the file is large and
    # not compressed; 0 or 1: none, this process reads alone)
    workers: int | None = None
    # resource bounds on hostile input (netpolgen.sources.limits)
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE  # bytes; a longer line is skipped, counted
    max_expansion_ratio: float = DEFAULT_MAX_EXPANSION_RATIO  # decompressed / compressed
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE  # bytes of one file

    def limits(self) -> ReadLimits:
        return ReadLimits(self.max_record_size, self.max_expansion_ratio, self.max_decompressed_size)


@dataclass
class SourceStats:
    """What a source saw, for the summary."""

    records: int = 0  # packets for captures, records for flow logs
    bytes_read: int = 0
    connections: int = 0
    skipped: SkippedRecords = field(default_factory=SkippedRecords)
    truncated: bool = False  # the file ended mid-record; what was read is kept
    first_seen: float | None = None
    last_seen: float | None = None
    notes: list[str] = field(default_factory=list)  # anything else the summary should say
    counters: dict[str, int] = field(default_factory=dict)  # source-specific counts

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def see_time(self, first: float | None, last: float | None) -> None:
        if first is not None and first == first:  # not NaN
            self.first_seen = first if self.first_seen is None else min(self.first_seen, first)
        if last is not None and last == last:
            self.last_seen = last if self.last_seen is None else max(self.last_seen, last)


class Source(ABC):
    """One input file of one format."""

    #: the ``--format`` name
    format_name: ClassVar[str]

    def __init__(self, path: str, options: SourceOptions | None = None) -> None:
        self.path = path
        self.options = options or SourceOptions()
        self.stats = SourceStats()

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes) -> bool:
        """True when the first bytes of the (decompressed) file look like this format."""

    @abstractmethod
    def chunks(self) -> Iterator[pd.DataFrame]:
        """Yield flow-table chunks. Raises ``SourceError`` when the file is unusable."""

    def error(self, where: str | None, what: str) -> SourceError:
        return SourceError(self.path, where, what)

    def oversized(self, line: int) -> None:
        """A line longer than ``--max-record-size`` was skipped (``LineLimiter``): counted, or
        fatal under ``--strict``."""
        what = f"record longer than {self.options.max_record_size} bytes (--max-record-size)"
        if self.options.strict:
            raise SourceError(self.path, f"line {line}", what)
        self.stats.records += 1
        self.stats.skipped.add("oversized record", f"{self.path}: line {line}")

    def open_lines(self) -> BinaryIO:
        """The (decompressed) file with lines longer than ``--max-record-size`` emptied and
        reported to ``oversized``: what every line-based source reads."""
        return open_binary(self.path, self.options, self.oversized)


def open_binary(path: str, options: "SourceOptions | None" = None,
                on_oversized: "Callable[[int], None] | None" = None) -> BinaryIO:
    """Open a file for reading, transparently decompressing gzip and zstd under the expansion
    bounds of ``options``; with ``on_oversized``, lines longer than ``options.max_record_size``
    are emptied and their numbers reported (``limits.LineLimiter``). Raises SourceError."""
    limits = (options or SourceOptions()).limits()
    from netpolgen.sources.stdin import served  # a segment of a stream, served under its name

    raw = served(path) or open_for_reading(path, SourceError)
    head = raw.read(4)
    raw.seek(0)
    tracker = progress.active()
    if tracker is not None:
        raw = io.BufferedReader(_CountingReader(raw, tracker.advance), buffer_size=1 << 20)  # type: ignore[assignment]
    kind = compression_of(head)
    stream: BinaryIO = raw
    if kind is not None:
        try:
            decompressor = decompressing(raw, kind, path)
        except BaseException:
            raw.close()
            raise
        guard = ExpansionGuard(decompressor, raw.tell, path, limits, raw)
        stream = io.BufferedReader(guard, buffer_size=1 << 20)  # type: ignore[assignment]
    if on_oversized is not None:
        stream = LineLimiter(stream, limits.max_record_size, on_oversized)  # type: ignore[assignment]
    return stream


class _CountingReader(io.RawIOBase):
    """A raw reader that reports every byte read (drives the progress bar)."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], None]) -> None:
        self._raw = raw
        self._report = report

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._report(n)
        return n or 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


def read_head(path: str, n: int = 4096) -> bytes:
    """The first ``n`` bytes of the decompressed file, for format sniffing."""
    with open_binary(path) as f:
        try:
            return f.read(n)
        except (OSError, EOFError) as e:  # a corrupt gzip stream
            raise SourceError(path, None, f"cannot read: {e}") from e


def open_text(path: str, options: "SourceOptions | None" = None,
              on_oversized: "Callable[[int], None] | None" = None) -> io.TextIOBase:
    """Open a (possibly compressed) text file as UTF-8, replacing undecodable bytes (bounds
    as for ``open_binary``)."""
    return io.TextIOWrapper(open_binary(path, options, on_oversized), encoding="utf-8", errors="replace", newline="")
