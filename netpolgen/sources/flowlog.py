"""Record bookkeeping shared by the flow-log sources (Hubble, Calico, VPC, CSV/Parquet).

Three kinds of records a flow log holds besides good ones, and what each becomes:

- *ignored*: well-formed but not traffic netpolgen can use (a VPC NODATA record, a Hubble
  ``lost_events`` line, a socket-trace verdict): counted in ``stats.skipped``, never fatal;
- *bad*: malformed (invalid JSON, a port that is not a number): counted with its place, and
  fatal under ``--strict``;
- *not this format*: the first data record of the file does not even have the format's shape
  (a YAML file given as ``--format hubble``): the file is unusable, so ``SourceError`` at once.

``FlowLogSource`` is the base of every line format's source: it books the blocks that
``lineblocks`` reads and parses (in this process, or in ``parallel``'s pool) and turns the
records ``records.BadRecord`` names into counted skips or errors.

The line formats are read in blocks of whole lines. A ``BlockParser`` turns a block into a
``ParsedBlock``: counts, the places of ignored and bad records (line numbers within the block),
and the format's records pre-aggregated into compact columns. The reader books the blocks in file
order (so line numbers, ``--strict`` and "not this format" come out as if records were read one
by one) and hands the columns to the format's fold. A large uncompressed file is parsed by a
pool of forked worker processes, each reading its own byte ranges of the file: decoding JSON
records is the bulk of the work and holds the interpreter, so only processes run it in parallel.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import warnings
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar, Generator, Iterator

import numpy as np
import pandas as pd

from netpolgen import progress
from netpolgen.errors import SourceError
from netpolgen.sources.base import Source, SourceOptions
from netpolgen.sources.lineblocks import BLOCK_BYTES, BlockParser, BlockReader, CollectorPause, ParsedBlock
from netpolgen.sources.parallel import POOL_BLOCK_BYTES, POOL_INFLIGHT, parse_range, pool_workers
from netpolgen.sources.records import parser_error

_PANDAS_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


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

    def read_blocks(self, size: int = BLOCK_BYTES) -> Iterator[bytes]:
        """The (gzip-transparent) file in blocks of whole lines, the last one perhaps without
        its newline. A compressed file cut short ends the blocks at the last whole line before
        the cut (``stats.truncated``, a note). The consumer counts the lines of the blocks it
        took in ``lines_done`` (for that note)."""
        rest = b""
        self.lines_done = 0
        with self.open_lines() as f:
            reader = BlockReader(f, size)
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
        ranges = iter([(s, min(s + POOL_BLOCK_BYTES, size)) for s in range(0, size, POOL_BLOCK_BYTES)])
        tracker = progress.active()
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        pending: deque = deque()
        try:
            for start, end in ranges:
                pending.append((end - start, pool.submit(parse_range, spec, self.path, start, end)))
                if len(pending) >= workers * POOL_INFLIGHT:
                    break
            while pending:
                nbytes, future = pending.popleft()
                try:
                    block = future.result()
                except BrokenProcessPool as e:  # a worker was killed (out of memory, a signal)
                    raise SourceError(self.path, None, f"a worker process parsing the file died: {e}") from e
                nxt = next(ranges, None)
                if nxt is not None:
                    pending.append((nxt[1] - nxt[0], pool.submit(parse_range, spec, self.path, *nxt)))
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
