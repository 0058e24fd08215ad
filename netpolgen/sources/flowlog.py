"""Record bookkeeping shared by the flow-log sources (Hubble, Calico, VPC, CSV/Parquet).

Three kinds of records a flow log holds besides good ones, and what each becomes:

- *ignored*: well-formed but not traffic netpolgen can use (a VPC NODATA record, a Hubble
  ``lost_events`` line, a socket-trace verdict): counted in ``stats.skipped``, never fatal;
- *bad*: malformed (invalid JSON, a port that is not a number): counted with its place, and
  fatal under ``--strict``;
- *not this format*: the first data record of the file does not even have the format's shape
  (a YAML file given as ``--format hubble``): the file is unusable, so ``SourceError`` at once.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import re
import warnings
import zlib
from contextlib import contextmanager
from typing import Callable, ClassVar, Iterator

import numpy as np
import pandas as pd

from netpolgen.errors import SourceError
from netpolgen.sources.base import Source, SourceOptions, open_binary

_PANDAS_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


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

    def __init__(self, f) -> None:
        self.f = f
        self.error: BaseException | None = None

    def read(self) -> bytes:
        if self.error is not None:
            raise self.error
        read1 = getattr(self.f, "read1", self.f.read)
        parts: list[bytes] = []
        total = 0
        while total < _BLOCK:
            try:
                part = read1(_BLOCK - total)
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


class FlowLogSource(Source):
    """A Source that reads records one by one and reports what it could not use."""

    #: how the format is named in messages ("Hubble flow log", ...)
    format_title: ClassVar[str] = "flow log"

    def __init__(self, path: str, options: SourceOptions | None = None) -> None:
        super().__init__(path, options)
        self._usable_records = 0  # records that had the format's shape (for "not this format")

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

    def read_lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line without its newline) for every line of the (gzip-transparent)
        file. Reads big blocks and splits them in C: faster than iterating the file object. A
        compressed file cut short ends the lines there (``stats.truncated``, a note)."""
        n = 0
        rest = b""
        with open_binary(self.path) as f:
            reader = _BlockReader(f)
            while True:
                try:
                    block = reader.read()
                except (OSError, EOFError, zlib.error) as e:
                    if self.stats.records == 0:
                        raise SourceError(self.path, f"line {n + 1}", f"cannot read: {e}") from e
                    self.stats.truncated = True
                    self.stats.notes.append(
                        f"{self.path}: the file ends mid-record after line {n} ({e}); what was read is kept")
                    return
                if not block:
                    if rest:
                        yield n + 1, rest
                    return
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    n += 1
                    yield n, line

    def aggregated_chunks(
        self,
        add: Callable[[bytes, int, dict], None],
        flush: Callable[[dict], pd.DataFrame],
        comment: bytes,
    ) -> Iterator[pd.DataFrame]:
        """The record loop of the line formats: ``add(line, n, acc)`` for every line that is
        not blank or a ``comment``, ``flush(acc)`` yielded whenever ``acc`` reaches chunk_size
        entries and at the end. ``BadRecord`` from ``add`` is counted with its line."""
        size = max(int(self.options.chunk_size), 1)
        acc: dict = {}
        with CollectorPause() as collector:
            for n, line in self.read_lines():
                if line[:1] != b"{":
                    line = line.strip()
                    if not line or line.startswith(comment):
                        continue
                try:
                    add(line, n, acc)
                except BadRecord as e:
                    self.bad(f"line {n}", e.what, e.reason, structural=e.structural)
                    continue
                if len(acc) >= size:
                    out = flush(acc)
                    acc = {}
                    with collector.released():
                        yield out
            out = flush(acc) if acc else None
        if out is not None:
            yield out
        self.finish_file()

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
                except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
                    raise SourceError(self.path, None, f"cannot parse: {e}") from e
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
