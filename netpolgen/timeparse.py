"""Parsing the times users type (--since/--until)."""

from __future__ import annotations

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
