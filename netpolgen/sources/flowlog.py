"""Record bookkeeping shared by the flow-log sources (Hubble, Calico, VPC, CSV/Parquet).

Three kinds of records a flow log holds besides good ones, and what each becomes:

- *ignored*: well-formed but not traffic netpolgen can use (a VPC NODATA record, a Hubble
  ``lost_events`` line, a socket-trace verdict): counted in ``stats.skipped``, never fatal;
- *bad*: malformed (invalid JSON, a port that is not a number): counted with its place, and
  fatal under ``--strict``;
- *not this format*: the first data record of the file does not even have the format's shape
  (a YAML file given as ``--format hubble``): the file is unusable, so ``SourceError`` at once.

The line formats are read in blocks of whole lines. A ``BlockParser`` turns a block into a
``ParsedBlock``: counts, the places of ignored and bad records (line numbers within the block),
and the format's records pre-aggregated into compact columns. The reader books the blocks in file
order (so line numbers, ``--strict`` and "not this format" come out as if records were read one
by one) and hands the columns to the format's fold. A large uncompressed file is parsed by a
pool of forked worker processes, each reading its own byte ranges of the file: decoding JSON
records is the bulk of the work and holds the interpreter, so only processes run it in parallel.
"""

from __future__ import annotations

import gc
import ipaddress
import multiprocessing
import os
import re
import threading
import warnings
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generator, Iterator

import numpy as np
import pandas as pd

from netpolgen import progress
from netpolgen.errors import SourceError
from netpolgen.sources.base import Source, SourceOptions
from netpolgen.sources.limits import compression_of

_PANDAS_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


def parser_error(path: str, e: Exception, skip: int) -> SourceError:
    """pandas' tokenizer error in the house form: the file line (it counts data rows after the
    ``skip`` lines before them) and what was wrong, without pandas' own wording around it."""
    m = re.search(r"row (\d+)", str(e))
    where = f"line {skip + int(m.group(1))}" if m else None
    return SourceError(path, where, f"not a flow table: {str(e).split('error: ', 1)[-1].strip()}")


class BadRecord(Exception):
    """A malformed record, raised by a source's per-record code and turned into a counted skip
    (or, under --strict or as the file's first record, a SourceError) by ``FlowLogSource``.

    ``reason`` is the category the record is counted under; ``structural`` says the record does
    not have the format's shape at all (see ``FlowLogSource.bad``)."""

    def __init__(self, reason: str, what: str, structural: bool = False) -> None:
        super().__init__(what)
        self.reason = reason
        self.what = what
        self.structural = structural


class Addresses:
    """IP address text → canonical text (``ipaddress`` normal form, as flows.py wants), or
    None when invalid. A log repeats few addresses many times: answers are remembered."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.known: dict[str, str | None] = {}
        self.limit = limit

    def canonical(self, text: str) -> str | None:
        c = self.known.get(text, "")
        if c == "":  # not seen yet (None: seen, invalid)
            if ":" in text:
                try:
                    c = str(ipaddress.ip_address(text))
                except ValueError:
                    c = None
            else:  # dotted quads are their own canonical form when valid: checked cheaply
                c = text if _is_ipv4(text) else None
            if len(self.known) < self.limit:
                self.known[text] = c
        return c


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255 or (len(p) > 1 and p[0] == "0"):
            return False
    return True


def first_line(head: bytes, comment: bytes | None = None) -> bytes | None:
    """The first line of ``head`` that is neither blank nor a comment, stripped (for sniffing)."""
    for raw in head.splitlines():
        line = raw.strip()
        if line and not (comment and line.startswith(comment)):
            return line
    return None
_BLOCK = 1 << 22  # bytes read at a time


class _BlockReader:
    """Reads ~_BLOCK bytes at a time with ``read1``, so that a compressed file cut short
    still hands over everything before the cut (``read(n)`` would lose the partial block);
    the error comes with the next read."""

    def __init__(self, f, size: int = _BLOCK) -> None:
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


#: files at least this big (and not compressed) are parsed by a pool of processes when the
#: machine has more than one CPU: below it, starting the pool costs more than it saves
POOL_MIN_BYTES = 48 << 20
_POOL_BLOCK = 8 << 20  # bytes a worker parses per task
_POOL_INFLIGHT = 2  # tasks queued per worker: bounded memory, workers never idle

_worker_parsers: dict[tuple, BlockParser] = {}


def _parse_range(spec: tuple, path: str, start: int, end: int) -> ParsedBlock:
    """In a worker: parse the lines of ``path`` that begin in bytes [start, end)."""
    cls, options, args = spec
    key = (cls, tuple(sorted(vars(options).items())), args)
    parser = _worker_parsers.get(key)
    if parser is None:
        parser = _worker_parsers[key] = cls(options, *args)
    with CollectorPause():
        data, begin, stop, cut = _read_range(path, start, end, options.max_record_size)
        block = parser.parse(data, begin, stop)
        if cut >= 0:  # the range's last line was longer than --max-record-size: emptied
            block.records += 1
            block.bad(line_count(data, begin, cut) + 1, BadRecord(
                "oversized record", f"record longer than {options.max_record_size} bytes (--max-record-size)"))
        return block


_range_buffer = bytearray()  # a worker's blocks, read into one buffer: fresh memory costs page faults


def _read_range(path: str, start: int, end: int, limit: int) -> tuple[bytearray, int, int, int]:
    """(buffer, begin, end, cut): ``buffer[begin:end]`` holds the lines of ``path`` that begin in
    bytes [start, end), whole: the line that begins before ``start`` belongs to the range before,
    the one that ends after ``end`` to this one. When that last line grows beyond ``limit`` bytes,
    it is cut to an empty line at ``cut`` (else -1), so that memory stays bounded. The buffer is
    reused by the next call."""
    global _range_buffer
    lo = max(start - 1, 0)
    want = end - lo
    if len(_range_buffer) < want + (1 << 16):
        _range_buffer = bytearray(want + (1 << 16))
    buf = _range_buffer
    with open(path, "rb", buffering=0) as f:
        f.seek(lo)
        n = _fill(f, buf, 0, want)
        begin = 0
        if start > 0:
            cut = buf.find(b"\n", 0, n)
            if cut < 0 or cut == n - 1:  # no line begins in the range
                return buf, 0, 0, -1
            begin = cut + 1
        last_start = buf.rfind(b"\n", begin, n) + 1 if n > begin else begin
        last_start = max(last_start, begin)
        while n > begin and buf[n - 1] != 0x0A:  # complete the last line
            if n - last_start > limit:
                buf[last_start] = 0x0A
                return buf, begin, last_start + 1, last_start
            if len(buf) - n < (1 << 16):
                grown = bytearray(2 * len(buf))
                grown[:n] = memoryview(buf)[:n]
                buf = _range_buffer = grown
            got = _fill(f, buf, n, n + (1 << 16))
            if not got:
                break
            nl = buf.find(b"\n", n, n + got)
            n = nl + 1 if nl >= 0 else n + got
    return buf, begin, n, -1


def _fill(f, buf: bytearray, at: int, until: int) -> int:
    """Read into ``buf[at:until]`` until it is full or the file ends; bytes read."""
    view = memoryview(buf)
    pos = at
    while pos < until:
        got = f.readinto(view[pos:until])
        if not got:
            break
        pos += got
    return pos - at


def pool_workers(path: str, options: SourceOptions) -> int:
    """How many worker processes should parse ``path`` (0: parse it here)."""
    wanted = options.workers
    if wanted is not None and wanted <= 1:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    if ("fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon
            or threading.current_thread() is not threading.main_thread()):
        # no cheap way to start workers, or inside a worker (Dask's: a daemon process, a task
        # thread) that may not have any or whose other threads a fork would not carry
        return 0
    try:
        with open(path, "rb") as f:
            if compression_of(f.read(4)) is not None:
                return 0  # one compressed stream: it cannot be cut into ranges
        size = os.path.getsize(path)
    except OSError:
        return 0
    if wanted is None:
        return cpus if cpus > 1 and size >= POOL_MIN_BYTES else 0
    return wanted


class FlowLogSource(Source):
    """A Source that reads records one by one and reports what it could not use."""

    #: how the format is named in messages ("Hubble flow log", ...)
    format_title: ClassVar[str] = "flow log"

    def __init__(self, path: str, options: SourceOptions | None = None) -> None:
        super().__init__(path, options)
        self._usable_records = 0  # records that had the format's shape (for "not this format")
        self.lines_done = 0  # lines of the blocks read so far that were taken in

    # ----- record outcomes ------------------------------------------------------------------

    def accept(self, n: int = 1) -> None:
        """``n`` records had the format's shape: from now on, bad ones are skipped, not fatal."""
        self._usable_records += n

    def ignore(self, where: str, reason: str, n: int = 1) -> None:
        """Well-formed records that carry no usable traffic: counted, never fatal."""
        self.stats.skipped.add(reason, f"{self.path}: {where}", n)

    def bad(self, where: str, what: str, reason: str | None = None, structural: bool = False) -> None:
        """A malformed record. ``reason`` is the category it is counted under (default ``what``).

        ``structural`` says the record does not have the format's shape at all: when no record
        before it had, the file is not this format and the error is fatal whatever ``--strict``.
        """
        if structural and self._usable_records == 0:
            raise SourceError(self.path, where, f"not a {self.format_title}: {what}")
        if self.options.strict:
            raise SourceError(self.path, where, what)
        self.stats.skipped.add(reason or what, f"{self.path}: {where}")

    # ----- reading ----------------------------------------------------------------------------

    def read_blocks(self, size: int = _BLOCK) -> Iterator[bytes]:
        """The (gzip-transparent) file in blocks of whole lines, the last one perhaps without
        its newline. A compressed file cut short ends the blocks at the last whole line before
        the cut (``stats.truncated``, a note). The consumer counts the lines of the blocks it
        took in ``lines_done`` (for that note)."""
        rest = b""
        self.lines_done = 0
        with self.open_lines() as f:
            reader = _BlockReader(f, size)
            while True:
                try:
                    block = reader.read()
                except (OSError, EOFError, zlib.error) as e:
                    if self.stats.records == 0:
                        raise SourceError(self.path, f"line {self.lines_done + 1}", f"cannot read: {e}") from e
                    self.stats.truncated = True
                    self.stats.notes.append(
                        f"{self.path}: the file ends mid-record after line {self.lines_done} ({e}); what was read is kept")
                    return
                if not block:
                    if rest:
                        yield rest
                    return
                cut = block.rfind(b"\n") + 1
                if not cut:
                    rest += block
                    continue
                view = memoryview(block)
                if cut == len(block):
                    whole = b"".join((rest, block)) if rest else block
                else:
                    whole = b"".join((rest, view[:cut]))  # one copy, not two
                rest = bytes(view[cut:])
                yield whole

    def parsed_blocks(self, parser_class: type[BlockParser], *args: Any, pool: bool = True) -> Iterator[ParsedBlock]:
        """Every block of the file parsed by ``parser_class(options, *args)`` (``args``
        hashable), in file order, its bookkeeping
        done: records counted, ignored and malformed records reported with their file line
        (``--strict`` and "not this format" apply as for one record at a time).

        A large uncompressed file is parsed by a pool of worker processes (``pool_workers``),
        each reading its own byte ranges; a fixed number of blocks is in flight, so memory stays
        bounded (``pool=False``: never). Otherwise this process reads and parses block after
        block."""
        workers = pool_workers(self.path, self.options) if pool else 0
        blocks: Generator[ParsedBlock, None, None]
        if workers:
            blocks = self._pooled((parser_class, self.options, args), workers)
        else:
            parser = parser_class(self.options, *args)
            blocks = (parser.parse(data) for data in self.read_blocks())
        self.lines_done = 0
        try:
            with CollectorPause() as collector:
                for block in blocks:
                    self._book(block, self.lines_done)
                    self.lines_done += block.lines
                    with collector.released():
                        yield block
        finally:
            blocks.close()  # a pool stops here, in this thread, also when a bad record is fatal

    def _book(self, block: ParsedBlock, before: int) -> None:
        self.stats.records += block.records
        for line, reason, what, structural, usable_before in block.events:
            where = f"line {before + line}"
            if what is None:
                self.ignore(where, reason)
                continue
            if structural and self._usable_records + usable_before == 0:
                raise SourceError(self.path, where, f"not a {self.format_title}: {what}")
            if self.options.strict:
                raise SourceError(self.path, where, what)
            self.stats.skipped.add(reason, f"{self.path}: {where}")
        for reason, n in block.more.items():
            self.stats.skipped.add(reason, "", n)
        for key, n in block.counters.items():
            self.stats.count(key, n)
        self._usable_records += block.usable

    def _pooled(self, spec: tuple, workers: int) -> Generator[ParsedBlock, None, None]:
        size = os.path.getsize(self.path)
        ranges = iter([(s, min(s + _POOL_BLOCK, size)) for s in range(0, size, _POOL_BLOCK)])
        tracker = progress.active()
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        pending: deque = deque()
        try:
            for start, end in ranges:
                pending.append((end - start, pool.submit(_parse_range, spec, self.path, start, end)))
                if len(pending) >= workers * _POOL_INFLIGHT:
                    break
            while pending:
                nbytes, future = pending.popleft()
                try:
                    block = future.result()
                except BrokenProcessPool as e:  # a worker was killed (out of memory, a signal)
                    raise SourceError(self.path, None, f"a worker process parsing the file died: {e}") from e
                nxt = next(ranges, None)
                if nxt is not None:
                    pending.append((nxt[1] - nxt[0], pool.submit(_parse_range, spec, self.path, *nxt)))
                if tracker is not None:
                    tracker.advance(nbytes)
                yield block
        finally:
            for _, future in pending:
                future.cancel()
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except RuntimeError:  # collected by the pool's own thread: it cannot wait for itself
                pool.shutdown(wait=False, cancel_futures=True)

    def pandas_chunks(self, reader, skip: int) -> Iterator[tuple[pd.DataFrame, np.ndarray, list[tuple[int, str]]]]:
        """(chunk, file line numbers of its rows, lines pandas dropped in it) from a chunked
        pandas reader made with ``on_bad_lines="warn"``; ``skip`` lines precede the rows."""
        dropped_all: list[int] = []
        done = 0
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    chunk = next(reader)
                except StopIteration:
                    return
                except pd.errors.ParserError as e:
                    raise parser_error(self.path, e, skip) from e
                except (ValueError, UnicodeDecodeError) as e:
                    raise SourceError(self.path, None, f"cannot parse: {e}") from e
                except (OSError, EOFError, zlib.error) as e:  # a compressed file cut short or corrupt
                    raise SourceError(self.path, f"after line {done + skip}", f"cannot read: {e}") from e
            dropped = self.dropped_lines(caught)
            dropped_all = sorted(dropped_all + [n for n, _ in dropped])
            lines = self.line_numbers(len(chunk), done, skip, np.asarray(dropped_all, dtype=np.int64))
            done += len(chunk)
            yield chunk, lines, dropped

    # ----- chunk-level helpers --------------------------------------------------------------

    def in_window(self, first: np.ndarray, last: np.ndarray) -> np.ndarray | None:
        """Boolean mask of records inside ``--since``/``--until``, or None when no window is set.

        Records outside are counted in ``stats.counters['outside time window']``.
        """
        since, until = self.options.since, self.options.until
        if since is None and until is None:
            return None
        keep = np.ones(len(first), dtype=bool)
        if since is not None:
            keep &= ~(np.asarray(last, dtype="float64") < since)
        if until is not None:
            keep &= ~(np.asarray(first, dtype="float64") > until)
        dropped = int((~keep).sum())
        if dropped:
            self.stats.count("outside time window", dropped)
        return keep

    @staticmethod
    def dropped_lines(caught: list) -> list[tuple[int, str]]:
        """(line, message) of the lines pandas' C parser skipped (``on_bad_lines="warn"``),
        read from the warnings it gave."""
        return [(int(m.group(1)), m.group(2).strip())
                for w in caught for m in _PANDAS_BAD_LINE.finditer(str(w.message))]

    def with_dropped(self, dropped: list[tuple[int, str]], validate):
        """Run ``validate()`` (a chunk's row checks) and report the ``dropped`` lines as bad
        records (too many fields), so that under ``--strict`` the error names the first bad
        line of the chunk, whichever kind it is."""
        try:
            result = validate()
        except SourceError as e:
            first = min((n for n, _ in dropped), default=None)
            where = e.where or ""
            if first is not None and where.startswith("line ") and where[5:].isdigit() and first < int(where[5:]):
                raise SourceError(self.path, f"line {first}", dict(dropped)[first]) from e
            raise
        for n, what in dropped:
            self.stats.records += 1
            self.bad(f"line {n}", what, "too many fields")
        return result

    @staticmethod
    def line_numbers(count: int, done: int, skip: int, dropped: np.ndarray) -> np.ndarray:
        """File line numbers of parsed rows ``done .. done+count`` (0-based, across chunks),
        ``skip`` lines coming before the first row and ``dropped`` (sorted) lines skipped."""
        good = np.arange(done + 1, done + count + 1, dtype=np.int64)  # 1-based among kept lines
        if len(dropped):
            shifted = (dropped - skip) - np.arange(1, len(dropped) + 1)
            good = good + np.searchsorted(shifted, good, side="left")
        return good + skip

    def finish_chunk(self, flows: pd.DataFrame) -> pd.DataFrame:
        """Book a finished chunk (connections, first/last seen) and return it."""
        if len(flows):
            self.stats.connections += int(flows["connections"].sum())
            first = flows["first_seen"].min()
            last = flows["last_seen"].max()
            self.stats.see_time(None if pd.isna(first) else float(first), None if pd.isna(last) else float(last))
        return flows

    def finish_file(self) -> None:
        """Record how much of the file was read (its size on disk, compressed or not)."""
        try:
            self.stats.bytes_read = os.path.getsize(self.path)
        except OSError:
            pass
