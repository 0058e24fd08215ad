"""Progress on stderr for long inputs: bytes done of the total, rate, time left (rich).

Sources do not need to know about it: ``sources.base.open_binary`` counts the bytes it reads
while a tracker is active, and the pipeline tops each file up to its size when the source is
done (a source that maps or reads the file another way still moves the bar file by file).
Off when stderr is not a terminal or with ``--quiet``.
"""

from __future__ import annotations

import contextvars
import os
import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported only when a bar is shown (the CLI starts without it)
    from rich.progress import Progress, TaskID

_current: contextvars.ContextVar["ProgressTracker | None"] = contextvars.ContextVar("netpolgen_progress", default=None)


def active() -> "ProgressTracker | None":
    return _current.get()


class ProgressTracker:
    """A byte-based progress bar over a list of input files."""

    def __init__(self, paths: list[str], enabled: bool | None = None) -> None:
        self.sizes = {p: _size(p) for p in paths}
        self.total = sum(self.sizes.values())
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self._file_start = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._token: contextvars.Token | None = None

    def __enter__(self) -> "ProgressTracker":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            bar = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            bar.start()
            self._task = bar.add_task("reading", total=self.total or None)
            self._progress = bar
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._token is not None:
            _current.reset(self._token)
        if self._progress is not None:
            self._progress.stop()

    def start_file(self, path: str) -> None:
        self._file_start = self.done
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"reading {os.path.basename(path)}")

    def advance(self, n: int) -> None:
        self.done += n
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=min(self.done, self.total))

    def finish_file(self, path: str) -> None:
        """Top up to the file's size (compressed files and mapped reads count differently)."""
        target = self._file_start + self.sizes.get(path, 0)
        if self.done < target:
            self.advance(target - self.done)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
