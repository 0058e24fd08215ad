"""What a flow-log record is besides a good one, and the pieces every line format shares to say
so: ``BadRecord`` (a malformed record, counted or fatal), canonical address text, the first line
of a file (for sniffing), and pandas' tokenizer errors in the house form.
"""

from __future__ import annotations

import ipaddress
import re

from netpolgen.errors import SourceError


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
