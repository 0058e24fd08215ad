"""Error bases, one per layer.

Every error a user can cause carries the file and the place in it, so the CLI can print the one
line DESIGN.md asks for: ``Error: <file>: <where>: <what>``.
"""

from __future__ import annotations

from netpolgen import exitcodes


class NetpolgenError(Exception):
    """A user-facing error: bad input, not a bug. The CLI prints it as one line and exits with
    ``exit_code`` (the error's kind: ``exitcodes``)."""

    exit_code: int = exitcodes.INPUT_ERROR

    def __init__(self, file: str | None, where: str | None, what: str) -> None:
        self.file = file
        self.where = where
        self.what = what
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.where, self.what) if p]
        return ": ".join(parts)


class SourceError(NetpolgenError):
    """A traffic source (capture or flow log) could not be read."""


class InventoryError(NetpolgenError):
    """A cluster inventory file is not Kubernetes JSON/YAML, or holds an invalid object."""


class PolicyError(NetpolgenError):
    """A NetworkPolicy document is structurally invalid."""


class OutputError(NetpolgenError):
    """Output could not be written (the previous output is left as it was)."""

    exit_code = exitcodes.OUTPUT_ERROR


class NoTrafficError(NetpolgenError):
    """The inputs were read but held no usable traffic: nothing to write a policy for."""

    exit_code = exitcodes.NO_TRAFFIC


class UsageError(NetpolgenError):
    """The command line asks for something impossible (bad option combination or value)."""


def open_for_reading(path: str, error: type[NetpolgenError]):  # -> BinaryIO
    """``open(path, "rb")``, with the usual failures turned into ``error(path, None, what)``."""
    try:
        return open(path, "rb")
    except FileNotFoundError as e:
        raise error(path, None, "no such file") from e
    except IsADirectoryError as e:
        raise error(path, None, "is a directory") from e
    except OSError as e:
        raise error(path, None, e.strerror or str(e)) from e
