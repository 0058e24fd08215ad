"""Parsing one large uncompressed flow-log file in a pool of forked worker processes.

Each worker reads its own byte ranges of the file (``read_range``: whole lines, the last one
bounded by --max-record-size) and parses them with its own ``BlockParser`` (``parse_range``);
decoding JSON records is the bulk of the work and holds the interpreter, so only processes run
it in parallel. ``pool_workers`` decides whether a file is worth a pool.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

from netpolgen.sources.base import SourceOptions
from netpolgen.sources.limits import compression_of
from netpolgen.sources.lineblocks import BlockParser, CollectorPause, ParsedBlock, line_count
from netpolgen.sources.records import BadRecord

#: files at least this big (and not compressed) are parsed by a pool of processes when the
#: machine has more than one CPU: below it, starting the pool costs more than it saves
POOL_MIN_BYTES = 48 << 20
POOL_BLOCK_BYTES = 8 << 20  # bytes a worker parses per task
POOL_INFLIGHT = 2  # tasks queued per worker: bounded memory, workers never idle

_worker_parsers: dict[tuple, BlockParser] = {}


def parse_range(spec: tuple, path: str, start: int, end: int) -> ParsedBlock:
    """In a worker: parse the lines of ``path`` that begin in bytes [start, end)."""
    cls, options, args = spec
    key = (cls, tuple(sorted(vars(options).items())), args)
    parser = _worker_parsers.get(key)
    if parser is None:
        parser = _worker_parsers[key] = cls(options, *args)
    with CollectorPause():
        data, begin, stop, cut = read_range(path, start, end, options.max_record_size)
        block = parser.parse(data, begin, stop)
        if cut >= 0:  # the range's last line was longer than --max-record-size: emptied
            block.records += 1
            block.bad(line_count(data, begin, cut) + 1, BadRecord(
                "oversized record", f"record longer than {options.max_record_size} bytes (--max-record-size)"))
        return block


_range_buffer = bytearray()  # a worker's blocks, read into one buffer: fresh memory costs page faults


def read_range(path: str, start: int, end: int, limit: int) -> tuple[bytearray, int, int, int]:
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
