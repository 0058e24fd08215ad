"""The times users type (--since/--until), and times as the output writes them."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from netpolgen.errors import UsageError


def parse_when(text: str | None, option: str) -> float | None:
    """ISO 8601 (naive means UTC) or unix seconds → unix seconds; None passes through."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise UsageError(None, option, f"{text!r} is neither ISO 8601 nor unix seconds") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def format_when(ts: float | None) -> str:
    """Unix seconds as ISO 8601 UTC to the second: ``?`` when unknown, and the number itself when
    no calendar date has it (a record's time field holding 10**18, say: found by fuzzing)."""
    if ts is None or ts != ts:
        return "?"
    try:
        return datetime.fromtimestamp(math.floor(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.0f} (not a date)"
