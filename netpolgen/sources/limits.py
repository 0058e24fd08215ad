"""Resource bounds on what a source reads: decompression and record length.

Inputs come from other systems and may be hostile or broken. Two things would otherwise let one
file take the machine: a compressed stream that inflates without end (2 MB of gzip can hold
2 GB of spaces), and one line so long that holding it, or joining its pieces, costs gigabytes.

- ``ExpansionGuard`` sits on a decompressing stream and stops it with a ``SourceError`` naming
  the compressed byte offset once the output outgrows the input by ``max_expansion_ratio`` (after
  a first stretch, as tiny files compress by any ratio) or passes ``max_decompressed_size``.
- ``LineLimiter`` passes bytes through unchanged except for a line longer than
  ``max_record_size``: that line's bytes are dropped as they stream by (memory stays at one read
  buffer), it is handed on as an empty line, so that line numbers after it stay right, and its
  number is reported to a callback (the source counts it as a skipped "oversized record").
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO, Callable

from netpolgen.errors import SourceError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: flow-log records are a few kilobytes; anything this long is not one (``--max-record-size``)
DEFAULT_MAX_RECORD_SIZE = 4 << 20
#: real logs compress 5-30x; gzip cannot exceed ~1030x, zstd goes far beyond (``--max-expansion-ratio``)
DEFAULT_MAX_EXPANSION_RATIO = 200.0
#: the ratio is judged only after this much output: a 1 kB file may well inflate 300x
RATIO_GRACE_BYTES = 64 << 20
#: decompressed bytes of one file (``--max-decompressed-size``)
DEFAULT_MAX_DECOMPRESSED_SIZE = 256 << 30


@dataclass(frozen=True)
class ReadLimits:
    """The bounds one file is read under (``SourceOptions`` carries them from the CLI)."""

    max_record_size: int = DEFAULT_MAX_RECORD_SIZE
    max_expansion_ratio: float = DEFAULT_MAX_EXPANSION_RATIO
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
    ratio_grace_bytes: int = RATIO_GRACE_BYTES


def compression_of(head: bytes) -> str | None:
    """"gzip", "zstd" or None, from the first bytes of a file."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def decompressing(raw: BinaryIO, kind: str, path: str) -> BinaryIO:
    """A streaming decompressor over ``raw`` (positioned at the start of the stream)."""
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    try:
        import zstandard
    except ImportError as e:  # an optional dependency (pip install 'netpolgen[zstd]')
        raise SourceError(path, None, "zstd-compressed, and the zstandard package is not installed") from e
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)  # type: ignore[return-value]


class ExpansionGuard(io.RawIOBase):
    """Decompressed bytes of ``stream``; ``compressed_pos()`` says how far into the file it is."""

    def __init__(self, stream: BinaryIO, compressed_pos: Callable[[], int], path: str, limits: ReadLimits,
                 raw: BinaryIO | None = None) -> None:
        self._stream = stream
        self._raw = raw  # the compressed file: GzipFile(fileobj=...) does not close it
        self._compressed_pos = compressed_pos
        self._path = path
        self._limits = limits
        self.out = 0
        # readinto1: one step of the decompressor, so a stream cut short still hands over what
        # came before the cut (readinto would fill the buffer or lose it)
        self._readinto = getattr(stream, "readinto1", None) or stream.readinto  # type: ignore[attr-defined]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        n = self._readinto(buffer)
        if not n:
            return 0
        self.out += n
        lim = self._limits
        if self.out > lim.max_decompressed_size:
            raise SourceError(self._path, f"compressed byte {self._compressed_pos()}",
                              f"decompresses to more than {lim.max_decompressed_size} bytes;"
                              " raise --max-decompressed-size if the file is genuine")
        if self.out > lim.ratio_grace_bytes:
            inp = max(self._compressed_pos(), 1)
            if self.out / inp > lim.max_expansion_ratio:
                raise SourceError(self._path, f"compressed byte {inp}",
                                  f"decompresses more than {lim.max_expansion_ratio:g} times its size"
                                  f" ({inp} bytes gave {self.out}): a compression bomb?"
                                  " raise --max-expansion-ratio if the file is genuine")
        return n

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            if self._raw is not None:
                self._raw.close()
            super().close()


class LineLimiter(io.BufferedIOBase):
    """``stream`` with every line longer than ``limit`` bytes emptied (see the module doc).

    The current unfinished line is held back (at most ``limit`` bytes) until its newline shows
    whether it is too long. Reads are at most ``limit`` bytes, so only the first and the last
    line of a read can be too long: the lines between are handed on without being looked at one
    by one, and in one piece (this sits under every text source's hot loop: ``read1`` hands the
    filtered read over without copying it again)."""

    def __init__(self, stream: BinaryIO, limit: int, on_oversized: Callable[[int], None]) -> None:
        self._stream = stream
        self._limit = max(int(limit), 1)
        self._report = on_oversized
        self._line = 1  # number of the line the held-back bytes belong to
        self._pending = b""  # the unfinished line
        self._dropping = False  # inside a line already found too long
        self._ready = b""  # filtered bytes not yet handed on
        self._at = 0
        self._step = min(4 << 20, self._limit)
        self._eof = False
        # read1: a compressed file cut short still hands over what came before the cut
        self._read = getattr(stream, "read1", stream.read)

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:  # type: ignore[override]
        while self._at >= len(self._ready):
            if self._eof:
                return b""
            self._ready, self._at = self._fill(), 0
        left = len(self._ready) - self._at
        if size is None or size < 0 or size >= left:
            piece = self._ready if self._at == 0 else self._ready[self._at:]
            self._ready, self._at = b"", 0
            return piece
        piece = self._ready[self._at:self._at + size]
        self._at += size
        return piece

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        parts: list[bytes] = []
        want = -1 if size is None else size
        while want != 0:
            piece = self.read1(want)
            if not piece:
                break
            parts.append(piece)
            if want > 0:
                want -= len(piece)
        return b"".join(parts)

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        piece = self.read1(len(buffer))
        memoryview(buffer).cast("B")[:len(piece)] = piece
        return len(piece)

    def _fill(self) -> bytes:
        chunk = self._read(self._step)
        if not chunk:
            self._eof = True
            if self._dropping:  # the file ended inside the oversized line
                self._report(self._line)
                return b""
            rest, self._pending = self._pending, b""
            return rest
        first = chunk.find(b"\n")
        if first < 0:  # still inside one line
            if not self._dropping:
                if len(self._pending) + len(chunk) > self._limit:
                    self._dropping = True
                    self._pending = b""
                else:
                    self._pending += chunk
            return b""
        last = chunk.rfind(b"\n")
        view = memoryview(chunk)
        if self._dropping or len(self._pending) + first > self._limit:
            self._report(self._line)
            # the line stays, empty, so that later line numbers are right; the whole lines
            # after it are each shorter than a read
            out = b"".join((b"\n", view[first + 1:last + 1]))
        elif self._pending:
            out = b"".join((self._pending, view[:last + 1]))
        else:
            out = chunk if last == len(chunk) - 1 else bytes(view[:last + 1])
        self._dropping = False
        self._line += chunk.count(b"\n")
        self._pending = bytes(view[last + 1:])
        return out

    def close(self) -> None:
        self._stream.close()
        super().close()
